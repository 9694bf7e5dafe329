// Run the same small GPU workload under Node, Bun and Deno and print one JSON line per run, so
// that .ci/run can compare the runtimes' results. With --long, record tens of thousands of
// dispatches over hundreds of submits with forced garbage collections, and check the value.
//
//   node --expose-gc scripts/runtime-check.mjs [--long]
//   npx bun scripts/runtime-check.mjs [--long]
//   npx deno run -A --unstable-webgpu --v8-flags=--expose-gc scripts/runtime-check.mjs [--long]
//
// Plain JavaScript on the built packages/tensor/dist (run `npm run build` first): Node 20 cannot
// run TypeScript, and Deno does not resolve npm workspace packages, so all three import the same
// file by relative path.
import {
  addInPlace,
  backward,
  crossEntropy,
  engine,
  fromData,
  IGNORE_INDEX,
  init,
  matmul,
  rmsNorm,
  setLogger,
  tidy,
  zeros,
} from '../packages/tensor/dist/index.js';

const LONG_ITERATIONS = 20_000;
const LONG_READ_EVERY = 1_000;
const LONG_FLUSH_EVERY = 25;

/** Seeded uniform values in [-1, 1) from a 32-bit LCG, identical in every runtime. */
function seeded(count, seed) {
  const out = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

/** Hashes the bytes of the arrays with 32-bit FNV-1a, so that any changed bit almost surely changes the hash. */
function fnv1a(arrays) {
  let h = 0x811c9dc5;
  for (const a of arrays) {
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

function sum(values) {
  let s = 0;
  for (const v of values) s += v;
  return s;
}

function runtimeName() {
  if (typeof Bun !== 'undefined') return `bun ${Bun.version}`;
  if (typeof Deno !== 'undefined') return `deno ${Deno.version.deno}`;
  return `node ${process.versions.node}`;
}

/** Forces a full garbage collection where the runtime allows it, and returns whether it did. */
function collectGarbage() {
  if (typeof Bun !== 'undefined') {
    Bun.gc(true);
    return true;
  }
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    return true;
  }
  return false;
}

/**
 * Runs a [37, 53] x [53, 29] matmul, RMSNorm over its rows, cross-entropy of the result as logits
 * (three rows ignored), and the gradients of the loss with respect to both matmul inputs.
 */
async function shortCheck() {
  const M = 37;
  const K = 53;
  const N = 29;
  const a = fromData(seeded(M * K, 1), [M, K]);
  const b = fromData(seeded(K * N, 2), [K, N]);
  const weight = fromData(seeded(N, 3).map((v) => 1 + v / 2), [N]);
  const targets = Int32Array.from({ length: M }, (_, i) => (i % 12 === 5 ? IGNORE_INDEX : (i * 7) % N));
  const counted = targets.filter((t) => t !== IGNORE_INDEX).length;
  a.requiresGrad = true;
  b.requiresGrad = true;

  const [product, normed, loss] = tidy(() => {
    const product = matmul(a, b);
    const normed = rmsNorm(product, weight, 1e-5);
    const loss = crossEntropy(normed, fromData(targets, [M], 'i32'), counted);
    backward(loss);
    return [product, normed, loss];
  });

  const values = {
    matmul: await product.data(),
    rmsNorm: await normed.data(),
    loss: await loss.data(),
    gradA: await a.grad.data(),
    gradB: await b.grad.data(),
  };
  const sums = Object.fromEntries(Object.entries(values).map(([name, v]) => [name, sum(v)]));
  return { hash: fnv1a(Object.values(values)), sums, dispatches: engine().dispatchCount };
}

/**
 * Accumulates LONG_ITERATIONS small matmuls into one tensor: two dispatches and one pooled
 * temporary per iteration, a submit every LONG_FLUSH_EVERY iterations, and a forced garbage
 * collection and a read-back every LONG_READ_EVERY iterations. Inputs are small integers, so
 * every partial sum is exact in f32 and the expected value is exact.
 */
async function longCheck() {
  const a = fromData(Float32Array.from({ length: 32 }, (_, i) => (i % 3) - 1), [4, 8]);
  const b = fromData(Float32Array.from({ length: 32 }, (_, i) => (i % 5) - 2), [8, 4]);
  const acc = zeros([4, 4]);
  const step = await tidy(() => matmul(a, b)).data();
  const start = engine().dispatchCount;
  const startSubmits = engine().submitCount;
  let collected = false;

  for (let i = 1; i <= LONG_ITERATIONS; i++) {
    tidy(() => addInPlace(acc, matmul(a, b)));
    if (i % LONG_FLUSH_EVERY === 0) engine().flush();
    if (i % LONG_READ_EVERY === 0) {
      collected = collectGarbage();
      const got = await acc.data();
      for (let k = 0; k < got.length; k++) {
        if (got[k] !== step[k] * i) {
          throw new Error(`long run: after ${i} iterations element ${k} is ${got[k]}, expected ${step[k] * i}`);
        }
      }
    }
  }
  return {
    iterations: LONG_ITERATIONS,
    dispatches: engine().dispatchCount - start,
    submits: engine().submitCount - startSubmits,
    forcedGc: collected,
    final: Array.from(await acc.data()),
  };
}

const long = (typeof Deno !== 'undefined' ? Deno.args : process.argv.slice(2)).includes('--long');
// Keep stdout to the one JSON line; the adapter line goes to stderr as a notice.
setLogger((message) => console.error(message));
const started = performance.now();
const { info } = await init();
const result = long ? await longCheck() : await shortCheck();
const report = {
  mode: long ? 'long' : 'short',
  runtime: runtimeName(),
  binding: info.runtime,
  adapter: info.adapterInfo.description,
  ...result,
  seconds: Number(((performance.now() - started) / 1000).toFixed(2)),
};
console.log(JSON.stringify(report));
