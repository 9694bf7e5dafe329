import { ShapeError } from '../errors.js';
import { empty, type Tensor } from '../tensor.js';
import type { DType } from '../dtype.js';
import { grid, kernel, run } from './util.js';

const FILL = kernel('fill', 'main', 'w');
const COPY = kernel('copy', 'main', 'rw');

const bitsView = new DataView(new ArrayBuffer(4));

function bitsOf(value: number, dtype: DType): number {
  if (dtype === 'f32') bitsView.setFloat32(0, value, true);
  else if (dtype === 'f16') throw new ShapeError('fill: f16 tensors are filled by casting an f32 tensor');
  else bitsView.setInt32(0, value, true);
  return bitsView.getUint32(0, true);
}

/** Set every element of `t` to `value` on the GPU. */
export function fillInPlace(t: Tensor, value: number): Tensor {
  run(FILL, [t.size, 0, bitsOf(value, t.dtype)], [], [t], grid(t.size, 256));
  return t;
}

export function full(shape: readonly number[], value: number, dtype: DType = 'f32'): Tensor {
  return fillInPlace(empty(shape, dtype), value);
}

export function zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return full(shape, 0, dtype);
}

export function ones(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return full(shape, 1, dtype);
}

/**
 * Strided copy of a [rows, cols] block of 32-bit elements between two buffers, optionally adding
 * into the destination. Offsets and strides are in elements.
 */
export function copyBlock(
  src: Tensor,
  dst: Tensor,
  block: { rows: number; cols: number; srcOffset: number; srcStride: number; dstOffset: number; dstStride: number },
  accumulate = false,
): void {
  const { rows, cols, srcOffset, srcStride, dstOffset, dstStride } = block;
  run(
    COPY,
    [rows, cols, srcOffset, srcStride, dstOffset, dstStride, accumulate ? 1 : 0],
    [],
    [src, dst],
    grid(rows * cols, 256),
  );
}

/** A copy of `t` in a new buffer (no autograd). */
export function clone(t: Tensor): Tensor {
  if (t.dtype === 'f16') throw new ShapeError(`clone: f16 tensors are not supported, got ${t.describe()}`);
  const out = empty(t.shape, t.dtype);
  copyBlock(t, out, { rows: 1, cols: t.size, srcOffset: 0, srcStride: 0, dstOffset: 0, dstStride: 0 });
  return out;
}

/** Copy the values of `src` into `dst` (same element count; no autograd). */
export function assign(dst: Tensor, src: Tensor): void {
  if (dst.size !== src.size || dst.dtype !== src.dtype) {
    throw new ShapeError(`assign: cannot copy ${src.describe()} into ${dst.describe()}`);
  }
  copyBlock(src, dst, { rows: 1, cols: src.size, srcOffset: 0, srcStride: 0, dstOffset: 0, dstStride: 0 });
}
