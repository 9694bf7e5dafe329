import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdamW,
  backward,
  clipGradNorm,
  ConfigError,
  crossEntropy,
  engine,
  fromData,
  tidy,
  untrack,
  type Tensor,
} from '@tematrainer/tensor';
import type { CausalLM } from '@tematrainer/models';
import type { LoraModel } from '@tematrainer/peft';
import { TRAINING_DEFAULTS, validateTraining, type TrainingArguments } from './args.js';
import type { Batch, SamplerState } from './data/index.js';
import { countTargets, evaluateModel, shiftLabels } from './evaluate.js';
import { ProgressBar } from './progress.js';
import { saveCheckpoint } from './checkpoint.js';
import { learningRate, warmupStepsOf } from './schedule.js';

/** A source of training batches; ChunkSampler and Batcher both fit. */
export interface BatchSource {
  next(): Batch;
  readonly state: SamplerState;
  restore(state: SamplerState): void;
  /** Batches per epoch, where the source can count them (needed for num_train_epochs). */
  readonly batchesPerEpoch?: number;
}

/** One logged record: the means over the optimizer steps since the last log. */
export interface LogRecord {
  step: number;
  loss: number;
  ce: number;
  kl?: number;
  learning_rate: number;
  grad_norm: number;
  tokens_per_second: number;
  step_seconds: number;
  [key: string]: number | string | undefined;
}

export interface EvalResult {
  step: number;
  eval_loss: number;
  eval_perplexity: number;
  eval_tokens: number;
}

export interface TrainerCallbacks {
  onStepEnd?(step: number): void;
  onLog?(record: LogRecord): void;
  onEvaluate?(result: EvalResult): void;
  onSave?(dir: string): void;
}

export interface TrainerOptions {
  model: CausalLM;
  lora: LoraModel;
  args?: Partial<TrainingArguments>;
  train: BatchSource;
  eval?: Batch[];
  callbacks?: TrainerCallbacks;
  /** Label of the progress bar; no bar when null. */
  progressLabel?: string | null;
  /** Append log and eval records to `<outputDir>/metrics.jsonl` (default true). */
  writeMetrics?: boolean;
}

/** The parts of one micro-batch's loss, each a one-element tensor. */
export interface LossParts {
  loss: Tensor;
  ce: Tensor;
  kl: Tensor | null;
}

interface PendingStep {
  ce: Tensor[];
  kl: Tensor[];
  clip: Tensor;
  lr: number;
  tokens: number;
  seconds: number;
}

/**
 * Supervised fine-tuning of a LoRA adapter, as trl's SFTTrainer: AdamW, a learning-rate
 * schedule with warm-up, gradient accumulation normalised over all micro-batches of a step,
 * gradient clipping, periodic evaluation, logging and checkpoints. Values are read back from
 * the GPU only when a log line or an evaluation asks for them.
 */
export class SftTrainer {
  readonly args: TrainingArguments;
  readonly model: CausalLM;
  readonly lora: LoraModel;
  readonly train: BatchSource;
  readonly optimizer: AdamW;
  readonly callbacks: TrainerCallbacks;
  globalStep = 0;
  /** Every log and eval record of this trainer, oldest first. */
  readonly history: (LogRecord | EvalResult)[] = [];
  /** Peak GPU bytes seen at the end of a step, for reports. */
  peakBytes = 0;
  private pending: PendingStep[] = [];
  private evalBatches: Batch[];
  private readonly progressLabel: string | null;
  private readonly writeMetrics: boolean;

  constructor(options: TrainerOptions) {
    this.args = { ...TRAINING_DEFAULTS, ...options.args };
    validateTraining(this.args);
    this.model = options.model;
    this.lora = options.lora;
    this.train = options.train;
    this.evalBatches = options.eval ?? [];
    this.callbacks = options.callbacks ?? {};
    this.progressLabel = options.progressLabel === undefined ? 'train' : options.progressLabel;
    this.writeMetrics = options.writeMetrics ?? true;
    this.optimizer = new AdamW(this.lora.parameters(), {
      lr: this.args.learningRate,
      betas: [this.args.adamBeta1, this.args.adamBeta2],
      eps: this.args.adamEpsilon,
      weightDecay: this.args.weightDecay,
    });
  }

