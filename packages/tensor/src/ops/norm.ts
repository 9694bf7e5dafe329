import { ShapeError } from '../errors.js';
import { empty, recordOp, type Tensor } from '../tensor.js';
import { expectF32, kernel, lastDim, rowKernel, run } from './util.js';

const FORWARD = rowKernel('rmsnorm', 'forward', 'forward_rows', 'rrww');
const BACKWARD_INPUT = rowKernel('rmsnorm', 'backward_input', 'backward_input_rows', 'rrrrw');
const BACKWARD_WEIGHT = kernel('rmsnorm', 'backward_weight', 'rrrw');

/** RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) * weight, as Llama's LlamaRMSNorm. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  expectF32('rmsNorm', x, weight);
  const cols = lastDim(x);
  if (weight.size !== cols) throw new ShapeError(`rmsNorm: weight ${weight.describe()} does not match input ${x.describe()}`);
  const rows = x.size / cols;
  const y = empty(x.shape);
  const rstd = empty([rows]);
  const fwd = FORWARD(rows);
  run(fwd.spec, [rows, cols], [eps], [x, weight, y, rstd], fwd.workgroups);
  recordOp('rmsNorm', y, [x, weight], [x, weight, rstd], (g, [xs, ws, rstd]) => {
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty(x.shape);
      const back = BACKWARD_INPUT(rows);
      run(back.spec, [rows, cols], [eps], [xs, ws, g, rstd, gx], back.workgroups);
    }
    if (weight.requiresGrad) {
      gw = empty(weight.shape);
      run(BACKWARD_WEIGHT, [rows, cols], [eps], [xs, g, rstd, gw], [Math.ceil(cols / 64)]);
    }
    return [gx, gw];
  });
  rstd.dispose();
  return y;
}

/** Plain reference for tests. */
export function rmsNormReference(x: ArrayLike<number>, w: ArrayLike<number>, cols: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[r * cols + j] ** 2;
    const rstd = 1 / Math.sqrt(s / cols + eps);
    for (let j = 0; j < cols; j++) out[r * cols + j] = x[r * cols + j] * rstd * w[j];
  }
  return out;
}
