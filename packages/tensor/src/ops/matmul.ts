import { engine, type KernelSpec } from '../engine.js';
import { ConfigError, ShapeError } from '../errors.js';
import { KERNELS } from '../kernels.generated.js';
import { empty, formatShape, recordOp, type Tensor } from '../tensor.js';
import { reduceTo } from './elementwise.js';
import { expectF32, lastDim } from './util.js';

/** Element strides of one operand: batch (outer, inner), row and column. */
export interface Strides {
  batchOuter: number;
  batchInner: number;
  row: number;
  col: number;
  /** Element offset of the operand's first element. */
  offset?: number;
  /** Inner batch indices per operand index (several query heads sharing one KV head). */
  group?: number;
}

export interface GemmShape {
  M: number;
  N: number;
  K: number;
  /** Number of matrices; batch z splits into (z / innerBatch, z % innerBatch). */
  batch: number;
  innerBatch?: number;
}

export type MatmulVariant = 'tile4x4' | 'shared16' | 'subgroup8x8';

/** Every variant, in the order benchmarks list them. */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = ['tile4x4', 'shared16', 'subgroup8x8'];

/**
 * Shape classes that tuning measures separately: `skinny` is a product with one output side of at
 * most 64 (LoRA's rank-r factors, small models' heads), `small` one of under 2^26 multiply-adds
 * (below about 400^3), `large` the rest.
 */
export type MatmulShapeClass = 'small' | 'large' | 'skinny';

export const MATMUL_SHAPE_CLASSES: readonly MatmulShapeClass[] = ['small', 'large', 'skinny'];

/** Classify one product for the per-class variant choice. */
export function matmulShapeClass(shape: Pick<GemmShape, 'M' | 'N' | 'K'>): MatmulShapeClass {
  if (Math.min(shape.M, shape.N) <= 64) return 'skinny';
  return shape.M * shape.N * shape.K < 2 ** 26 ? 'small' : 'large';
}

// The subgroup variants sit after this marker in matmul.wgsl. The module without them compiles on
// every device, and the one with them needs `enable subgroups;` and the `subgroups` feature.
const SUBGROUP_MARKER = '// SUBGROUPS:';
const PLAIN_SOURCE = KERNELS.matmul.slice(0, KERNELS.matmul.indexOf(SUBGROUP_MARKER));
const SUBGROUP_SOURCE = `enable subgroups;\n${KERNELS.matmul}`;

interface VariantInfo {
  spec: KernelSpec;
  /** The same kernel reading B as f16 (frozen half-precision weights); needs shader-f16. */
  specF16: KernelSpec;
  /** Rows and columns of C per workgroup. */
  rows: number;
  cols: number;
  needsSubgroups: boolean;
}

const VARIANTS: Record<MatmulVariant, VariantInfo> = {
  tile4x4: { spec: spec(PLAIN_SOURCE, 'tile4x4'), specF16: spec(PLAIN_SOURCE, 'tile4x4', true), rows: 32, cols: 32, needsSubgroups: false },
  shared16: { spec: spec(PLAIN_SOURCE, 'shared16'), specF16: spec(PLAIN_SOURCE, 'shared16', true), rows: 64, cols: 64, needsSubgroups: false },
  subgroup8x8: {
    spec: spec(SUBGROUP_SOURCE, 'subgroup8x8'),
    specF16: spec(SUBGROUP_SOURCE, 'subgroup8x8', true),
    rows: 8,
    cols: 64,
    needsSubgroups: true,
  },
};

// subgroup8x8's fast path for a contiguous, 16-byte aligned f32 B: B's buffer is bound a second
// time as an array of vec4 (binding 4), so each k reads 4 columns in one load.
const SUBGROUP_VEC4: KernelSpec = { source: SUBGROUP_SOURCE, entry: 'subgroup8x8v', bindings: 'rrwr', defines: { B_TYPE: 'f32', ENABLE_F16: '' } };

