import { add, ConfigError, crossEntropy, divergence, emaUpdate, noGrad, scale, tidy, untrack, type Tensor } from '@tematrainer/tensor';
import type { Batch } from './data/index.js';
import { TEMA_DEFAULTS, validateTema, type TemaArguments } from './args.js';
import { SftTrainer, type LossParts, type TrainerOptions } from './sft-trainer.js';

export interface TemaTrainerOptions extends TrainerOptions {
  tema?: Partial<TemaArguments>;
  /** EMA values to start from (for example the previous stage's); a copy of the LoRA weights by default. */
  emaState?: Tensor[];
}

/**
 * TEMA (Teacher Exponential Moving Average): SFT plus a divergence from a teacher that is the
 * same frozen base with the EMA of the LoRA weights swapped in. Per step:
 *   1. student forward and CE over the counted positions;
 *   2. teacher forward under noGrad with the EMA weights swapped in and no dropout;
 *   3. divergence over the same positions, averaged as CE;
 *   4. loss = alpha·CE + beta·divergence, with gradients reaching only the student's LoRA tensors;
 *   5. after each optimizer step (not each micro-batch), ema = d·ema + (1 - d)·param.
 * With beta = 0 the teacher pass is skipped and this is plain SFT.
 */
export class TemaTrainer extends SftTrainer {
  readonly tema: TemaArguments;
  /** One f32 copy of each trainable tensor, in `lora.tensors` order. */
  readonly ema: Tensor[];
  /** EMA updates done so far (k in the warm-up formula). */
  emaUpdates = 0;

  constructor(options: TemaTrainerOptions) {
    super(options);
    this.tema = { ...TEMA_DEFAULTS, ...options.tema };
    validateTema(this.tema);
    if (options.emaState) {
      const params = this.lora.parameters();
      if (options.emaState.length !== params.length || options.emaState.some((t, i) => t.size !== params[i].size)) {
        throw new ConfigError(`EMA state has ${options.emaState.length} tensors that do not match the adapter's ${params.length} tensors`);
      }
      this.ema = options.emaState;
    } else {
      this.ema = this.lora.cloneParameters();
    }
  }

  protected override lossWeights(): { alpha: number; beta: number } {
    return { alpha: this.tema.temaAlpha, beta: this.tema.temaBeta };
  }

  /** Teacher logits [B*T, vocab] for the batch: the EMA weights swapped in, no dropout, no graph. */
  teacherLogits(ids: Tensor, batch: Batch): Tensor {
    const wasTraining = [...this.lora.layers.values()].some((l) => l.training);
    return tidy(() =>
      noGrad(() => {
        this.lora.setTraining(false);
        try {
          using _teacher = this.lora.swapIn(this.ema);
          return this.model.forward(ids).reshape([batch.batchSize * batch.seqLen, -1]);
        } finally {
          this.lora.setTraining(wasTraining, this.args.seed);
        }
      }),
    );
  }

  protected override computeLoss(ids: Tensor, targets: Tensor, normalizer: number, batch: Batch): LossParts {
    const { temaAlpha: alpha, temaBeta: beta } = this.tema;
    if (beta === 0) {
      const parts = super.computeLoss(ids, targets, normalizer, batch);
      return alpha === 1 ? parts : { ...parts, loss: scale(parts.ce, alpha) };
    }
    const teacher = this.teacherLogits(ids, batch);
    const student = this.model.forward(ids).reshape([batch.batchSize * batch.seqLen, -1]); // [B*T, vocab]
    const ce = crossEntropy(student, targets, normalizer);
    const kl = divergence(student, teacher, targets, {
      direction: this.tema.klDirection,
      temperature: this.tema.klTemperature,
      jsdBeta: this.tema.jsdBeta,
      normalizer,
    });
    const loss = add(alpha === 1 ? ce : scale(ce, alpha), kl, beta);
    return { loss, ce, kl };
  }

  /** The EMA decay of the next update. */
  currentDecay(): number {
    const d = this.tema.emaDecay;
    if (!this.tema.emaWarmup) return d;
    const k = this.emaUpdates;
    return Math.min(d, (1 + k) / (10 + k));
  }

  protected override afterOptimizerStep(): void {
    const decay = this.currentDecay();
    const params = this.lora.parameters();
    params.forEach((p, i) => emaUpdate(this.ema[i], p, decay));
    this.emaUpdates++;
  }

  /** Set the EMA back to the current LoRA weights (a new stage that does not carry the teacher over). */
  resetEma(): void {
    const params = this.lora.parameters();
    params.forEach((p, i) => emaUpdate(this.ema[i], p, 0));
    this.emaUpdates = 0;
  }

  override async extraState(): Promise<Record<string, unknown>> {
    return {
      ema: await Promise.all(this.ema.map(async (t) => (await t.data()) as Float32Array)),
      ema_updates: this.emaUpdates,
      tema: this.tema,
    };
  }

  override loadExtraState(state: Record<string, unknown>, file: string): void {
    const ema = state.ema as { data: Float32Array }[] | undefined;
    if (!ema || ema.length !== this.ema.length) {
      throw new ConfigError(`${file}: the trainer state has no EMA for ${this.ema.length} tensors — was it written by a plain SFT run?`);
    }
    ema.forEach((e, i) => {
      const data = e.data ?? (e as unknown as Float32Array);
      if (data.length !== this.ema[i].size) throw new ConfigError(`${file}: EMA tensor ${i} has ${data.length} values, expected ${this.ema[i].size}`);
      this.ema[i].write(data);
    });
    this.emaUpdates = Number(state.ema_updates ?? 0);
  }

  /** Hand the EMA tensors to the caller (for the next stage), so `dispose` leaves them alive. */
  takeEma(): Tensor[] {
    return this.ema.map((t) => untrack(t));
  }
}
