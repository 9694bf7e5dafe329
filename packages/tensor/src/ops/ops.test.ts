import { beforeAll, describe, expect, it } from 'vitest';
import { init } from '../engine.js';
import { backward, fromData, noGrad, tidy, type Tensor } from '../tensor.js';
import { maxAbsDiff, randomArray, seededRandom } from '../testing.js';
import {
  add,
  attention,
  attentionReference,
  concatLastDim,
  crossEntropy,
  crossEntropyReference,
  divergence,
  divergenceReference,
  dropout,
  dropoutReference,
  embedding,
  embeddingReference,
  gelu,
  linear,
  MAPS,
  matmul,
  matmulReference,
  mean,
  mul,
  rmsNorm,
  rmsNormReference,
  rope,
  ropeInverseFrequencies,
  ropeReference,
  scale,
  silu,
  sliceLastDim,
  sum,
  swiglu,
  type DivergenceDirection,
} from './index.js';

/**
 * One row of the op table: input shapes, the GPU op, and a float64 reference of the same
 * function. Every row gets a forward test (GPU against reference) and a gradient test (GPU
 * backward against central finite differences of the reference).
 */
interface OpCase {
  name: string;
  /** Shapes of the differentiable f32 inputs. */
  shapes: number[][];
  /** Integer inputs (ids, targets), fixed. */
  ints?: { values: number[]; shape: number[] }[];
  gpu: (inputs: Tensor[], ints: Tensor[]) => Tensor;
  reference: (inputs: Float64Array[], ints: number[][]) => ArrayLike<number>;
  /** Scale of the random inputs. */
  range?: number;
  forwardTolerance?: number;
  gradTolerance?: number;
  /** Inputs that get no gradient check (for example integer-like or frozen). */
  noGrad?: number[];
}

const elementwise = (name: keyof typeof MAPS, a: number, b = 0, c = 0, alpha = 1) => MAPS[name].reference(a, b, c, alpha);

function mapRef(f: (...v: number[]) => number, inputs: Float64Array[], n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(...inputs.map((x) => x[i % x.length]));
  return out;
}

const targets = (rows: number, V: number, seed: number) => {
  const rand = seededRandom(seed);
  return Array.from({ length: rows }, (_, i) => (i % 3 === 1 ? -100 : Math.floor(rand() * V)));
};

function attentionCase(batch: number, seq: number, heads: number, kvHeads: number, headDim: number): OpCase {
  return {
    name: `attention b${batch} t${seq} h${heads}/${kvHeads} d${headDim}`,
    shapes: [
      [batch, seq, heads * headDim],
      [batch, seq, kvHeads * headDim],
      [batch, seq, kvHeads * headDim],
    ],
    gpu: ([q, k, v]) => attention(q, k, v, { heads, kvHeads, headDim }),
    reference: ([q, k, v]) => attentionReference(q, k, v, batch, seq, heads, kvHeads, headDim),
  };
}

function ropeCase(layout: 'halves' | 'pairs', heads: number, headDim: number, seq: number): OpCase {
  const inv = ropeInverseFrequencies(headDim, 10000);
  return {
    name: `rope ${layout} h${heads} d${headDim} t${seq}`,
    shapes: [[2, seq, heads * headDim]],
    gpu: ([x]) => rope(x, heads, headDim, { layout, invFreq: fromData(inv, [inv.length]) }),
    reference: ([x]) => ropeReference(x, heads, headDim, seq, inv, layout),
  };
}

function divergenceCase(direction: DivergenceDirection, temperature: number): OpCase {
  const rows = 7;
  const V = 37;
  const t = targets(rows, V, 5);
  const counted = t.filter((x) => x >= 0).length;
  const options = { direction, temperature, jsdBeta: 0.5, normalizer: counted };
  return {
    name: `divergence ${direction} T=${temperature}`,
    shapes: [
      [rows, V],
      [rows, V],
    ],
    ints: [{ values: t, shape: [rows] }],
    range: 3,
    gpu: ([s, teacher], [tg]) => divergence(s, teacher, tg, options),
    reference: ([s, teacher], [tg]) => [divergenceReference(s, teacher, tg, V, options)],
    noGrad: [1],
  };
}

