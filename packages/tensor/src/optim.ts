import { ShapeError } from './errors.js';
import { full } from './ops/fill.js';
import { grid, kernel, run } from './ops/util.js';
import { empty, fromData, untrack, type Tensor } from './tensor.js';

const ADAMW = kernel('optim', 'adamw', 'rrwww');
const EMA = kernel('optim', 'ema', 'rw');
const SUMSQ = kernel('reduce', 'sumsq_all', 'rw');
const CLIP = kernel('optim', 'clip_coefficient', 'rw');

export interface AdamWOptions {
  /** Learning rate (torch default 1e-3). */
  lr: number;
  betas: [number, number];
  eps: number;
  /** Decoupled weight decay (torch.optim.AdamW's default is 0.01; trl's TrainingArguments use 0). */
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 };

/** Serialisable optimizer state: the step count and the two moments of each parameter. */
export interface AdamWState {
  step: number;
  exp_avg: Float32Array[];
  exp_avg_sq: Float32Array[];
}

/**
 * AdamW with the update of torch.optim.AdamW, one fused kernel per parameter. Gradients are
 * multiplied by a clipping coefficient that lives on the GPU (see `clipGradNorm`), so a step
 * needs no read-back.
 */
export class AdamW {
  readonly options: AdamWOptions;
  step = 0;
  private m: Tensor[];
  private v: Tensor[];
  private one: Tensor;

  constructor(
    readonly params: Tensor[],
    options: Partial<AdamWOptions> = {},
  ) {
    this.options = { ...ADAMW_DEFAULTS, ...options };
    this.m = params.map((p) => untrack(full(p.shape, 0)));
    this.v = params.map((p) => untrack(full(p.shape, 0)));
    this.one = untrack(full([2], 1));
  }

  /**
   * Apply one update from each parameter's `.grad` (parameters without a gradient are skipped).
   * `clip` is the [coefficient, norm] tensor from `clipGradNorm`; `lr` overrides the options' rate.
   */
  update(options: { lr?: number; clip?: Tensor } = {}): void {
    this.step++;
    const lr = options.lr ?? this.options.lr;
    const [beta1, beta2] = this.options.betas;
    const bias1 = 1 - beta1 ** this.step;
    const bias2 = 1 - beta2 ** this.step;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      run(
        ADAMW,
        [p.size],
        [lr, beta1, beta2, this.options.eps, this.options.weightDecay, bias1, bias2, 0],
        [p.grad, options.clip ?? this.one, p, this.m[i], this.v[i]],
        grid(p.size, 256),
      );
    });
  }

  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  async state(): Promise<AdamWState> {
    return {
      step: this.step,
      exp_avg: await Promise.all(this.m.map(async (t) => (await t.data()) as Float32Array)),
      exp_avg_sq: await Promise.all(this.v.map(async (t) => (await t.data()) as Float32Array)),
    };
  }

  loadState(state: AdamWState): void {
    if (state.exp_avg.length !== this.params.length || state.exp_avg_sq.length !== this.params.length) {
      throw new ShapeError(
        `AdamW state has moments for ${state.exp_avg.length} tensors, the optimizer has ${this.params.length} parameters`,
      );
    }
    this.step = state.step;
    this.params.forEach((p, i) => {
      if (state.exp_avg[i].length !== p.size || state.exp_avg_sq[i].length !== p.size) {
        throw new ShapeError(`AdamW state: moment ${i} has ${state.exp_avg[i].length} values, parameter ${p.describe()} has ${p.size}`);
      }
      this.m[i].write(state.exp_avg[i]);
      this.v[i].write(state.exp_avg_sq[i]);
    });
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v, this.one]) t.dispose();
  }
}

/**
 * Global L2 norm of the gradients and the coefficient min(1, maxNorm / (norm + 1e-6)) of
 * torch.nn.utils.clip_grad_norm_, computed on the GPU into a [coefficient, norm] tensor that
 * `AdamW.update` takes. maxNorm <= 0 (or null) leaves the coefficient at 1 and only measures.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number | null): Tensor {
  const withGrad = params.filter((p) => p.grad);
  const squares = empty([Math.max(1, withGrad.length)]);
  if (withGrad.length === 0) squares.write([0]);
  withGrad.forEach((p, i) => run(SUMSQ, [p.size, 0, 0, i], [1], [p.grad!, squares], [1]));
  const out = empty([2]);
  run(CLIP, [withGrad.length], [maxNorm && maxNorm > 0 ? maxNorm : 0, 0, 0, 0, 0, 0, 0, 0], [squares, out], [1]);
  squares.dispose();
  return out;
}

/** ema = decay · ema + (1 - decay) · param, in place on the GPU. */
export function emaUpdate(ema: Tensor, param: Tensor, decay: number): void {
  if (ema.size !== param.size) throw new ShapeError(`emaUpdate: ${ema.describe()} and ${param.describe()} differ in size`);
  run(EMA, [param.size], [0, 0, 0, 0, 0, 0, 0, decay], [param, ema], grid(param.size, 256));
}

/** Plain reference for tests: one AdamW step in float64, as torch.optim.AdamW computes it. */
export function adamwReference(
  p: ArrayLike<number>,
  g: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  step: number,
  o: AdamWOptions,
): { p: Float64Array; m: Float64Array; v: Float64Array } {
  const [b1, b2] = o.betas;
  const out = { p: new Float64Array(p.length), m: new Float64Array(p.length), v: new Float64Array(p.length) };
  for (let i = 0; i < p.length; i++) {
    out.m[i] = b1 * m[i] + (1 - b1) * g[i];
    out.v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    const param = p[i] * (1 - o.lr * o.weightDecay);
    const denom = Math.sqrt(out.v[i]) / Math.sqrt(1 - b2 ** step) + o.eps;
    out.p[i] = param - (o.lr / (1 - b1 ** step)) * (out.m[i] / denom);
  }
  return out;
}

export { fromData };