  get totalSteps(): number {
    if (this.args.maxSteps > 0) return this.args.maxSteps;
    const perEpoch = this.train.batchesPerEpoch;
    if (!perEpoch) throw new ConfigError('max_steps must be set when the data source does not know its epoch length');
    return Math.ceil((this.args.numTrainEpochs * perEpoch) / this.args.gradientAccumulationSteps);
  }

  get warmupSteps(): number {
    return warmupStepsOf(this.args.warmupSteps, this.args.warmupRatio, this.totalSteps);
  }

  /** Cross-entropy of one micro-batch; TemaTrainer adds its divergence term here. */
  protected computeLoss(ids: Tensor, targets: Tensor, normalizer: number, batch: Batch): LossParts {
    const logits = this.model.forward(ids).reshape([batch.batchSize * batch.seqLen, -1]); // [B*T, vocab]
    const ce = crossEntropy(logits, targets, normalizer);
    return { loss: ce, ce, kl: null };
  }

  /** Runs after every optimizer step (TemaTrainer updates its EMA here). */
  protected afterOptimizerStep(): void {}

  /**
   * Forward and backward over the micro-batches of one optimizer step, accumulating into each
   * LoRA tensor's `.grad`. Returns the one-element CE and divergence tensors of each micro-batch
   * (already divided by the step's count of targets, so they add up to the step's means).
   */
  accumulateGradients(batches: Batch[]): { ce: Tensor[]; kl: Tensor[] } {
    const targets = batches.map(shiftLabels);
    const normalizer = Math.max(1, targets.reduce((n, t) => n + countTargets(t), 0));
    const ce: Tensor[] = [];
    const kl: Tensor[] = [];
    this.lora.setTraining(true, this.args.seed);
    try {
      batches.forEach((batch, k) => {
        const parts = tidy(() => {
          const ids = fromData(batch.inputIds, [batch.batchSize, batch.seqLen], 'i32');
          const t = fromData(targets[k], [batch.batchSize * batch.seqLen], 'i32');
          const p = this.computeLoss(ids, t, normalizer, batch);
          backward(p.loss);
          return { ce: p.ce, kl: p.kl };
        });
        ce.push(untrack(parts.ce));
        if (parts.kl) kl.push(untrack(parts.kl));
      });
    } finally {
      this.lora.setTraining(false);
    }
    return { ce, kl };
  }

  /** Clip, apply AdamW at the scheduled rate, clear the gradients, and run afterOptimizerStep. */
  applyOptimizer(): { lr: number; clip: Tensor } {
    const lr = learningRate(this.args.lrSchedulerType, this.args.learningRate, this.globalStep, this.warmupSteps, this.totalSteps);
    const clip = untrack(clipGradNorm(this.optimizer.params, this.args.maxGradNorm > 0 ? this.args.maxGradNorm : null));
    this.optimizer.update({ lr, clip });
    this.optimizer.zeroGrad();
    this.afterOptimizerStep();
    this.globalStep++;
    return { lr, clip };
  }

  /** Run one optimizer step over gradientAccumulationSteps micro-batches. */
  trainStep(): void {
    const started = performance.now();
    const batches = Array.from({ length: this.args.gradientAccumulationSteps }, () => this.train.next());
    const { ce, kl } = this.accumulateGradients(batches);
    const { lr, clip } = this.applyOptimizer();
    this.peakBytes = Math.max(this.peakBytes, engine().pool.peakBytes);
    const tokens = batches.reduce((n, b) => n + b.batchSize * b.seqLen, 0);
    this.pending.push({ ce, kl, clip, lr, tokens, seconds: (performance.now() - started) / 1000 });
  }

  /** Read back the pending steps' values and return their means (null when nothing is pending). */
  async flushMetrics(): Promise<LogRecord | null> {
    if (this.pending.length === 0) return null;
    const steps = this.pending;
    this.pending = [];
    let ce = 0;
    let kl = 0;
    let gradNorm = 0;
    let tokens = 0;
    let seconds = 0;
    for (const s of steps) {
      for (const t of s.ce) ce += await t.item();
      for (const t of s.kl) kl += await t.item();
      gradNorm += ((await s.clip.data()) as Float32Array)[1];
      tokens += s.tokens;
      seconds += s.seconds;
      for (const t of [...s.ce, ...s.kl, s.clip]) t.dispose();
    }
    // The step times above are CPU encoding times. The read-back waited for the GPU, so the
    // throughput is measured over the wall time of the logged window instead.
    const wall = (performance.now() - this.windowStart) / 1000;
    this.windowStart = performance.now();
    const n = steps.length;
    const hasKl = steps.some((s) => s.kl.length > 0);
    const alphaBeta = this.lossWeights();
    const record: LogRecord = {
      step: this.globalStep,
      loss: (alphaBeta.alpha * ce + (hasKl ? alphaBeta.beta * kl : 0)) / n,
      ce: ce / n,
      ...(hasKl ? { kl: kl / n } : {}),
      learning_rate: steps[n - 1].lr,
      grad_norm: gradNorm / n,
      tokens_per_second: tokens / Math.max(wall, 1e-9),
      step_seconds: Math.max(wall, seconds) / n,
    };
    return record;
  }