function contiguousAlignedB(b: Tensor, sb: Strides, N: number): boolean {
  const aligned = (x: number | undefined) => (x ?? 0) % 4 === 0;
  return b.dtype === 'f32' && sb.col === 1 && N % 4 === 0 && aligned(sb.offset) && aligned(sb.batchOuter) && aligned(sb.batchInner) && aligned(sb.row);
}

function gemmParams(shape: GemmShape, sa: Strides, sb: Strides, sc: Strides): number[] {
  return [
    shape.M, shape.N, shape.K, shape.innerBatch ?? 1,
    sa.batchOuter, sa.batchInner, sa.row, sa.col,
    sb.batchOuter, sb.batchInner, sb.row, sb.col,
    sc.batchOuter, sc.batchInner, sc.row, sc.col,
    sa.group ?? 1, sb.group ?? 1, sa.offset ?? 0, sb.offset ?? 0,
    sc.offset ?? 0,
  ];
}

function spec(source: string, entry: string, halfB = false): KernelSpec {
  return {
    source,
    entry,
    bindings: 'rrw',
    defines: halfB ? { B_TYPE: 'f16', ENABLE_F16: 'enable f16;' } : { B_TYPE: 'f32', ENABLE_F16: '' },
  };
}

/**
 * True when this device can run `variant`: subgroup8x8 needs the `subgroups` feature and a reported
 * minimum subgroup size of at least 8, because it broadcasts from lanes 0..7 of one subgroup.
 */
export function matmulVariantSupported(variant: MatmulVariant): boolean {
  if (!VARIANTS[variant].needsSubgroups) return true;
  const info = engine().info;
  const minSize = (info.adapter.info as { subgroupMinSize?: number } | undefined)?.subgroupMinSize ?? 0;
  return info.features.has('subgroups') && minSize >= 8;
}

/** List the variants this device can run. */
export function supportedMatmulVariants(): MatmulVariant[] {
  return MATMUL_VARIANTS.filter(matmulVariantSupported);
}

let forced: MatmulVariant | null = null;
let tuned: Partial<Record<MatmulShapeClass, MatmulVariant>> = {};

/** Use one matmul variant for every shape from now on (benchmarks and tests); null undoes it. */
export function setMatmulVariant(variant: MatmulVariant | null): void {
  if (variant && !matmulVariantSupported(variant)) {
    throw new ConfigError(`matmul variant ${variant} needs the subgroups feature with subgroups of at least 8 lanes, which this adapter lacks`);
  }
  forced = variant;
}

/** Set the variant per shape class, as measured by `tuneMatmul`; classes left out use the default rule. */
export function setMatmulChoice(choice: Partial<Record<MatmulShapeClass, MatmulVariant>>): void {
  tuned = { ...choice };
}

/** Return the per-class choice set by `setMatmulChoice` (empty before tuning). */
export function matmulChoice(): Partial<Record<MatmulShapeClass, MatmulVariant>> {
  return { ...tuned };
}

/**
 * The variant for a product of this shape (a 1024^3 one when no shape is given): the one forced by
 * `setMatmulVariant`, else the tuned choice for its shape class, else the default rule. The default on
 * a software adapter is subgroup8x8 where supported and tile4x4 otherwise, and on a GPU shared16.
 */
export function matmulVariant(shape: Pick<GemmShape, 'M' | 'N' | 'K'> = { M: 1024, N: 1024, K: 1024 }): MatmulVariant {
  if (forced) return forced;
  const choice = tuned[matmulShapeClass(shape)];
  if (choice) return choice;
  if (!engine().info.isSoftware) return 'shared16';
  return matmulVariantSupported('subgroup8x8') ? 'subgroup8x8' : 'tile4x4';
}

