import { engine } from '../engine.js';
import { ShapeError, TemaError } from '../errors.js';
import { empty, recordOp, type Tensor } from '../tensor.js';
import { grid, kernel, run } from './util.js';

const TO_F16 = kernel('cast', 'to_f16', 'rw');
const TO_F32 = kernel('cast', 'to_f32', 'rw');

/** Convert between f32 and f16 storage (f16 needs the adapter's shader-f16 feature). */
export function cast(x: Tensor, dtype: 'f32' | 'f16'): Tensor {
  if (x.dtype === dtype) return x;
  if (!engine().info.features.has('shader-f16')) {
    throw new TemaError(`cast to ${dtype}: this adapter has no shader-f16 feature, so f16 tensors are not available`);
  }
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new ShapeError(`cast: cannot cast ${x.describe()} to ${dtype}`);
  const out = empty(x.shape, dtype);
  const pairs = Math.ceil(x.size / 2);
  run(dtype === 'f16' ? TO_F16 : TO_F32, [x.size], [], [x, out], grid(pairs, 256));
  recordOp('cast', out, [x], [], (g) => [cast(g, x.dtype as 'f32' | 'f16')]);
  return out;
}
