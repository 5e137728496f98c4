// bench/coldstart-ort/ort_coldstart.js — ONNX Runtime's cold start for the coldstart table:
// session creation + first run of MODEL.onnx on zeros (1 intra-op thread, like a shmfaas
// instance), timed inside node, plus the time from process start. Prints one JSON line.
//   node ort_coldstart.js MODEL.onnx
'use strict';
const t_process = process.hrtime.bigint() - BigInt(Math.round(process.uptime() * 1e9));
const ort = require('onnxruntime-node');

async function main() {
  const path = process.argv[2];
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'],
  });
  const t1 = process.hrtime.bigint();
  const feeds = {};
  for (const name of session.inputNames) {
    feeds[name] = new ort.Tensor('float32', new Float32Array(3 * 224 * 224), [1, 3, 224, 224]);
  }
  await session.run(feeds);
  const t2 = process.hrtime.bigint();
  const ms = (a, b) => Number(b - a) / 1e6;
  console.log(JSON.stringify({
    create_ms: ms(t0, t1), first_run_ms: ms(t1, t2), create_and_run_ms: ms(t0, t2),
    from_process_start_ms: ms(t_process, t2), ort_version: require('onnxruntime-node/package.json').version,
  }));
}
main().catch((e) => { console.error(e.message); process.exit(1); });
