import { beforeAll, describe, expect, it } from 'vitest';
import { engine, init } from './engine.js';
import { clone, crossEntropy, linear, mul, rmsNorm, silu, sum } from './ops/index.js';
import { AdamW, clipGradNorm } from './optim.js';
import { BufferPool } from './pool.js';
import { backward, fromData, noGrad, tidy, type Tensor } from './tensor.js';
import { randomArray } from './testing.js';

beforeAll(async () => {
  await init();
});

function parameter(shape: [number, number], seed: number): Tensor {
  const p = fromData(randomArray(shape[0] * shape[1], seed, 0.5), shape);
  p.requiresGrad = true;
  return p;
}

const live = () => engine().pool.liveBytes;

describe('memory', () => {
  it('training loop keeps constant live bytes', async () => {
    const w1 = parameter([16, 6], 1);
    const w2 = parameter([4, 16], 2);
    const x = fromData(randomArray(8 * 6, 3), [8, 6]);
    const targets = fromData([0, 1, 2, 3, 3, 2, 1, 0], [8], 'i32');
    const opt = new AdamW([w1, w2], { lr: 1e-2, weightDecay: 0.01 });
    const before = live();

    const step = () =>
      tidy(() => {
        const loss = crossEntropy(linear(silu(linear(x, w1)), w2), targets, 8);
        backward(loss);
        opt.update({ clip: clipGradNorm([w1, w2], 1) });
        opt.zeroGrad();
      });

    step();
    const afterFirst = live();
    const allocatedAfterFirst = engine().pool.allocatedBytes;
    for (let i = 2; i <= 100; i++) step();
    const afterHundredth = live();
    await engine().sync();

    expect(afterFirst).toBe(before);
    expect(afterHundredth).toBe(afterFirst);
    // The pool reuses the first step's buffers instead of creating new ones.
    expect(engine().pool.allocatedBytes).toBe(allocatedAfterFirst);
    expect(opt.step).toBe(100);

    opt.dispose();
    for (const t of [w1, w2, x, targets]) t.dispose();
  });

  it('tidy keeps returned tensors only', () => {
    const before = live();
    let temporary: Tensor | null = null;
    const kept = tidy(() => {
      temporary = fromData([1, 2], [2]);
      const a = fromData([3], [1]);
      const b = fromData([4], [1]);
      return { a, nested: [b] };
    });
    expect(temporary!.isDisposed).toBe(true);
    expect(kept.a.isDisposed).toBe(false);
    expect(kept.nested[0].isDisposed).toBe(false);
    expect(live()).toBe(before + 2 * BufferPool.sizeClass(4));
    kept.a.dispose();
    kept.nested[0].dispose();
    expect(live()).toBe(before);
  });

  it('nested tidy passes its result outward', () => {
    const before = live();
    let inner: Tensor | null = null;
    let innerTemporary: Tensor | null = null;
    const outer = tidy(() => {
      inner = tidy(() => {
        innerTemporary = fromData([1], [1]);
        return fromData([2], [1]);
      });
      expect(innerTemporary!.isDisposed).toBe(true);
      expect(inner.isDisposed).toBe(false);
      return fromData([3], [1]);
    });
    // The outer scope did not return `inner`, so closing it disposed `inner` too.
    expect(inner!.isDisposed).toBe(true);
    expect(outer.isDisposed).toBe(false);
    outer.dispose();
    expect(live()).toBe(before);
  });

  it('tidy disposes tensors when fn throws', () => {
    const before = live();
    expect(() =>
      tidy(() => {
        fromData([1, 2, 3], [3]);
        throw new Error('stop');
      }),
    ).toThrow('stop');
    expect(live()).toBe(before);
  });

  it('noGrad records nothing', () => {
    const w = fromData([1, -2, 3], [3]);
    w.requiresGrad = true;
    tidy(() => {
      const y = noGrad(() => mul(silu(w), w));
      expect(y.node).toBeNull();
      expect(y.requiresGrad).toBe(false);
      const z = silu(w);
      expect(z.node?.op).toBe('silu');
    });
    w.dispose();
  });

  it('backward frees the tensors the graph saved', () => {
    const x = fromData(randomArray(3 * 8, 4), [3, 8]);
    const w = fromData(randomArray(8, 5), [8]);
    w.requiresGrad = true;
    const targets = fromData([1, 7, 0], [3], 'i32');
    const before = live();

    tidy(() => {
      const y = rmsNorm(x, w, 1e-5);
      const loss = crossEntropy(y, targets, 3);
      const nodes = [y.node!, loss.node!];
      const afterForward = live();
      backward(loss);
      const gradBytes = BufferPool.sizeClass(w.grad!.size * 4);
      // rmsNorm saved its row rstd [3] and crossEntropy its row log-sum-exp [3]: two 256-byte
      // buffers that nothing else references, so backward returns both to the pool.
      expect(afterForward - (live() - gradBytes)).toBe(2 * BufferPool.sizeClass(3 * 4));
      for (const node of nodes) {
        expect(node.freed).toBe(true);
        expect(node.saved).toEqual([]);
      }
      w.grad!.dispose();
      w.grad = null;
    });

    expect(live()).toBe(before);
    for (const t of [x, w, targets]) t.dispose();
  });

  it('backward leaves only leaf gradients', () => {
    const w = fromData([1, 2, 3, 4], [4]);
    w.requiresGrad = true;
    const before = live();
    tidy(() => backward(sum(mul(w, w))));
    expect(live()).toBe(before + BufferPool.sizeClass(16));
    w.grad!.dispose();
    w.dispose();
  });
});

describe('rejected ops', () => {
  it('clone of f16 allocates nothing', () => {
    const half = fromData([0x3c00, 0x4000], [2], 'f16');
    const before = live();
    expect(() => clone(half)).toThrow(/clone: f16 tensors are not supported, got f16\[2\]/);
    expect(live()).toBe(before);
    half.dispose();
  });
});