  private windowStart = performance.now();

  /** alpha and beta of the logged loss; plain SFT is alpha 1, beta 0. */
  protected lossWeights(): { alpha: number; beta: number } {
    return { alpha: 1, beta: 0 };
  }

  /** Mean next-token NLL and perplexity over `batches` (every counted target). */
  async evaluate(batches: Batch[] = this.evalBatches): Promise<EvalResult> {
    const { loss, perplexity, tokens } = await evaluateModel(this.model, batches);
    return { step: this.globalStep, eval_loss: loss, eval_perplexity: perplexity, eval_tokens: tokens };
  }

  protected record(entry: LogRecord | EvalResult): void {
    this.history.push(entry);
    if (this.writeMetrics) {
      mkdirSync(this.args.outputDir, { recursive: true });
      appendFileSync(join(this.args.outputDir, 'metrics.jsonl'), `${JSON.stringify(entry)}\n`);
    }
  }

  /**
   * Train until `totalSteps` (or `stopAt`, for a caller that stops early), logging every
   * loggingSteps, evaluating every evalSteps and saving every saveSteps. `shouldStop` is checked
   * after each step (Ctrl-C handling); a stop saves a checkpoint.
   */
  async trainLoop(options: { stopAt?: number; shouldStop?: () => boolean } = {}): Promise<void> {
    const total = this.totalSteps;
    const stopAt = Math.min(options.stopAt ?? total, total);
    const bar = this.progressLabel === null ? null : new ProgressBar(this.progressLabel, total);
    let last: LogRecord | null = null;
    this.windowStart = performance.now();
    while (this.globalStep < stopAt) {
      this.trainStep();
      this.callbacks.onStepEnd?.(this.globalStep);
      const atEnd = this.globalStep === stopAt;
      if (this.globalStep % Math.max(1, this.args.loggingSteps) === 0 || atEnd) {
        const rec = await this.flushMetrics();
        if (rec) {
          last = rec;
          this.record(rec);
          this.callbacks.onLog?.(rec);
        }
      }
      if (bar && last) {
        bar.update(this.globalStep, {
          loss: last.loss,
          ...(last.kl !== undefined ? { ce: last.ce, kl: last.kl } : {}),
          lr: last.learning_rate,
          'tok/s': Math.round(last.tokens_per_second),
        });
      }
      if (this.args.evalSteps > 0 && this.globalStep % this.args.evalSteps === 0 && this.evalBatches.length) {
        const result = await this.evaluate();
        this.record(result);
        this.callbacks.onEvaluate?.(result);
      }
      if (this.args.saveSteps > 0 && this.globalStep % this.args.saveSteps === 0 && !atEnd) {
        const dir = await this.saveCheckpoint();
        this.callbacks.onSave?.(dir);
      }
      if (options.shouldStop?.()) break;
    }
    bar?.finish();
  }

  /** Save the adapter and the trainer state to `dir` (default `<outputDir>/checkpoint-<step>`). */
  async saveCheckpoint(dir?: string): Promise<string> {
    return saveCheckpoint(this, dir ?? join(this.args.outputDir, `checkpoint-${this.globalStep}`));
  }

  /** Return the trainer's own state beyond the optimizer (TemaTrainer adds its EMA). */
  async extraState(): Promise<Record<string, unknown>> {
    return {};
  }

  loadExtraState(_state: Record<string, unknown>, _file: string): void {}

  dispose(): void {
    for (const s of this.pending) for (const t of [...s.ce, ...s.kl, s.clip]) t.dispose();
    this.pending = [];
    this.optimizer.dispose();
  }
}

