import { ShapeError } from '../errors.js';
import { empty, formatShape, recordOp, type Tensor } from '../tensor.js';
import { copyBlock, zeros } from './fill.js';
import { lastDim } from './util.js';

/** Columns [start, start + length) of the last dimension, copied into a new tensor. */
export function sliceLastDim(x: Tensor, start: number, length: number): Tensor {
  const cols = lastDim(x);
  if (start < 0 || length < 0 || start + length > cols) {
    throw new ShapeError(`sliceLastDim: columns [${start}, ${start + length}) are outside ${formatShape(x.shape)}`);
  }
  const rows = x.size / cols;
  const out = empty([...x.shape.slice(0, -1), length], x.dtype);
  copyBlock(x, out, { rows, cols: length, srcOffset: start, srcStride: cols, dstOffset: 0, dstStride: length });
  recordOp('sliceLastDim', out, [x], [], (g) => {
    const gx = zeros(x.shape);
    copyBlock(g, gx, { rows, cols: length, srcOffset: 0, srcStride: length, dstOffset: start, dstStride: cols });
    return [gx];
  });
  return out;
}

/** Concatenation along the last dimension. */
export function concatLastDim(parts: Tensor[]): Tensor {
  const lead = parts[0].shape.slice(0, -1);
  const rows = parts[0].size / lastDim(parts[0]);
  for (const p of parts) {
    if (p.size / lastDim(p) !== rows || p.dtype !== parts[0].dtype) {
      throw new ShapeError(`concatLastDim: ${p.describe()} does not match ${parts[0].describe()} in its leading dimensions`);
    }
  }
  const total = parts.reduce((s, p) => s + lastDim(p), 0);
  const out = empty([...lead, total], parts[0].dtype);
  let col = 0;
  const starts: number[] = [];
  for (const p of parts) {
    starts.push(col);
    copyBlock(p, out, { rows, cols: lastDim(p), srcOffset: 0, srcStride: lastDim(p), dstOffset: col, dstStride: total });
    col += lastDim(p);
  }
  recordOp('concatLastDim', out, parts, [], (g) =>
    parts.map((p, i) => {
      if (!p.requiresGrad) return null;
      const gp = empty(p.shape);
      copyBlock(g, gp, { rows, cols: lastDim(p), srcOffset: starts[i], srcStride: total, dstOffset: 0, dstStride: lastDim(p) });
      return gp;
    }),
  );
  return out;
}