const CASES: OpCase[] = [
  {
    name: 'add same shape',
    shapes: [[3, 5], [3, 5]],
    gpu: ([a, b]) => add(a, b),
    reference: (x) => mapRef((a, b) => a + b, x, 15),
  },
  {
    name: 'add broadcast row',
    shapes: [[4, 7], [7]],
    gpu: ([a, b]) => add(a, b),
    reference: (x) => mapRef((a, b) => a + b, x, 28),
  },
  {
    name: 'mul broadcast scalar',
    shapes: [[2, 3, 5], [1]],
    gpu: ([a, b]) => mul(a, b),
    reference: (x) => mapRef((a, b) => a * b, x, 30),
  },
  { name: 'scale', shapes: [[13]], gpu: ([a]) => scale(a, -2.5), reference: (x) => mapRef((a) => -2.5 * a, x, 13) },
  { name: 'silu', shapes: [[1, 17]], range: 4, gpu: ([a]) => silu(a), reference: (x) => mapRef((a) => elementwise('silu', a), x, 17) },
  { name: 'gelu', shapes: [[19]], range: 4, gpu: ([a]) => gelu(a), reference: (x) => mapRef((a) => elementwise('gelu', a), x, 19) },
  {
    name: 'swiglu',
    shapes: [[3, 11], [3, 11]],
    range: 3,
    gpu: ([g, u]) => swiglu(g, u),
    reference: (x) => mapRef((g, u) => elementwise('swiglu', g, u), x, 33),
  },
  {
    name: 'matmul 2-D odd',
    shapes: [[5, 7], [7, 3]],
    gpu: ([a, b]) => matmul(a, b),
    reference: ([a, b]) => matmulReference(a, b, 5, 3, 7),
  },
  {
    name: 'matmul transposed both',
    shapes: [[7, 5], [3, 7]],
    gpu: ([a, b]) => matmul(a, b, { transA: true, transB: true }),
    reference: ([a, b]) => matmulReference(a, b, 5, 3, 7, true, true),
  },
  {
    name: 'matmul batched with shared right',
    shapes: [[2, 6, 9], [9, 5]],
    gpu: ([a, b]) => matmul(a, b),
    reference: ([a, b]) => {
      const out = new Float64Array(2 * 6 * 5);
      for (let z = 0; z < 2; z++) out.set(matmulReference(a.subarray(z * 54, z * 54 + 54), b, 6, 5, 9), z * 30);
      return out;
    },
  },
  {
    name: 'matmul batched transA shared left',
    shapes: [[9, 6], [3, 9, 5]],
    gpu: ([a, b]) => matmul(a, b, { transA: true }),
    reference: ([a, b]) => {
      const out = new Float64Array(3 * 6 * 5);
      for (let z = 0; z < 3; z++) out.set(matmulReference(a, b.subarray(z * 45, z * 45 + 45), 6, 5, 9, true), z * 30);
      return out;
    },
  },
  {
    name: 'linear with bias',
    shapes: [[2, 3, 10], [6, 10], [6]],
    gpu: ([x, w, b]) => linear(x, w, b),
    reference: ([x, w, b]) => {
      const out = matmulReference(x, w, 6, 6, 10, false, true);
      for (let i = 0; i < out.length; i++) out[i] += b[i % 6];
      return out;
    },
  },
  {
    name: 'linear 1 row',
    shapes: [[1, 1], [1, 1]],
    gpu: ([x, w]) => linear(x, w),
    reference: ([x, w]) => [x[0] * w[0]],
  },
  {
    name: 'rmsNorm',
    shapes: [[3, 70], [70]],
    gpu: ([x, w]) => rmsNorm(x, w, 1e-5),
    reference: ([x, w]) => rmsNormReference(x, w, 70, 1e-5),
  },
  ropeCase('halves', 3, 8, 5),
  ropeCase('pairs', 2, 6, 4),
  attentionCase(2, 5, 4, 2, 8),
  attentionCase(1, 1, 1, 1, 4),
  attentionCase(1, 9, 3, 1, 6),
  {
    name: 'embedding',
    shapes: [[11, 5]],
    ints: [{ values: [3, 0, 10, 3, 7], shape: [5] }],
    gpu: ([w], [ids]) => embedding(w, ids),
    reference: ([w], [ids]) => embeddingReference(w, ids, 5),
  },
  {
    name: 'crossEntropy',
    shapes: [[7, 37]],
    ints: [{ values: targets(7, 37, 3), shape: [7] }],
    range: 3,
    gpu: ([z], [t]) => crossEntropy(z, t, 5),
    reference: ([z], [t]) => [crossEntropyReference(z, t, 37, 5)],
  },
  divergenceCase('forward', 1),
  divergenceCase('reverse', 1),
  divergenceCase('jsd', 1),
  divergenceCase('forward', 2),
  divergenceCase('reverse', 2),
  divergenceCase('jsd', 2),
  {
    name: 'dropout',
    shapes: [[300]],
    gpu: ([x]) => dropout(x, 0.25, 1234, 77),
    reference: ([x]) => dropoutReference(x, 0.25, 1234, 77),
  },
  {
    name: 'sliceLastDim',
    shapes: [[3, 9]],
    gpu: ([x]) => sliceLastDim(x, 2, 4),
    reference: ([x]) => Array.from({ length: 12 }, (_, i) => x[Math.floor(i / 4) * 9 + 2 + (i % 4)]),
  },
  {
    name: 'concatLastDim',
    shapes: [[2, 3], [2, 1]],
    gpu: ([a, b]) => concatLastDim([a, b]),
    reference: ([a, b]) => [a[0], a[1], a[2], b[0], a[3], a[4], a[5], b[1]],
  },
  { name: 'sum', shapes: [[1000]], gpu: ([x]) => sum(x), reference: ([x]) => [x.reduce((s, v) => s + v, 0)] },
  { name: 'mean', shapes: [[3, 7]], gpu: ([x]) => mean(x), reference: ([x]) => [x.reduce((s, v) => s + v, 0) / 21] },
];

