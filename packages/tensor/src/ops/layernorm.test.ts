import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engine, init } from '../engine.js';
import { backward, fromData, noGrad, tidy } from '../tensor.js';
import { maxAbsDiff, randomArray } from '../testing.js';
import { layerNorm, layerNormReference, mul, sum } from './index.js';

const EPS = 1e-5;

beforeAll(async () => {
  await init();
});

// Both kernel variants run on any adapter: the adapter type only picks the default, so the test
// sets it for each variant. Rows of 70 and 130 columns are shorter and longer than one workgroup.
describe.each([
  ['one invocation per row', true, 3, 70],
  ['one invocation per row', true, 2, 130],
  ['one workgroup per row', false, 3, 70],
  ['one workgroup per row', false, 2, 130],
])('layerNorm, %s (software default: %s), [%i, %i]', (_variant, software, rows, cols) => {
  let adapterIsSoftware: boolean;
  beforeAll(() => {
    adapterIsSoftware = engine().info.isSoftware;
    engine().info.isSoftware = software;
  });
  afterAll(() => {
    engine().info.isSoftware = adapterIsSoftware;
  });

  // An offset of 3 keeps the mean away from zero, which a one-pass variance would get wrong.
  const x = randomArray(rows * cols, 11, 1).map((v) => v + 3);
  const w = randomArray(cols, 12, 1);
  const b = randomArray(cols, 13, 1);

  it('forward matches the float64 reference', async () => {
    const out = await tidy(() => noGrad(() => layerNorm(fromData(x, [rows, cols]), fromData(w, [cols]), fromData(b, [cols]), EPS))).data();
    const { diff, index } = maxAbsDiff(out, layerNormReference(x, w, b, cols, EPS));
    expect(diff, `element ${index}`).toBeLessThan(2e-5);
  });

  it('gradients match finite differences', async () => {
    const weights = randomArray(rows * cols, 99);
    const inputs = [fromData(x, [rows, cols]), fromData(w, [cols]), fromData(b, [cols])];
    for (const t of inputs) t.requiresGrad = true;
    tidy(() => {
      const y = layerNorm(inputs[0], inputs[1], inputs[2], EPS);
      backward(sum(mul(y, fromData(weights, [rows, cols]))));
    });
    const grads = [];
    for (const t of inputs) {
      grads.push(await t.grad!.data());
      t.grad!.dispose();
      t.dispose();
    }

    // Loss = sum(weights * layerNorm(x, w, b)), differentiated by central differences in float64.
    const loss = (values: Float64Array[]) => {
      const y = layerNormReference(values[0], values[1], values[2], cols, EPS);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * weights[i];
      return s;
    };
    const h = 1e-6;
    const base = [x, w, b].map((v) => Float64Array.from(v));
    for (let k = 0; k < 3; k++) {
      const numeric = new Float64Array(base[k].length);
      for (let i = 0; i < numeric.length; i++) {
        const v = base[k][i];
        base[k][i] = v + h;
        const up = loss(base);
        base[k][i] = v - h;
        const down = loss(base);
        base[k][i] = v;
        numeric[i] = (up - down) / (2 * h);
      }
      const { diff, index } = maxAbsDiff(grads[k], numeric);
      const scale = Math.max(1, ...Array.from(numeric, Math.abs));
      expect(diff / scale, `input ${k} element ${index}: got ${grads[k][index]}, expected ${numeric[index]}`).toBeLessThan(1e-4);
    }
  });
});
