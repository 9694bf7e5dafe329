import { ShapeError } from '../errors.js';
import { empty, recordOp, type Tensor } from '../tensor.js';
import { expectF32, kernel, lastDim, rowKernel, run } from './util.js';

const FORWARD = rowKernel('layernorm', 'forward', 'forward_rows', 'rrrwww');
const BACKWARD_INPUT = rowKernel('layernorm', 'backward_input', 'backward_input_rows', 'rrrrrw');
const BACKWARD_PARAMS = kernel('layernorm', 'backward_params', 'rrrrww');

/** LayerNorm over the last dimension with weight and bias [cols], as torch.nn.LayerNorm (GPT-2's ln_1, ln_2, ln_f). */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  expectF32('layerNorm', x, weight, bias);
  const cols = lastDim(x);
  if (weight.size !== cols || bias.size !== cols) {
    throw new ShapeError(`layerNorm: weight ${weight.describe()} and bias ${bias.describe()} must have ${cols} elements to match input ${x.describe()}`);
  }
  const rows = x.size / cols;
  const y = empty(x.shape);
  const mean = empty([rows]);
  const rstd = empty([rows]);
  const fwd = FORWARD(rows);
  run(fwd.spec, [rows, cols], [eps], [x, weight, bias, y, mean, rstd], fwd.workgroups);
  recordOp('layerNorm', y, [x, weight, bias], [x, weight, mean, rstd], (g, [xs, ws, mean, rstd]) => {
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    let gb: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty(x.shape);
      const back = BACKWARD_INPUT(rows);
      run(back.spec, [rows, cols], [eps], [xs, ws, g, mean, rstd, gx], back.workgroups);
    }
    if (weight.requiresGrad || bias.requiresGrad) {
      const dw = empty(weight.shape);
      const db = empty(bias.shape);
      run(BACKWARD_PARAMS, [rows, cols], [eps], [xs, g, mean, rstd, dw, db], [Math.ceil(cols / 64)]);
      if (weight.requiresGrad) gw = dw;
      else dw.dispose();
      if (bias.requiresGrad) gb = db;
      else db.dispose();
    }
    return [gx, gw, gb];
  });
  mean.dispose();
  rstd.dispose();
  return y;
}

/** Plain float64 reference for tests. */
export function layerNormReference(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  cols: number,
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[r * cols + j];
    const mean = s / cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[r * cols + j] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / cols + eps);
    for (let j = 0; j < cols; j++) out[r * cols + j] = (x[r * cols + j] - mean) * rstd * w[j] + b[j];
  }
  return out;
}
