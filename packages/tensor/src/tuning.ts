// Per-adapter choice of the matmul variant by measurement. tuneMatmul times every variant the
// device supports on one product per shape class and keeps the fastest, in memory and, under Node
// and Bun, in ~/.cache/tematrainer/matmul-<adapter hash>.json so later runs skip the measurement.
import { engine } from './engine.js';
import { log } from './log.js';
import {
  gemm,
  matmulReference,
  setMatmulChoice,
  supportedMatmulVariants,
  MATMUL_SHAPE_CLASSES,
  type GemmShape,
  type MatmulShapeClass,
  type MatmulVariant,
  type Strides,
} from './ops/matmul.js';
import { empty, fromData } from './tensor.js';

export {
  matmulChoice,
  matmulShapeClass,
  matmulVariantSupported,
  setMatmulChoice,
  supportedMatmulVariants,
  MATMUL_SHAPE_CLASSES,
  MATMUL_VARIANTS,
  type GemmShape,
  type MatmulShapeClass,
} from './ops/matmul.js';

/** The product timed for each shape class. */
export const TUNING_SHAPES: Record<MatmulShapeClass, GemmShape> = {
  small: { M: 256, N: 256, K: 256, batch: 1 },
  large: { M: 1024, N: 1024, K: 1024, batch: 1 },
  skinny: { M: 1024, N: 64, K: 64, batch: 1 },
};

export interface MatmulTuning {
  /** Adapter description the figures belong to. */
  adapter: string;
  /** Fastest variant per shape class. */
  choice: Record<MatmulShapeClass, MatmulVariant>;
  /** Measured GFLOP/s per shape class and variant. */
  gflops: Record<MatmulShapeClass, Partial<Record<MatmulVariant, number>>>;
}

export interface TuneOptions {
  /** Measure again even when a cached result exists. */
  force?: boolean;
  /** Read and write the on-disk cache (default true; ignored where there is no file system). */
  cacheFile?: boolean;
}

let inMemory: MatmulTuning | null = null;

function adapterDescription(): string {
  const a = engine().info.adapterInfo;
  return [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || 'unknown adapter';
}

/** FNV-1a 32-bit hash of the adapter description, in hex, for the cache file name. */
function hashText(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** Path of the cache file, or null without a Node-style file system and home directory. */
async function cachePath(adapter: string): Promise<string | null> {
  try {
    const os = await import('node:os');
    const path = await import('node:path');
    return path.join(os.homedir(), '.cache', 'tematrainer', `matmul-${hashText(adapter)}.json`);
  } catch {
    return null;
  }
}

async function readCache(file: string, adapter: string): Promise<MatmulTuning | null> {
  try {
    const fs = await import('node:fs/promises');
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as MatmulTuning;
    const supported = new Set(supportedMatmulVariants());
    const valid =
      parsed.adapter === adapter &&
      MATMUL_SHAPE_CLASSES.every((c) => supported.has(parsed.choice?.[c]));
    return valid ? parsed : null;
  } catch {
    // A missing or unreadable cache only means measuring again.
    return null;
  }
}

async function writeCache(file: string, tuning: MatmulTuning): Promise<void> {
  try {
    const fs = await import('node:fs/promises');
    const path = await import('node:path');
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, `${JSON.stringify(tuning, null, 2)}\n`);
  } catch (e) {
    log(`matmul tuning: could not write ${file} (${(e as Error).message}); the choice stays in memory only`);
  }
}

function rowMajor(cols: number): Strides {
  return { batchOuter: 0, batchInner: 0, row: cols, col: 1 };
}

/** True when `variant` matches the reference on a 19x23x13 product, so a broken variant is never chosen. */
async function variantIsCorrect(variant: MatmulVariant): Promise<boolean> {
  const [M, N, K] = [19, 23, 13];
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.7));
  const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.3));
  const ta = fromData(a, [M, K]);
  const tb = fromData(b, [K, N]);
  const tc = empty([M, N]);
  gemm(ta, rowMajor(K), tb, rowMajor(N), tc, rowMajor(N), { M, N, K, batch: 1 }, 1, 0, variant);
  const got = new Float32Array(await engine().read(tc.buffer, 0, M * N * 4));
  for (const t of [ta, tb, tc]) t.dispose();
  const want = matmulReference(a, b, M, N, K);
  return want.every((w, i) => Math.abs(got[i] - w) <= 1e-5 * Math.max(1, Math.abs(w)));
}

