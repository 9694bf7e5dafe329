import { engine } from '../engine.js';
import { ShapeError } from '../errors.js';
import { empty, formatShape, recordOp, type Tensor } from '../tensor.js';
import { reduceTo } from './elementwise.js';
import { expectF32, kernel, lastDim } from './util.js';

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

export type MatmulVariant = 'tile4x4' | 'shared16';

const VARIANTS: Record<MatmulVariant, { spec: ReturnType<typeof kernel>; tile: number }> = {
  tile4x4: { spec: kernel('matmul', 'tile4x4', 'rrw'), tile: 32 },
  shared16: { spec: kernel('matmul', 'shared16', 'rrw'), tile: 64 },
};

let chosen: MatmulVariant | null = null;

/** Use one matmul variant from now on (benchmarks and tuning set this). */
export function setMatmulVariant(variant: MatmulVariant | null): void {
  chosen = variant;
}

/**
 * The variant in use: the one set by `setMatmulVariant` (tuning measures both at init), else
 * register tiles on a software adapter and workgroup-memory tiles on a GPU.
 */
export function matmulVariant(): MatmulVariant {
  return chosen ?? (engine().info.isSoftware ? 'tile4x4' : 'shared16');
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
  variant: MatmulVariant = matmulVariant(),
): void {
  const { M, N, K, batch } = shape;
  const v = VARIANTS[variant];
  engine().dispatch(
    v.spec,
    [
      M, N, K, shape.innerBatch ?? 1,
      sa.batchOuter, sa.batchInner, sa.row, sa.col,
      sb.batchOuter, sb.batchInner, sb.row, sb.col,
      sc.batchOuter, sc.batchInner, sc.row, sc.col,
      sa.group ?? 1, sb.group ?? 1, sa.offset ?? 0, sb.offset ?? 0,
      sc.offset ?? 0,
    ],
    [alpha, beta],
    [a.buffer, b.buffer, c.buffer],
    [Math.ceil(N / v.tile), Math.ceil(M / v.tile), batch],
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
  expectF32('linear', x, w);
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
