// bench/ort/ort_bench.js — the ONNX Runtime side of bench/engine: session creation, then RUNS
// timed inferences of MODEL.onnx on seeded random input (1 intra-op thread and 1 inter-op thread,
// like a shmfaas instance with --threads 1). Prints one JSON line; with RUNS 0 it stops after the
// first inference (bench/engine times that process from exec to this line).
//   node bench/ort/ort_bench.js MODEL.onnx RUNS
'use strict';
const ort = require('onnxruntime-node');

function dimsOf(session, name) {
  const meta = session.inputMetadata ? session.inputMetadata.find((m) => m.name === name) : null;
  const shape = meta && meta.shape ? meta.shape : [1, 3, 224, 224];
  return shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
}

function feedsOf(session) {
  const feeds = {};
  let seed = 12345;
  for (const name of session.inputNames) {
    const dims = dimsOf(session, name);
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      data[i] = seed / 4294967296 - 0.5;
    }
    feeds[name] = new ort.Tensor('float32', data, dims);
  }
  return feeds;
}

const ms = (a, b) => Number(b - a) / 1e6;
const pct = (sorted, p) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];

async function main() {
  const [path, runsArg] = process.argv.slice(2);
  if (!path) throw new Error('usage: node ort_bench.js MODEL.onnx RUNS');
  const runs = Number(runsArg || 0);
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'],
  });
  const t1 = process.hrtime.bigint();
  const feeds = feedsOf(session);
  await session.run(feeds);
  const t2 = process.hrtime.bigint();
  const lat = [];
  for (let i = 0; i < runs; i++) {
    const a = process.hrtime.bigint();
    await session.run(feeds);
    lat.push(ms(a, process.hrtime.bigint()));
  }
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({
    create_ms: ms(t0, t1), first_run_ms: ms(t1, t2),
    p50_ms: runs ? pct(lat, 0.5) : null, p99_ms: runs ? pct(lat, 0.99) : null, runs,
    ort_version: require('onnxruntime-node/package.json').version,
  }));
}
main().catch((e) => { console.error(`ort_bench: ${e.message}`); process.exit(1); });
