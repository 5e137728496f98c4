#!/usr/bin/env node
// bench/ort/ort_fn.js — an ONNX Runtime function instance for the benchmarks (bench/memory,
// bench/latency, bench/colocate): one process per instance, one model, `threads` intra-op threads
// (environment, default 1; bench/colocate sets it like shmfaas-fn's) and 1 inter-op thread, speaking
// what shmfaasd expects of shmfaas-fn, so that shmfaasd can start it with --fn-bin and front it:
//   ort_fn.js --listen unix:PATH|fd:N|HOST:PORT --private MODEL.onnx|NAME [--models DIR]
//             [--ready-fd N]   (writes "R" there once the session exists, then closes it)
// GET /_/ready and /_/health answer 200 once the session exists; any other request runs the model
// on its body. Environment (the subset of shmfaas-fn's codec settings the benchmarks use):
//   input=raw     body = little-endian float32 values of the model's one input (the only input kind)
//   output=topk   reply {"predictions":[{"index","score"}]} (softmax, best `topk`, default 5);
//   output=json   reply {"outputs":{NAME:{"shape","data"}}}
//   threads=K     intraOpNumThreads K (default 1)
'use strict';
const fs = require('fs');
const http = require('http');
const ort = require('onnxruntime-node');

function fail(msg) {
  console.error(`ort_fn: ${msg}`);
  process.exit(2);
}

// shmfaasd passes a model reference (NAME or NAME:TAG) and --models DIR, as to shmfaas-fn.
function resolveModel(ref, dir) {
  if (!dir || ref.includes('/')) return ref;
  const name = ref.replace(/:latest$/, '');
  for (const f of [name, `${name}.onnx`]) {
    const p = `${dir}/${f}`;
    if (fs.existsSync(p)) return p;
  }
  return ref;
}

function parseArgs(argv) {
  const a = { listen: null, model: null, models: null, readyFd: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--listen' && v) a.listen = v;
    else if (k === '--private' && v) a.model = v;
    else if (k === '--models' && v) a.models = v;
    else if (k === '--ready-fd' && v) a.readyFd = Number(v);
    else if (k === '--model' || k === '--store')
      fail('only --private MODEL.onnx is supported (deploy with label com.shmfaas.private=true)');
    else fail(`unknown argument ${k}; usage: ort_fn.js --listen unix:PATH|fd:N|HOST:PORT --private MODEL.onnx|NAME [--models DIR] [--ready-fd N]`);
    i++;
  }
  if (!a.listen || !a.model) fail('usage: ort_fn.js --listen unix:PATH|HOST:PORT --private MODEL.onnx');
  a.model = resolveModel(a.model, a.models);
  return a;
}

function codecConfig(env) {
  const input = env.input || 'raw';
  const output = env.output || 'json';
  const topk = Number(env.topk || 5);
  const threads = Number(env.threads || 1);
  if (input !== 'raw') fail(`input=${input}: ort_fn only takes input=raw (float32 bytes)`);
  if (output !== 'topk' && output !== 'json') fail(`output=${output}: use topk or json`);
  if (!Number.isInteger(topk) || topk < 1) fail(`topk=${env.topk}: must be an integer >= 1`);
  if (!Number.isInteger(threads) || threads < 1) fail(`threads=${env.threads}: must be an integer >= 1`);
  return { output, topk, threads };
}

function inputDims(session) {
  const meta = session.inputMetadata ? session.inputMetadata[0] : null;
  const shape = meta && meta.shape ? meta.shape : [1, 3, 224, 224];
  return shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
}

function topkReply(scores, k) {
  let max = -Infinity;
  for (const s of scores) max = Math.max(max, s);
  let sum = 0;
  const p = Array.from(scores, (s) => {
    const e = Math.exp(s - max);
    sum += e;
    return e;
  });
  const idx = p.map((_, i) => i).sort((a, b) => p[b] - p[a]).slice(0, k);
  return { predictions: idx.map((i) => ({ index: i, score: p[i] / sum })) };
}

function jsonReply(results) {
  const outputs = {};
  for (const [name, t] of Object.entries(results))
    outputs[name] = { shape: t.dims, data: Array.from(t.data) };
  return { outputs };
}

function reply(res, code, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function serve(args, cfg) {
  let session = null;
  let dims = null;
  let count = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/_/ready' || req.url === '/_/health') {
      res.writeHead(session ? 200 : 503, { 'Content-Type': 'text/plain' });
      res.end(session ? 'OK' : 'not ready');
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (!session) return reply(res, 503, { error: 'not ready: the model is not loaded yet' });
      const body = Buffer.concat(chunks);
      if (body.length !== count * 4)
        return reply(res, 400, { error: `input=raw: body has ${body.length} bytes; the input takes ${count} float32 values = ${count * 4} bytes` });
      // One copy into an aligned buffer; the host is little-endian like the wire format (x86, arm64).
      const data = new Float32Array(count);
      new Uint8Array(data.buffer).set(body);
      const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
      session.run(feeds).then((out) => {
        if (cfg.output === 'json') return reply(res, 200, jsonReply(out));
        return reply(res, 200, topkReply(out[session.outputNames[0]].data, cfg.topk));
      }, (e) => reply(res, 500, { error: `run: ${e.message}` }));
    });
  });
  // Node closes idle kept-alive connections after 5 s by default; a benchmark client that
  // interleaves slow models waits longer than that between two requests on one connection.
  server.keepAliveTimeout = 120000;
  server.headersTimeout = 121000;
  const listen = args.listen.startsWith('unix:') ? args.listen.slice(5) : null;
  if (args.listen.startsWith('fd:')) { // a socket shmfaasd bound and listens on (fd 3)
    server.listen({ fd: Number(args.listen.slice(3)) });
  } else if (listen) {
    try { fs.unlinkSync(listen); } catch (e) { /* not there */ }
    server.listen(listen);
  } else {
    const i = args.listen.lastIndexOf(':');
    server.listen(Number(args.listen.slice(i + 1)), args.listen.slice(0, i) || '127.0.0.1');
  }
  const t0 = process.hrtime.bigint();
  ort.InferenceSession.create(args.model, {
    intraOpNumThreads: cfg.threads, interOpNumThreads: 1, executionProviders: ['cpu'],
  }).then((s) => {
    session = s;
    dims = inputDims(s);
    count = dims.reduce((a, b) => a * b, 1);
    if (args.readyFd !== null) { // readiness pushed, as shmfaas-fn does: one byte, then close
      try { fs.writeSync(args.readyFd, 'R'); fs.closeSync(args.readyFd); } catch (e) { /* gone */ }
    }
    console.error(`ort_fn: ready in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms ` +
      `(${args.model}, onnxruntime-node ${require('onnxruntime-node/package.json').version})`);
  }, (e) => fail(`cannot load ${args.model}: ${e.message}`));
  const stop = () => {
    if (listen) try { fs.unlinkSync(listen); } catch (e) { /* already gone */ }
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const args = parseArgs(process.argv.slice(2));
serve(args, codecConfig(process.env));
