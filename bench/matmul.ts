// GFLOP/s of every f32 matmul variant this adapter supports, square sizes 256 to 2048.
// Each variant is first checked against matmulReference on a small odd shape. Prints one line per
// figure, then one JSON line with all of them. Never fails on time.
//   npx bun bench/matmul.ts
import {
  engine,
  fromData,
  empty,
  gemm,
  init,
  matmulReference,
  supportedMatmulVariants,
  type MatmulVariant,
  type Strides,
} from '@tematrainer/tensor';

const SIZES = [256, 512, 1024, 2048];
/** Seconds of timed work to aim for per figure; fewer repetitions where one product takes longer. */
const TARGET_SECONDS = 1;

function rowMajor(cols: number): Strides {
  return { batchOuter: 0, batchInner: 0, row: cols, col: 1 };
}

/** Largest relative error of one variant on a 37x29x19 product against the reference. */
async function checkVariant(variant: MatmulVariant): Promise<number> {
  const [M, N, K] = [37, 29, 19];
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37));
  const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.11));
  const ta = fromData(a, [M, K]);
  const tb = fromData(b, [K, N]);
  const tc = empty([M, N]);
  gemm(ta, rowMajor(K), tb, rowMajor(N), tc, rowMajor(N), { M, N, K, batch: 1 }, 1, 0, variant);
  const got = new Float32Array(await engine().read(tc.buffer, 0, M * N * 4));
  const want = matmulReference(a, b, M, N, K);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  for (const t of [ta, tb, tc]) t.dispose();
  return worst;
}

/** GFLOP/s of `variant` on an n x n x n product: best of three timed batches. */
async function measure(variant: MatmulVariant, n: number): Promise<number> {
  const a = empty([n, n]);
  const b = empty([n, n]);
  const c = empty([n, n]);
  const run = () => gemm(a, rowMajor(n), b, rowMajor(n), c, rowMajor(n), { M: n, N: n, K: n, batch: 1 }, 1, 0, variant);

  // The first dispatch compiles the pipeline and estimates how many repetitions fit the target time.
  let start = performance.now();
  run();
  await engine().sync();
  const once = (performance.now() - start) / 1000;
  const reps = Math.max(1, Math.min(50, Math.round(TARGET_SECONDS / 3 / Math.max(once, 1e-4))));

  let best = Infinity;
  for (let trial = 0; trial < 3; trial++) {
    start = performance.now();
    for (let i = 0; i < reps; i++) run();
    await engine().sync();
    best = Math.min(best, (performance.now() - start) / 1000 / reps);
  }
  for (const t of [a, b, c]) t.dispose();
  return (2 * n ** 3) / best / 1e9;
}

await init();
const info = engine().info;
const adapter = info.adapterInfo.description || `${info.adapterInfo.vendor} ${info.adapterInfo.architecture}`;
console.log(`adapter: ${adapter} (${info.runtime})`);

const results: Record<string, { maxRelativeError: number; gflops: Record<number, number> }> = {};
for (const variant of supportedMatmulVariants()) {
  const error = await checkVariant(variant);
  const gflops: Record<number, number> = {};
  console.log(`${variant}: max relative error ${error.toExponential(1)} on 37x29x19`);
  for (const n of SIZES) {
    gflops[n] = Number((await measure(variant, n)).toFixed(2));
    console.log(`${variant} f32 ${n}x${n}x${n}: ${gflops[n]} GFLOP/s`);
  }
  results[variant] = { maxRelativeError: error, gflops };
}
console.log(JSON.stringify({ bench: 'matmul', adapter, runtime: info.runtime, dtype: 'f32', variants: results }));
process.exit(0);
