import { empty, recordOp, type Tensor } from '../tensor.js';
import { map } from './elementwise.js';
import { full } from './fill.js';
import { expectF32, kernel, run } from './util.js';

const SUM_ALL = kernel('reduce', 'sum_all', 'rw');

/** Sum of every element as a one-element tensor (one workgroup, a fixed order: deterministic). */
export function sum(x: Tensor): Tensor {
  return scaledSum(x, 1, 'sum');
}

/** Mean of every element as a one-element tensor. */
export function mean(x: Tensor): Tensor {
  return scaledSum(x, 1 / x.size, 'mean');
}

function scaledSum(x: Tensor, alpha: number, op: string): Tensor {
  expectF32(op, x);
  const out = empty([]);
  run(SUM_ALL, [x.size, 0, 0, 0], [alpha], [x, out], [1]);
  recordOp(op, out, [x], [], (g) => {
    // d(alpha * sum)/dx = alpha * g everywhere: broadcast the scalar through the elementwise map.
    const ones = full(x.shape, alpha);
    const gx = map('mul', [ones, g], x.shape);
    ones.dispose();
    return [gx];
  });
  return out;
}

