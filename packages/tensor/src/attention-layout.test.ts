import { beforeAll, describe, expect, it } from 'vitest';
import { init } from './engine.js';
import { attention, mul, sliceLastDim, sum } from './ops/index.js';
import { backward, fromData, tidy, type Tensor } from './tensor.js';
import { maxAbsDiff, randomArray } from './testing.js';

beforeAll(async () => {
  await init();
});

const BATCH = 2;
const SEQ = 4;
const HEADS = 2;
const KV_HEADS = 1;
const HEAD_DIM = 4;
const Q_WIDTH = HEADS * HEAD_DIM;
const KV_WIDTH = KV_HEADS * HEAD_DIM;

function leaf(values: Float32Array, shape: number[]): Tensor {
  const t = fromData(values, shape);
  t.requiresGrad = true;
  return t;
}

/** Output values and the input gradient of sum(weights * f(input)). */
async function outputAndGradient(input: Tensor, f: (x: Tensor) => Tensor, weights: Float32Array) {
  const out = tidy(() => {
    const y = f(input);
    backward(sum(mul(y, fromData(weights, y.shape))));
    return y;
  });
  const result = { y: await out.data(), grad: await input.grad!.data() };
  out.dispose();
  input.grad!.dispose();
  input.grad = null;
  return result;
}

describe('attention through layouts', () => {
  it('fused QKV gradient equals sliced gradient', async () => {
    const width = Q_WIDTH + 2 * KV_WIDTH;
    const values = randomArray(BATCH * SEQ * width, 3);
    const weights = randomArray(BATCH * SEQ * Q_WIDTH, 4);
    const options = { heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM };
    const layout = (offset: number) => ({ offset, batchStride: SEQ * width, rowStride: width });

    const fused = leaf(values, [BATCH, SEQ, width]);
    const viaLayouts = await outputAndGradient(
      fused,
      (x) => attention(x, x, x, { ...options, qLayout: layout(0), kLayout: layout(Q_WIDTH), vLayout: layout(Q_WIDTH + KV_WIDTH) }),
      weights,
    );
    const sliced = leaf(values, [BATCH, SEQ, width]);
    const viaSlices = await outputAndGradient(
      sliced,
      (x) =>
        attention(sliceLastDim(x, 0, Q_WIDTH), sliceLastDim(x, Q_WIDTH, KV_WIDTH), sliceLastDim(x, Q_WIDTH + KV_WIDTH, KV_WIDTH), options),
      weights,
    );

    expect(maxAbsDiff(viaLayouts.y, viaSlices.y).diff).toBe(0);
    expect(viaLayouts.grad.length).toBe(BATCH * SEQ * width);
    const { diff, index } = maxAbsDiff(viaLayouts.grad, viaSlices.grad);
    expect(diff, `element ${index}`).toBeLessThan(1e-6);
    // Every part of the projection (q, k and v columns) received some gradient.
    for (const [start, length] of [[0, Q_WIDTH], [Q_WIDTH, KV_WIDTH], [Q_WIDTH + KV_WIDTH, KV_WIDTH]]) {
      const part = Array.from(viaLayouts.grad).filter((_, i) => i % width >= start && i % width < start + length);
      expect(part.some((g) => Math.abs(g) > 1e-4), `columns from ${start}`).toBe(true);
    }
    fused.dispose();
    sliced.dispose();
  });

  it('KV cache rows past keyLength get zero gradient', async () => {
    const cached = SEQ + 2;
    const qValues = randomArray(BATCH * SEQ * Q_WIDTH, 5);
    const kValues = randomArray(BATCH * cached * KV_WIDTH, 6);
    const vValues = randomArray(BATCH * cached * KV_WIDTH, 7);
    const weights = randomArray(BATCH * SEQ * Q_WIDTH, 8);
    const options = { heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM };

    const q = fromData(qValues, [BATCH, SEQ, Q_WIDTH]);
    const v = fromData(vValues, [BATCH, cached, KV_WIDTH]);
    const kLong = leaf(kValues, [BATCH, cached, KV_WIDTH]);
    const long = await outputAndGradient(kLong, (k) => attention(q, k, v, { ...options, keyLength: SEQ }), weights);

    // The same keys without the extra cache rows.
    const kShortValues = new Float32Array(BATCH * SEQ * KV_WIDTH);
    for (let b = 0; b < BATCH; b++) {
      kShortValues.set(kValues.subarray(b * cached * KV_WIDTH, (b * cached + SEQ) * KV_WIDTH), b * SEQ * KV_WIDTH);
    }
    const vShortValues = new Float32Array(BATCH * SEQ * KV_WIDTH);
    for (let b = 0; b < BATCH; b++) {
      vShortValues.set(vValues.subarray(b * cached * KV_WIDTH, (b * cached + SEQ) * KV_WIDTH), b * SEQ * KV_WIDTH);
    }
    const vTrimmed = fromData(vShortValues, [BATCH, SEQ, KV_WIDTH]);
    const kShort = leaf(kShortValues, [BATCH, SEQ, KV_WIDTH]);
    const short = await outputAndGradient(kShort, (k) => attention(q, k, vTrimmed, options), weights);

    expect(maxAbsDiff(long.y, short.y).diff).toBeLessThan(1e-6);
    expect(long.grad.length).toBe(BATCH * cached * KV_WIDTH);
    for (let b = 0; b < BATCH; b++) {
      for (let t = 0; t < cached; t++) {
        for (let d = 0; d < KV_WIDTH; d++) {
          const got = long.grad[(b * cached + t) * KV_WIDTH + d];
          const expected = t < SEQ ? short.grad[(b * SEQ + t) * KV_WIDTH + d] : 0;
          expect(Math.abs(got - expected), `batch ${b} row ${t} column ${d}`).toBeLessThan(1e-6);
        }
      }
    }
    for (const t of [q, v, kLong, vTrimmed, kShort]) t.dispose();
  });
});