function makeInputs(c: OpCase): { f32: Float32Array[]; ints: number[][] } {
  return {
    f32: c.shapes.map((s, i) => randomArray(s.reduce((a, b) => a * b, 1), 1000 + i * 17 + c.name.length, c.range ?? 1)),
    ints: (c.ints ?? []).map((x) => x.values),
  };
}

beforeAll(async () => {
  await init();
});

describe('op table', () => {
  for (const c of CASES) {
    it(`${c.name}: forward matches the reference`, async () => {
      const { f32, ints } = makeInputs(c);
      const out = await tidy(() => {
        const ts = f32.map((x, i) => fromData(x, c.shapes[i]));
        const is = ints.map((x, i) => fromData(x, c.ints![i].shape, 'i32'));
        return noGrad(() => c.gpu(ts, is));
      }).data();
      const expected = c.reference(
        f32.map((x) => Float64Array.from(x)),
        ints,
      );
      const { diff, index } = maxAbsDiff(out, expected);
      const scaleOf = Math.max(1, ...Array.from(expected, Math.abs));
      expect(diff / scaleOf, `element ${index}: got ${out[index]}, expected ${expected[index]}`).toBeLessThan(
        c.forwardTolerance ?? 2e-5,
      );
    });

    it(`${c.name}: gradient matches finite differences`, async () => {
      const { f32, ints } = makeInputs(c);
      const outSize = c.reference(f32.map((x) => Float64Array.from(x)), ints).length;
      const weights = randomArray(outSize, 99);
      // Loss = sum(weights * op(inputs)); its gradient is checked against the reference.
      const grads = await (async () => {
        const ts = f32.map((x, i) => {
          const t = fromData(x, c.shapes[i]);
          t.requiresGrad = true;
          return t;
        });
        tidy(() => {
          const is = ints.map((x, i) => fromData(x, c.ints![i].shape, 'i32'));
          const y = c.gpu(ts, is);
          const w = fromData(weights, y.shape);
          backward(sum(mul(y, w)));
        });
        const out = [];
        for (const t of ts) {
          out.push(t.grad ? await t.grad.data() : null);
          t.grad?.dispose();
          t.dispose();
        }
        return out;
      })();
      const loss = (inputs: Float64Array[]) => {
        const y = c.reference(inputs, ints);
        let s = 0;
        for (let i = 0; i < y.length; i++) s += y[i] * weights[i];
        return s;
      };
      const h = 1e-6;
      for (let k = 0; k < f32.length; k++) {
        if (c.noGrad?.includes(k)) continue;
        const base = f32.map((x) => Float64Array.from(x));
        const numeric = new Float64Array(f32[k].length);
        for (let i = 0; i < numeric.length; i++) {
          const v = base[k][i];
          base[k][i] = v + h;
          const up = loss(base);
          base[k][i] = v - h;
          const down = loss(base);
          base[k][i] = v;
          numeric[i] = (up - down) / (2 * h);
        }
        const g = grads[k];
        expect(g, `input ${k} got no gradient`).not.toBeNull();
        const { diff, index } = maxAbsDiff(g!, numeric);
        const scaleOf = Math.max(1, ...Array.from(numeric, Math.abs));
        expect(diff / scaleOf, `input ${k} element ${index}: got ${g![index]}, expected ${numeric[index]}`).toBeLessThan(
          c.gradTolerance ?? 1e-4,
        );
      }
    });
  }
});