/** C = alpha * A · B + beta * C over raw strided operands (no autograd, no shape checks). */
export function gemm(
  a: Tensor,
  sa: Strides,
  b: Tensor,
  sb: Strides,
  c: Tensor,
  sc: Strides,
  shape: GemmShape,
  alpha = 1,
  beta = 0,
  variant: MatmulVariant = matmulVariant(shape),
): void {
  const { M, N, K, batch } = shape;
  const v = VARIANTS[variant];
  if (a.dtype !== 'f32' || c.dtype !== 'f32' || (b.dtype !== 'f32' && b.dtype !== 'f16')) {
    throw new ShapeError(`gemm: A and C must be f32 and B f32 or f16, got ${a.describe()}, ${b.describe()}, ${c.describe()}`);
  }
  if (b.dtype === 'f16' && !engine().info.features.has('shader-f16')) {
    throw new ShapeError(`gemm: ${b.describe()} is f16, which needs the adapter's shader-f16 feature`);
  }
  const groups: [number, number, number] = [Math.ceil(N / v.cols), Math.ceil(M / v.rows), batch];
  const max = engine().device.limits.maxComputeWorkgroupsPerDimension;
  if (groups[1] > max && variant !== 'tile4x4') {
    // Tall products (over 8 * 65535 rows for subgroup8x8 with the default limit) take the variant
    // with the most rows per workgroup, which the engine still rejects past its own limit.
    gemm(a, sa, b, sb, c, sc, shape, alpha, beta, 'tile4x4');
    return;
  }
  if (variant === 'subgroup8x8' && contiguousAlignedB(b, sb, N)) {
    engine().dispatch(SUBGROUP_VEC4, gemmParams(shape, sa, sb, sc), [alpha, beta], [a.buffer, b.buffer, c.buffer, b.buffer], groups);
    return;
  }
  engine().dispatch(
    b.dtype === 'f16' ? v.specF16 : v.spec,
    gemmParams(shape, sa, sb, sc),
    [alpha, beta],
    [a.buffer, b.buffer, c.buffer],
    groups,
  );
}

/** Strides of a contiguous [batch, rows, cols] matrix, read transposed when `transposed`. */
function contiguous(rows: number, cols: number, transposed: boolean, batched: boolean): Strides {
  return {
    batchOuter: batched ? rows * cols : 0,
    batchInner: 0,
    row: transposed ? 1 : cols,
    col: transposed ? cols : 1,
  };
}

/**
 * Matrix product of the last two dimensions, batched over the leading ones:
 * a [..., M, K] (or [..., K, M] with transA) times b [..., K, N] (or [..., N, K] with transB).
 * A 2-D operand is shared by every batch of the other.
 */
