// bench/ort/ort_run.js — ONNX Runtime as the reference for one inference: reads inputs in
// shmfaas-run's JSON form ({"inputs": {NAME: {"shape": [...], "data": [...]}}}, float32), writes
// every output in the same form ({"outputs": {NAME: {"shape", "dtype", "data"}}}). One thread.
//   node bench/ort/ort_run.js MODEL.onnx IN.json OUT.json
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, inPath, outPath] = process.argv.slice(2);
  if (!outPath) throw new Error('usage: node ort_run.js MODEL.onnx IN.json OUT.json');
  const inputs = JSON.parse(fs.readFileSync(inPath, 'utf8')).inputs;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'],
  });
  const feeds = {};
  for (const [name, t] of Object.entries(inputs))
    feeds[name] = new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
  const results = await session.run(feeds);
  const outputs = {};
  for (const name of session.outputNames) {
    const t = results[name];
    outputs[name] = { shape: t.dims, dtype: 'float32', data: Array.from(t.data) };
  }
  fs.writeFileSync(outPath, JSON.stringify({ outputs,
    ort_version: require('onnxruntime-node/package.json').version }));
}
main().catch((e) => { console.error(`ort_run: ${e.message}`); process.exit(1); });
