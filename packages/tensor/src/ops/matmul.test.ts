import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { engine, init } from '../engine.js';
import { empty, fromData, tidy, type Tensor } from '../tensor.js';
import { maxAbsDiff, randomArray } from '../testing.js';
import { f16BitsToF32, f32ToF16Bits } from '../dtype.js';
import {
  gemm,
  matmul,
  matmulReference,
  matmulShapeClass,
  matmulVariant,
  setMatmulChoice,
  setMatmulVariant,
  supportedMatmulVariants,
  type GemmShape,
  type MatmulVariant,
  type Strides,
} from './matmul.js';

const RELATIVE_TOLERANCE = 1e-5;

beforeAll(async () => {
  await init();
});

afterEach(() => {
  setMatmulVariant(null);
  setMatmulChoice({});
});

async function readF32(t: Tensor): Promise<Float32Array> {
  return new Float32Array(await engine().read(t.buffer, 0, t.size * 4));
}

/** Index of the first element outside the tolerance, or -1; relative to max(1, |want|). */
function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): number {
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= RELATIVE_TOLERANCE * Math.max(1, Math.abs(want[i])))) return i;
  }
  return -1;
}

function rowMajor(cols: number, batchStride = 0): Strides {
  return { batchOuter: batchStride, batchInner: 0, row: cols, col: 1 };
}

const variants = (): MatmulVariant[] => supportedMatmulVariants();

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [33, 17, 65],
  [65, 64, 63],
  [9, 130, 4],
];

describe('matmul variants', () => {
  it('covers tile4x4 and shared16 on every adapter', () => {
    expect(variants()).toContain('tile4x4');
    expect(variants()).toContain('shared16');
  });

  for (const [M, N, K] of SHAPES) {
    for (const [transA, transB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`${M}x${N}x${K} transA=${transA} transB=${transB}`, async () => {
        const a = randomArray(M * K, M * 7 + K);
        const b = randomArray(K * N, N * 11 + K);
        const want = matmulReference(a, b, M, N, K, transA, transB);
        const ta = fromData(a, transA ? [K, M] : [M, K]);
        const tb = fromData(b, transB ? [N, K] : [K, N]);
        for (const variant of variants()) {
          setMatmulVariant(variant);
          const out = matmul(ta, tb, { transA, transB });
          expect(out.shape).toEqual([M, N]);
          expect({ variant, mismatch: firstMismatch(await readF32(out), want) }).toEqual({ variant, mismatch: -1 });
          out.dispose();
        }
      });
    }
  }

  it('alpha and beta accumulate into C', async () => {
    const [M, N, K] = [21, 70, 13];
    const a = randomArray(M * K, 1);
    const b = randomArray(K * N, 2);
    const c0 = randomArray(M * N, 3);
    const product = matmulReference(a, b, M, N, K);
    const want = product.map((v, i) => 0.5 * v - 2 * c0[i]);
    const ta = fromData(a, [M, K]);
    const tb = fromData(b, [K, N]);
    for (const variant of variants()) {
      const tc = fromData(c0, [M, N]);
      gemm(ta, rowMajor(K), tb, rowMajor(N), tc, rowMajor(N), { M, N, K, batch: 1 }, 0.5, -2, variant);
      expect({ variant, mismatch: firstMismatch(await readF32(tc), want) }).toEqual({ variant, mismatch: -1 });
      tc.dispose();
    }
  });

  it('batched heads with offsets and GQA groups', async () => {
    // Q [2 batches, 4 heads, M, K] against K^T of [2 batches, 2 kv heads, N, K]: heads 0-1 share kv
    // head 0, heads 2-3 share kv head 1. C is written head-interleaved [batch, M, heads, N] after an
    // offset of 5 elements, the layout attention uses before its output projection.
    const [batches, heads, kvHeads, M, N, K] = [2, 4, 2, 9, 11, 6];
    const group = heads / kvHeads;
    const q = randomArray(batches * heads * M * K, 4);
    const kv = randomArray(batches * kvHeads * N * K, 5);
    const offset = 5;
    const cSize = offset + batches * M * heads * N;
    const shape: GemmShape = { M, N, K, batch: batches * heads, innerBatch: heads };
    const sa: Strides = { batchOuter: heads * M * K, batchInner: M * K, row: K, col: 1 };
    const sb: Strides = { batchOuter: kvHeads * N * K, batchInner: N * K, row: 1, col: K, group };
    const sc: Strides = { batchOuter: M * heads * N, batchInner: N, row: heads * N, col: 1, offset };

    const want = new Float64Array(cSize);
    for (let z = 0; z < batches; z++) {
      for (let h = 0; h < heads; h++) {
        const qs = q.subarray((z * heads + h) * M * K, (z * heads + h + 1) * M * K);
        const kvIndex = z * kvHeads + Math.floor(h / group);
        const ks = kv.subarray(kvIndex * N * K, (kvIndex + 1) * N * K);
        const block = matmulReference(qs, ks, M, N, K, false, true);
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) want[offset + z * M * heads * N + i * heads * N + h * N + j] = block[i * N + j];
        }
      }
    }

    const tq = fromData(q, [batches * heads * M * K]);
    const tk = fromData(kv, [batches * kvHeads * N * K]);
    for (const variant of variants()) {
      const tc = fromData(new Float32Array(cSize), [cSize]);
      gemm(tq, sa, tk, sb, tc, sc, shape, 1, 0, variant);
      expect({ variant, mismatch: firstMismatch(await readF32(tc), want) }).toEqual({ variant, mismatch: -1 });
      tc.dispose();
    }
  });

  it('K of zero scales C by beta only', async () => {
    const c0 = randomArray(12, 6);
    for (const variant of variants()) {
      const tc = fromData(c0, [3, 4]);
      const unused = empty([4]);
      gemm(unused, rowMajor(0), unused, rowMajor(4), tc, rowMajor(4), { M: 3, N: 4, K: 0, batch: 1 }, 1, 3, variant);
      const got = await readF32(tc);
      expect({ variant, mismatch: firstMismatch(got, Array.from(c0, (v) => 3 * v)) }).toEqual({ variant, mismatch: -1 });
      tc.dispose();
      unused.dispose();
    }
  });
});