export function matmul(a: Tensor, b: Tensor, options: { transA?: boolean; transB?: boolean } = {}): Tensor {
  expectF32('matmul', a, b);
  const { transA = false, transB = false } = options;
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new ShapeError(`matmul: needs at least 2-D tensors, got ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const Kb = transB ? bc : br;
  const N = transB ? br : bc;
  const aBatch = a.size / (ar * ac || 1);
  const bBatch = b.size / (br * bc || 1);
  const batch = Math.max(aBatch, bBatch);
  if (K !== Kb || (aBatch !== 1 && aBatch !== batch) || (bBatch !== 1 && bBatch !== batch)) {
    throw new ShapeError(
      `matmul: cannot multiply ${formatShape(a.shape)}${transA ? 'ᵀ' : ''} by ${formatShape(b.shape)}${transB ? 'ᵀ' : ''}`,
    );
  }
  const batchShape = (aBatch >= bBatch ? a : b).shape.slice(0, -2);
  const out = empty([...batchShape, M, N]);
  gemm(
    a, contiguous(ar, ac, transA, aBatch !== 1),
    b, contiguous(br, bc, transB, bBatch !== 1),
    out, contiguous(M, N, false, true),
    { M, N, K, batch },
  );
  recordOp('matmul', out, [a, b], [a, b], (g, [as, bs]) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = g · op(B)ᵀ, or op(B) · gᵀ when A was read transposed; summed over a shared A's batch.
      const full = transA ? matmul(bs, g, { transA: transB, transB: true }) : matmul(g, bs, { transB: !transB });
      ga = aBatch === 1 && batch > 1 ? sumBatch(full, a.shape) : full.reshape(a.shape);
    }
    if (b.requiresGrad) {
      // dB = op(A)ᵀ · g, or gᵀ · op(A) when B was read transposed.
      const full = transB ? matmul(g, as, { transA: true, transB: transA }) : matmul(as, g, { transA: !transA });
      gb = bBatch === 1 && batch > 1 ? sumBatch(full, b.shape) : full.reshape(b.shape);
    }
    return [ga, gb];
  });
  return out;
}

/** Sum a batched gradient [batch, r, c] down to the shared operand's shape [r, c]. */
function sumBatch(full: Tensor, shape: readonly number[]): Tensor {
  const summed = reduceTo(full, shape);
  full.dispose();
  return summed;
}

/**
 * y = x · wᵀ (+ bias), the layout of torch.nn.Linear: x [..., in], w [out, in], bias [out].
 */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
  expectF32('linear', x);
  if (w.dtype === 'f16' && w.requiresGrad) {
    throw new ShapeError(`linear: ${w.describe()} is f16 and requires a gradient; half-precision weights must stay frozen`);
  }
  if (w.dtype !== 'f16') expectF32('linear', w);
  const inF = lastDim(x);
  if (w.shape.length !== 2 || w.shape[1] !== inF) {
    throw new ShapeError(`linear: input ${formatShape(x.shape)} does not fit weight ${formatShape(w.shape)} ([out, in])`);
  }
  const outF = w.shape[0];
  const rows = x.size / inF;
  const outShape = [...x.shape.slice(0, -1), outF];
  const y = empty(outShape);
  gemm(
    x, { batchOuter: 0, batchInner: 0, row: inF, col: 1 },
    w, { batchOuter: 0, batchInner: 0, row: 1, col: inF },
    y, { batchOuter: 0, batchInner: 0, row: outF, col: 1 },
    { M: rows, N: outF, K: inF, batch: 1 },
  );
  recordOp('linear', y, [x, w], [x, w], (g, [xs, ws]) => {
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty(x.shape);
      gemm(
        g, { batchOuter: 0, batchInner: 0, row: outF, col: 1 },
        ws, { batchOuter: 0, batchInner: 0, row: inF, col: 1 },
        gx, { batchOuter: 0, batchInner: 0, row: inF, col: 1 },
        { M: rows, N: inF, K: outF, batch: 1 },
      );
    }
    if (w.requiresGrad) {
      gw = empty(w.shape);
      gemm(
        g, { batchOuter: 0, batchInner: 0, row: 1, col: outF },
        xs, { batchOuter: 0, batchInner: 0, row: inF, col: 1 },
        gw, { batchOuter: 0, batchInner: 0, row: inF, col: 1 },
        { M: outF, N: inF, K: rows, batch: 1 },
      );
    }
    return [gx, gw];
  });
  if (!bias) return y;
  if (bias.size !== outF) throw new ShapeError(`linear: bias ${bias.describe()} does not match ${outF} outputs`);
  // add() records its own node, so the bias gradient comes from add's backward.
  return addBias(y, bias);
}

let addBias: (y: Tensor, bias: Tensor) => Tensor = () => {
  throw new ShapeError('linear: bias support not loaded');
};

export function setBiasAdd(fn: (y: Tensor, bias: Tensor) => Tensor): void {
  addBias = fn;
}

/** Plain reference for tests: C = op(A) · op(B) for row-major 2-D arrays. */
export function matmulReference(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  transA = false,
  transB = false,
): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        s += (transA ? a[k * M + i] : a[i * K + k]) * (transB ? b[j * K + k] : b[k * N + j]);
      }
      c[i * N + j] = s;
    }
  }
  return c;
}
