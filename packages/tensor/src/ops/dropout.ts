import { ShapeError } from '../errors.js';
import { empty, recordOp, type Tensor } from '../tensor.js';
import { expectF32, grid, kernel, run } from './util.js';

const DROPOUT = kernel('dropout', 'main', 'rw');

/**
 * Inverted dropout: each element is zeroed with probability p and the rest scaled by 1 / (1 - p).
 * The mask is a function of (seed, offset, element index) only, so the same call draws the same
 * mask and the backward pass regenerates it; callers advance `offset` between calls.
 */
export function dropout(x: Tensor, p: number, seed: number, offset: number): Tensor {
  expectF32('dropout', x);
  if (!(p >= 0 && p < 1)) throw new ShapeError(`dropout: p must be in [0, 1), got ${p}`);
  if (p === 0) return x;
  const keep = 1 - p;
  const threshold = Math.min(0xffffffff, Math.floor(keep * 2 ** 32));
  const apply = (input: Tensor) => {
    const y = empty(input.shape);
    run(DROPOUT, [input.size, seed >>> 0, offset >>> 0, threshold], [1 / keep], [input, y], grid(input.size, 256));
    return y;
  };
  const y = apply(x);
  recordOp('dropout', y, [x], [], (g) => [apply(g)]);
  return y;
}

/** Compute the kernel's PCG integer hash, for the reference and tests. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

export function dropoutReference(x: ArrayLike<number>, p: number, seed: number, offset: number): Float64Array {
  const keep = 1 - p;
  const threshold = Math.min(0xffffffff, Math.floor(keep * 2 ** 32));
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const r = pcgHash((pcgHash((offset + i) >>> 0) ^ (seed >>> 0)) >>> 0);
    out[i] = r < threshold ? x[i] / keep : 0;
  }
  return out;
}