describe('matmul variant choice', () => {
  it('classifies shapes', () => {
    expect(matmulShapeClass({ M: 256, N: 256, K: 256 })).toBe('small');
    expect(matmulShapeClass({ M: 1024, N: 1024, K: 1024 })).toBe('large');
    expect(matmulShapeClass({ M: 1024, N: 64, K: 64 })).toBe('skinny');
    expect(matmulShapeClass({ M: 16, N: 4096, K: 4096 })).toBe('skinny');
  });

  it('follows the tuned choice per class', () => {
    setMatmulChoice({ small: 'shared16', large: 'tile4x4' });
    expect(matmulVariant({ M: 256, N: 256, K: 256 })).toBe('shared16');
    expect(matmulVariant({ M: 2048, N: 2048, K: 2048 })).toBe('tile4x4');
    setMatmulVariant('shared16');
    expect(matmulVariant({ M: 2048, N: 2048, K: 2048 })).toBe('shared16');
  });

  it('defaults by adapter kind without tuning', () => {
    const info = engine().info;
    const expected = !info.isSoftware ? 'shared16' : variants().includes('subgroup8x8') ? 'subgroup8x8' : 'tile4x4';
    expect(matmulVariant({ M: 512, N: 512, K: 512 })).toBe(expected);
  });
});

describe('matmul with an f16 right operand', () => {
  it('every variant matches the reference on the f16-rounded values', async () => {
    if (!engine().info.features.has('shader-f16')) return; // f16 needs the adapter's shader-f16
    const [M, N, K] = [33, 17, 65];
    const a = randomArray(M * K, 41);
    const b = randomArray(N * K, 42);
    const bits = Uint16Array.from(b, f32ToF16Bits);
    const rounded = Float64Array.from(bits, f16BitsToF32);
    const expected = matmulReference(a, rounded, M, N, K, false, true);
    for (const variant of supportedMatmulVariants()) {
      const out = tidy(() => {
        const c = empty([M, N]);
        gemm(
          fromData(a, [M, K]), { batchOuter: 0, batchInner: 0, row: K, col: 1 },
          fromData(bits, [N, K], 'f16'), { batchOuter: 0, batchInner: 0, row: 1, col: K },
          c, { batchOuter: 0, batchInner: 0, row: N, col: 1 },
          { M, N, K, batch: 1 }, 1, 0, variant,
        );
        return c;
      });
      const got = (await out.data()) as Float32Array;
      const { diff } = maxAbsDiff(got, expected);
      expect(diff, variant).toBeLessThan(1e-4);
    }
  });
});

describe('subgroup8x8 with a contiguous aligned B', () => {
  it('takes the vec4 path and matches the reference', async () => {
    if (!supportedMatmulVariants().includes('subgroup8x8')) return; // needs subgroups of 8 lanes
    // N a multiple of 4, B row-major: the vec4 path. Edges in M, N (past the last 64 columns) and K.
    for (const [M, N, K] of [[33, 68, 37], [8, 4, 1], [70, 132, 65]]) {
      const a = randomArray(M * K, 51);
      const b = randomArray(K * N, 52);
      const out = tidy(() => {
        const c = empty([M, N]);
        gemm(
          fromData(a, [M, K]), { batchOuter: 0, batchInner: 0, row: K, col: 1 },
          fromData(b, [K, N]), { batchOuter: 0, batchInner: 0, row: N, col: 1 },
          c, { batchOuter: 0, batchInner: 0, row: N, col: 1 },
          { M, N, K, batch: 1 }, 1, 0, 'subgroup8x8',
        );
        return c;
      });
      const { diff } = maxAbsDiff((await out.data()) as Float32Array, matmulReference(a, b, M, N, K));
      expect(diff, `${M}x${N}x${K}`).toBeLessThan(1e-4);
    }
  });
});