/** GFLOP/s of one variant on one shape: a warm-up dispatch, then the best of two timed batches. */
async function timeVariant(variant: MatmulVariant, shape: GemmShape): Promise<number> {
  const { M, N, K } = shape;
  const a = empty([M, K]);
  const b = empty([K, N]);
  const c = empty([M, N]);
  const run = () => gemm(a, rowMajor(K), b, rowMajor(N), c, rowMajor(N), shape, 1, 0, variant);

  let start = performance.now();
  run();
  await engine().sync();
  const once = Math.max((performance.now() - start) / 1000, 1e-5);
  // About 0.1 s per batch, so a full tuning on a software adapter takes seconds, not minutes.
  const reps = Math.max(1, Math.min(64, Math.round(0.1 / once)));

  let best = Infinity;
  for (let trial = 0; trial < 2; trial++) {
    start = performance.now();
    for (let i = 0; i < reps; i++) run();
    await engine().sync();
    best = Math.min(best, (performance.now() - start) / 1000 / reps);
  }
  for (const t of [a, b, c]) t.dispose();
  return (2 * M * N * K) / best / 1e9;
}

/**
 * Time every supported matmul variant on each shape class of TUNING_SHAPES, set the fastest per class
 * with setMatmulChoice and return the figures. A result cached in memory or on disk for the same
 * adapter is used without measuring unless `force` is set. A variant that fails the correctness check
 * against matmulReference is never chosen.
 */
export async function tuneMatmul(options: TuneOptions = {}): Promise<MatmulTuning> {
  const adapter = adapterDescription();
  const useFile = options.cacheFile ?? true;
  if (!options.force && inMemory?.adapter === adapter) {
    setMatmulChoice(inMemory.choice);
    return inMemory;
  }
  const file = useFile ? await cachePath(adapter) : null;
  if (!options.force && file) {
    const cached = await readCache(file, adapter);
    if (cached) {
      inMemory = cached;
      setMatmulChoice(cached.choice);
      return cached;
    }
  }

  const candidates: MatmulVariant[] = [];
  for (const variant of supportedMatmulVariants()) {
    if (await variantIsCorrect(variant)) candidates.push(variant);
    else log(`matmul tuning: variant ${variant} disagrees with the reference on this adapter; not using it`);
  }
  if (candidates.length === 0) candidates.push('tile4x4');

  const choice = {} as Record<MatmulShapeClass, MatmulVariant>;
  const gflops = {} as Record<MatmulShapeClass, Partial<Record<MatmulVariant, number>>>;
  for (const shapeClass of MATMUL_SHAPE_CLASSES) {
    gflops[shapeClass] = {};
    let best = -1;
    for (const variant of candidates) {
      const figure = await timeVariant(variant, TUNING_SHAPES[shapeClass]);
      gflops[shapeClass][variant] = Number(figure.toFixed(2));
      if (figure > best) {
        best = figure;
        choice[shapeClass] = variant;
      }
    }
  }

  const tuning: MatmulTuning = { adapter, choice, gflops };
  inMemory = tuning;
  setMatmulChoice(choice);
  if (file) await writeCache(file, tuning);
  log(`matmul tuning: ${MATMUL_SHAPE_CLASSES.map((c) => `${c} -> ${choice[c]}`).join(', ')}`);
  return tuning;
}
