import { beforeAll, describe, expect, it } from 'vitest';
import { init } from './engine.js';
import { AdamW, adamwReference, clipGradNorm, emaUpdate, type AdamWOptions } from './optim.js';
import { fromData, type Tensor } from './tensor.js';
import { maxAbsDiff, randomArray } from './testing.js';

beforeAll(async () => {
  await init();
});

function parameter(values: Float32Array, shape: number[]): Tensor {
  const p = fromData(values, shape);
  p.requiresGrad = true;
  return p;
}

/** Return the largest |a - b| divided by max(1, max |b|). */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const scale = Math.max(1, ...Array.from(b, Math.abs));
  return maxAbsDiff(a, b).diff / scale;
}

describe('AdamW', () => {
  it('matches adamwReference over 3 steps with weight decay', async () => {
    const options: AdamWOptions = { lr: 0.05, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 };
    const shapes = [[3, 5], [7]];
    const initial = shapes.map((s, i) => randomArray(s[0] * (s[1] ?? 1), 10 + i));
    const params = initial.map((v, i) => parameter(v, shapes[i]));
    const opt = new AdamW(params, options);

    const expected: { p: Float64Array; m: Float64Array; v: Float64Array }[] = initial.map((v) => ({
      p: Float64Array.from(v),
      m: new Float64Array(v.length),
      v: new Float64Array(v.length),
    }));
    for (let step = 1; step <= 3; step++) {
      params.forEach((p, i) => {
        const g = randomArray(p.size, 100 * step + i, 2);
        p.grad = fromData(g, p.shape);
        expected[i] = adamwReference(expected[i].p, g, expected[i].m, expected[i].v, step, options);
      });
      opt.update();
      opt.zeroGrad();
    }

    expect(opt.step).toBe(3);
    const state = await opt.state();
    for (let i = 0; i < params.length; i++) {
      const got = await params[i].data();
      expect(relativeError(got, expected[i].p), `parameter ${i}`).toBeLessThan(1e-5);
      expect(relativeError(state.exp_avg[i], expected[i].m), `exp_avg ${i}`).toBeLessThan(1e-5);
      expect(relativeError(state.exp_avg_sq[i], expected[i].v), `exp_avg_sq ${i}`).toBeLessThan(1e-5);
      // The update moved the parameters by a visible amount, so the comparison is not trivial.
      expect(maxAbsDiff(got, initial[i]).diff).toBeGreaterThan(0.05);
    }
    opt.dispose();
    for (const p of params) p.dispose();
  });

  it('skips parameters without a gradient', async () => {
    const a = parameter(Float32Array.from([1, 2]), [2]);
    const b = parameter(Float32Array.from([3, 4]), [2]);
    const opt = new AdamW([a, b], { lr: 0.1 });
    a.grad = fromData([1, -1], [2]);
    opt.update();
    expect(Array.from(await b.data())).toEqual([3, 4]);
    expect(Array.from(await a.data())).not.toEqual([1, 2]);
    opt.zeroGrad();
    expect(a.grad).toBeNull();
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  it('state survives a save and load round trip', async () => {
    const options = { lr: 0.02, weightDecay: 0.01 };
    const values = randomArray(6, 3);
    const first = parameter(values, [2, 3]);
    const second = parameter(values, [2, 3]);
    const optFirst = new AdamW([first], options);
    for (let step = 1; step <= 2; step++) {
      first.grad = fromData(randomArray(6, 40 + step), [2, 3]);
      optFirst.update();
      optFirst.zeroGrad();
    }

    // A second optimizer over a copy of the parameter continues from the saved state.
    const saved = await optFirst.state();
    expect(saved.exp_avg[0].some((x) => x !== 0)).toBe(true);
    second.write(await first.data());
    const optSecond = new AdamW([second], options);
    optSecond.loadState(saved);
    expect(optSecond.step).toBe(2);
    const reloaded = await optSecond.state();
    expect(Array.from(reloaded.exp_avg[0])).toEqual(Array.from(saved.exp_avg[0]));
    expect(Array.from(reloaded.exp_avg_sq[0])).toEqual(Array.from(saved.exp_avg_sq[0]));

    const g = randomArray(6, 50);
    first.grad = fromData(g, [2, 3]);
    second.grad = fromData(g, [2, 3]);
    optFirst.update();
    optSecond.update();
    expect(Array.from(await second.data())).toEqual(Array.from(await first.data()));

    for (const o of [optFirst, optSecond]) {
      o.zeroGrad();
      o.dispose();
    }
    for (const p of [first, second]) p.dispose();
  });

  it('loadState rejects moments of the wrong size', () => {
    const p = parameter(new Float32Array(4), [4]);
    const opt = new AdamW([p]);
    const bad = { step: 1, exp_avg: [new Float32Array(3)], exp_avg_sq: [new Float32Array(3)] };
    expect(() => opt.loadState(bad)).toThrow(/moment 0 has 3 values, parameter f32\[4\] has 4/);
    expect(() => opt.loadState({ step: 1, exp_avg: [], exp_avg_sq: [] })).toThrow(/moments for 0 tensors/);
    opt.dispose();
    p.dispose();
  });
});

describe('clipGradNorm', () => {
  const gradients = [randomArray(12, 7, 3), randomArray(5, 8, 3)];
  const cpuNorm = Math.sqrt(gradients.reduce((s, g) => s + g.reduce((t, x) => t + x * x, 0), 0));

  function withGradients(): Tensor[] {
    return gradients.map((g) => {
      const p = parameter(new Float32Array(g.length), [g.length]);
      p.grad = fromData(g, [g.length]);
      return p;
    });
  }

  async function clip(params: Tensor[], maxNorm: number | null): Promise<[number, number]> {
    const out = clipGradNorm(params, maxNorm);
    const [coefficient, norm] = await out.data();
    out.dispose();
    return [coefficient, norm];
  }

  it('scales down when the norm is above the limit', async () => {
    const params = withGradients();
    const maxNorm = cpuNorm / 4;
    const [coefficient, norm] = await clip(params, maxNorm);
    expect(norm).toBeCloseTo(cpuNorm, 4);
    expect(coefficient).toBeCloseTo(maxNorm / (cpuNorm + 1e-6), 6);
    expect(coefficient).toBeLessThan(0.26);
    for (const p of params) p.dispose();
  });

  it('keeps gradients below the limit or disabled', async () => {
    const params = withGradients();
    for (const maxNorm of [cpuNorm * 2, 0, null]) {
      const [coefficient, norm] = await clip(params, maxNorm);
      expect(coefficient, `maxNorm ${maxNorm}`).toBe(1);
      expect(norm).toBeCloseTo(cpuNorm, 4);
    }
    for (const p of params) p.dispose();
  });

  it('measures zero with no gradients', async () => {
    const p = parameter(new Float32Array(3), [3]);
    expect(await clip([p], 1)).toEqual([1, 0]);
    p.dispose();
  });

  it('feeds its coefficient into AdamW', async () => {
    const options: AdamWOptions = { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 };
    const params = withGradients();
    const maxNorm = cpuNorm / 3;
    const coefficient = maxNorm / (cpuNorm + 1e-6);
    const opt = new AdamW(params, options);
    const clipTensor = clipGradNorm(params, maxNorm);
    opt.update({ clip: clipTensor });
    for (let i = 0; i < params.length; i++) {
      const g = Float64Array.from(gradients[i], (x) => x * coefficient);
      const zeros = new Float64Array(g.length);
      const expected = adamwReference(zeros, g, zeros, zeros, 1, options);
      expect(relativeError(await params[i].data(), expected.p)).toBeLessThan(1e-5);
    }
    clipTensor.dispose();
    opt.zeroGrad();
    opt.dispose();
    for (const p of params) p.dispose();
  });
});

describe('emaUpdate', () => {
  it('matches decay * ema + (1 - decay) * param', async () => {
    const emaValues = randomArray(300, 1);
    const paramValues = randomArray(300, 2);
    const ema = fromData(emaValues, [300]);
    const param = fromData(paramValues, [300]);
    emaUpdate(ema, param, 0.99);
    emaUpdate(ema, param, 0.9);
    const expected = Float64Array.from(emaValues, (e, i) => {
      const once = 0.99 * e + 0.01 * paramValues[i];
      return 0.9 * once + 0.1 * paramValues[i];
    });
    expect(maxAbsDiff(await ema.data(), expected).diff).toBeLessThan(1e-6);
    expect(() => emaUpdate(ema, fromData([1], [1]), 0.5)).toThrow(/emaUpdate: f32\[300\] and f32\[1\] differ in size/);
    ema.dispose();
    param.dispose();
  });
});
