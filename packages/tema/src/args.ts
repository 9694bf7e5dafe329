import { ConfigError, type DivergenceDirection } from '@tematrainer/tensor';
import type { LrSchedulerType } from './schedule.js';

/**
 * Training settings named as trl's SFTConfig / transformers' TrainingArguments (camelCase here,
 * snake_case in config files), with their defaults.
 */
export interface TrainingArguments {
  outputDir: string;
  /** Optimizer steps to run; when > 0 it wins over numTrainEpochs. */
  maxSteps: number;
  numTrainEpochs: number;
  perDeviceTrainBatchSize: number;
  perDeviceEvalBatchSize: number;
  gradientAccumulationSteps: number;
  learningRate: number;
  lrSchedulerType: LrSchedulerType;
  warmupSteps: number;
  warmupRatio: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  /** Global gradient-norm clipping; 0 disables it. */
  maxGradNorm: number;
  maxLength: number;
  packing: boolean;
  completionOnlyLoss: boolean;
  seed: number;
  loggingSteps: number;
  /** Evaluate every N optimizer steps; 0 evaluates only at the end. */
  evalSteps: number;
  /** Save a checkpoint every N optimizer steps; 0 saves only at the end. */
  saveSteps: number;
}

export const TRAINING_DEFAULTS: TrainingArguments = {
  outputDir: 'runs/output',
  maxSteps: -1,
  numTrainEpochs: 3,
  perDeviceTrainBatchSize: 8,
  perDeviceEvalBatchSize: 8,
  gradientAccumulationSteps: 1,
  learningRate: 2e-5,
  lrSchedulerType: 'linear',
  warmupSteps: 0,
  warmupRatio: 0,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  maxGradNorm: 1,
  maxLength: 1024,
  packing: false,
  completionOnlyLoss: true,
  seed: 42,
  loggingSteps: 10,
  evalSteps: 0,
  saveSteps: 0,
};

/** TEMA settings; temaBeta = 0 turns the trainer into plain SFT and skips the teacher pass. */
export interface TemaArguments {
  /** Weight of the cross-entropy term. */
  temaAlpha: number;
  /** Weight of the divergence from the EMA teacher. */
  temaBeta: number;
  /** EMA decay d in ema = d·ema + (1 - d)·param, in [0, 1). */
  emaDecay: number;
  /** Use d_k = min(d, (1 + k) / (10 + k)) for the k-th update. */
  emaWarmup: boolean;
  /** Both distributions use softmax(logits / T); the divergence is multiplied by T². */
  klTemperature: number;
  klDirection: DivergenceDirection;
  /** Teacher weight of the mixture in the 'jsd' direction. */
  jsdBeta: number;
}

export const TEMA_DEFAULTS: TemaArguments = {
  temaAlpha: 1,
  temaBeta: 1,
  emaDecay: 0.99,
  emaWarmup: false,
  klTemperature: 1,
  klDirection: 'forward',
  jsdBeta: 0.5,
};

export function validateTraining(a: TrainingArguments): void {
  const problems: string[] = [];
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) problems.push(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt('per_device_train_batch_size', a.perDeviceTrainBatchSize);
  positiveInt('per_device_eval_batch_size', a.perDeviceEvalBatchSize);
  positiveInt('gradient_accumulation_steps', a.gradientAccumulationSteps);
  positiveInt('max_length', a.maxLength);
  if (!(a.maxSteps > 0) && !(a.numTrainEpochs > 0)) problems.push('set max_steps > 0 or num_train_epochs > 0');
  if (!(a.learningRate >= 0)) problems.push(`learning_rate must be >= 0, got ${a.learningRate}`);
  if (!(a.warmupRatio >= 0 && a.warmupRatio <= 1)) problems.push(`warmup_ratio must be in [0, 1], got ${a.warmupRatio}`);
  if (!(a.maxGradNorm >= 0)) problems.push(`max_grad_norm must be >= 0, got ${a.maxGradNorm}`);
  if (!(a.adamBeta1 >= 0 && a.adamBeta1 < 1) || !(a.adamBeta2 >= 0 && a.adamBeta2 < 1)) problems.push('adam betas must be in [0, 1)');
  if (!['constant', 'constant_with_warmup', 'linear', 'cosine'].includes(a.lrSchedulerType)) {
    problems.push(`lr_scheduler_type "${a.lrSchedulerType}" is not supported; use constant, constant_with_warmup, linear or cosine`);
  }
  if (problems.length) throw new ConfigError(`invalid training arguments: ${problems.join('; ')}`);
}

export function validateTema(t: TemaArguments): void {
  const problems: string[] = [];
  if (!(t.temaAlpha >= 0)) problems.push(`tema_alpha must be >= 0, got ${t.temaAlpha}`);
  if (!(t.temaBeta >= 0)) problems.push(`tema_beta must be >= 0, got ${t.temaBeta}`);
  if (!(t.emaDecay >= 0 && t.emaDecay < 1)) problems.push(`ema_decay must be in [0, 1), got ${t.emaDecay}`);
  if (!(t.klTemperature > 0)) problems.push(`kl_temperature must be > 0, got ${t.klTemperature}`);
  if (!['forward', 'reverse', 'jsd'].includes(t.klDirection)) problems.push(`kl_direction must be forward, reverse or jsd, got "${t.klDirection}"`);
  if (!(t.jsdBeta > 0 && t.jsdBeta < 1)) problems.push(`jsd_beta must be in (0, 1), got ${t.jsdBeta}`);
  if (problems.length) throw new ConfigError(`invalid TEMA arguments: ${problems.join('; ')}`);
}
