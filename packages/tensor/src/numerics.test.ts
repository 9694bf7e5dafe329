import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { engine, init } from './engine.js';
import { TemaError } from './errors.js';
import { checkNumerics, isCheckingNumerics, setDebug } from './numerics.js';
import { crossEntropy, mul, scale, silu, sum } from './ops/index.js';
import { backward, fromData, tidy, tidyAsync } from './tensor.js';

beforeAll(async () => {
  await init();
});

afterEach(() => {
  setDebug({ checkNumerics: false });
});

/** The dispatches that `fn` records. */
function dispatchesOf(fn: () => void): number {
  const before = engine().dispatchCount;
  tidy(fn);
  return engine().dispatchCount - before;
}

describe('checkNumerics', () => {
  it('adds one dispatch per op only when on', () => {
    const x = fromData([1, 2, 3], [3]);
    expect(isCheckingNumerics()).toBe(false);
    expect(dispatchesOf(() => silu(scale(x, 2)))).toBe(2);
    setDebug({ checkNumerics: true });
    expect(isCheckingNumerics()).toBe(true);
    expect(dispatchesOf(() => silu(scale(x, 2)))).toBe(4);
    // A reshape is a view and needs no check.
    expect(dispatchesOf(() => x.reshape([1, 3]))).toBe(0);
    setDebug({ checkNumerics: false });
    expect(dispatchesOf(() => silu(scale(x, 2)))).toBe(2);
    x.dispose();
  });

  it('read-back names the first non-finite op', async () => {
    setDebug({ checkNumerics: true });
    const x = fromData([1, 0, -2, 4, 5, 6], [2, 3]);
    const y = tidy(() => silu(scale(silu(x), Infinity)));
    const error = await y.data().then(
      () => null,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(TemaError);
    expect(error!.message).toMatch(/^checkNumerics: scale \(output f32\[2, 3\]\) produced NaN or infinity/);

    // The error is reported once; finite work afterwards reads back normally.
    const z = tidy(() => silu(x));
    expect((await z.data())[1]).toBe(0);
    for (const t of [x, y, z]) t.dispose();
  });

  it('crossEntropy on infinite logits throws', async () => {
    setDebug({ checkNumerics: true });
    const logits = fromData([0, Infinity, 1, 2, 3, 4], [2, 3]);
    const targets = fromData([0, 2], [2], 'i32');
    const loss = tidy(() => crossEntropy(logits, targets, 2));
    await expect(checkNumerics()).rejects.toThrow(/checkNumerics: crossEntropy \(output f32\[\]\) produced NaN or infinity/);
    await expect(checkNumerics()).resolves.toBeUndefined();
    for (const t of [logits, targets, loss]) t.dispose();
  });

  it('names an overflowing backward op', async () => {
    setDebug({ checkNumerics: true });
    // The forward values stay near 3e9; the gradient of x is 10 * 3e38, past the f32 maximum.
    const x = fromData([1e-30], [1]);
    x.requiresGrad = true;
    const w = fromData([3e38], [1]);
    const c = fromData([10], [1]);
    await expect(
      tidyAsync(async () => {
        const loss = sum(mul(mul(x, w), c));
        backward(loss);
        return loss.item();
      }),
    ).rejects.toThrow(/checkNumerics: mul backward \(output f32\[1\]\) produced NaN or infinity/);
    x.grad?.dispose();
    for (const t of [x, w, c]) t.dispose();
  });

  it('passes finite work and ignores calls while off', async () => {
    const x = fromData([0.5, -1], [2]);
    await expect(checkNumerics()).resolves.toBeUndefined();
    setDebug({ checkNumerics: true });
    const y = tidy(() => scale(silu(x), 3));
    await expect(checkNumerics()).resolves.toBeUndefined();
    const values = await y.data();
    expect(values[0]).toBeCloseTo((3 * 0.5) / (1 + Math.exp(-0.5)), 6);
    expect(values[1]).toBeCloseTo(-3 / (1 + Math.E), 6);
    for (const t of [x, y]) t.dispose();
  });
});
