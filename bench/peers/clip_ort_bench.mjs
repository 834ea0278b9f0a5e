// ONNX Runtime (onnxruntime-node, CPU) side of bench/peers/clip_ort.sh: times a
// CLIP vision tower exported by tools/clip_ort_model.py the way `tinyemo clip
// bench` times its own (one warm-up run, then runs until --min-seconds have
// passed, at least 2 and at most 20; the median run / batch), or, with --check,
// runs it once on given pixels and writes the embeddings.
//
//   node clip_ort_bench.mjs --ort DIR --model M.onnx --image-size N [--batch B] [--threads T] [--min-seconds S]
//   node clip_ort_bench.mjs --ort DIR --model M.onnx --image-size N --check PIXELS.f32 --out EMBEDS.f32
//
// --ort: the folder holding node_modules/onnxruntime-node. Prints one JSON
// object. The JSON's `process_threads` lists every thread of this process with
// the CPU seconds it used during the timed runs (from /proc/self/task), so
// threads of node itself (V8 platform workers, libuv's pool) that compete with
// ORT's intra-op threads are visible.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, renameSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import path from 'node:path';

function parseArgs(argv) {
  const a = { batch: 1, threads: 2, minSeconds: 3.0, maxRuns: 20 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`${k}: missing value`);
    switch (k) {
      case '--ort': a.ort = v; break;
      case '--model': a.model = v; break;
      case '--image-size': a.imageSize = Number(v); break;
      case '--batch': a.batch = Number(v); break;
      case '--threads': a.threads = Number(v); break;
      case '--min-seconds': a.minSeconds = Number(v); break;
      case '--max-runs': a.maxRuns = Number(v); break;
      case '--check': a.check = v; break;
      case '--out': a.out = v; break;
      default: throw new Error(`unknown option ${k}`);
    }
  }
  for (const k of ['ort', 'model', 'imageSize']) if (a[k] === undefined) throw new Error(`--${k} is required`);
  for (const k of ['imageSize', 'batch', 'threads', 'maxRuns'])
    if (!Number.isInteger(a[k]) || a[k] < 1) throw new Error(`${k}: expected a positive integer, got ${a[k]}`);
  if (a.check && !a.out) throw new Error('--check needs --out');
  return a;
}

// CPU seconds (user + system) of every thread of this process, by tid.
function threadTimes() {
  const hz = 100;  // USER_HZ on Linux
  const out = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat;
    try { stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'); } catch { continue; }  // thread exited
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');  // f[0] = state (field 3); utime = field 14, stime = 15
    out.set(tid, { name, cpu: (Number(f[11]) + Number(f[12])) / hz });
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const ort = createRequire(path.join(path.resolve(args.ort), 'node_modules', 'x.js'))('onnxruntime-node');
const session = await ort.InferenceSession.create(args.model, {
  executionProviders: ['cpu'],
  intraOpNumThreads: args.threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
});
const inputName = session.inputNames[0], outputName = session.outputNames[0];
const n = args.imageSize;

if (args.check) {
  const bytes = readFileSync(args.check);
  const pixels = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const per = 3 * n * n;
  if (pixels.length % per !== 0) throw new Error(`${args.check}: ${pixels.length} floats is not a multiple of 3 x ${n} x ${n}`);
  const batch = pixels.length / per;
  const result = await session.run({ [inputName]: new ort.Tensor('float32', pixels, [batch, 3, n, n]) });
  const y = result[outputName];
  const tmp = args.out + '.tmp';
  writeFileSync(tmp, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  renameSync(tmp, args.out);
  console.log(JSON.stringify({ engine: 'onnxruntime-node', version: ort.env.versions?.common ?? null, batch, dims: y.dims }));
  process.exit(0);
}

// The pixel pattern `tinyemo clip bench` uses, so both engines see the same input.
const pixels = new Float32Array(args.batch * 3 * n * n);
for (let i = 0; i < pixels.length; ++i) pixels[i] = ((i * 7919) % 1000) / 500 - 1;
const feeds = { [inputName]: new ort.Tensor('float32', pixels, [args.batch, 3, n, n]) };
await session.run(feeds);  // warm-up: first-run allocations, page in the weights

const before = threadTimes(), cpu0 = process.cpuUsage();
const runs = [];
const start = performance.now();
while (runs.length < 2 || ((performance.now() - start) / 1e3 < args.minSeconds && runs.length < args.maxRuns)) {
  const t0 = performance.now();
  await session.run(feeds);
  runs.push((performance.now() - t0) / 1e3);
}
const wall = (performance.now() - start) / 1e3;
const cpu = process.cpuUsage(cpu0), after = threadTimes();
const processThreads = [...after].map(([tid, t]) => ({ tid: Number(tid), name: t.name, main: Number(tid) === process.pid,
  cpu_seconds: +(t.cpu - (before.get(tid)?.cpu ?? 0)).toFixed(2) })).sort((x, y) => y.cpu_seconds - x.cpu_seconds);
const sorted = [...runs].sort((x, y) => x - y);
console.log(JSON.stringify({
  engine: 'onnxruntime-node',
  version: ort.env.versions?.common ?? null,
  node: process.version,
  model: args.model,
  image_size: n,
  batch: args.batch,
  threads: args.threads,
  runs: runs.length,
  run_seconds: runs,
  seconds_per_image: sorted[Math.floor(sorted.length / 2)] / args.batch,
  timed_wall_seconds: wall,
  timed_cpu_seconds: (cpu.user + cpu.system) / 1e6,
  uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? null,
  process_threads: processThreads,
}));
