import { ShapeError } from '../errors.js';
import { empty, formatShape, recordOp, type Tensor } from '../tensor.js';
import { expectF32, grid, kernel, run } from './util.js';

const GATHER = kernel('embedding', 'gather', 'rrw');
const SCATTER = kernel('embedding', 'scatter_add', 'rrw');

/** Rows of `weight` [vocab, dim] picked by `ids` (i32, any shape) -> [...ids.shape, dim]. Out-of-range ids give zeros. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  expectF32('embedding', weight);
  if (ids.dtype !== 'i32') throw new ShapeError(`embedding: ids must be i32, got ${ids.describe()}`);
  if (weight.shape.length !== 2) throw new ShapeError(`embedding: weight ${formatShape(weight.shape)} is not [vocab, dim]`);
  const [vocab, dim] = weight.shape;
  const out = empty([...ids.shape, dim]);
  run(GATHER, [ids.size, dim, vocab], [], [weight, ids, out], grid(ids.size * dim, 256));
  recordOp('embedding', out, [weight], [ids], (g, [ids]) => {
    const dw = empty(weight.shape);
    run(SCATTER, [ids.size, dim, vocab], [], [g, ids, dw], grid(vocab * dim, 256));
    return [dw];
  });
  return out;
}

export function embeddingReference(weight: ArrayLike<number>, ids: ArrayLike<number>, dim: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let n = 0; n < ids.length; n++) for (let d = 0; d < dim; d++) out[n * dim + d] = weight[ids[n] * dim + d];
  return out;
}
