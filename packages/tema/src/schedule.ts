import { ConfigError } from '@tematrainer/tensor';

export type LrSchedulerType = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';

/**
 * Learning rate for the optimizer step with 0-based index `step`, as transformers' schedulers
 * compute it: linear warm-up from 0 over `warmupSteps`, then constant, linear decay to 0 at
 * `totalSteps`, or a half cosine to 0. Like transformers, the first step of a warm-up uses rate 0.
 */
export function learningRate(
  type: LrSchedulerType,
  baseLr: number,
  step: number,
  warmupSteps: number,
  totalSteps: number,
): number {
  if (type === 'constant') return baseLr;
  if (step < warmupSteps) return (baseLr * step) / Math.max(1, warmupSteps);
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const progress = (step - warmupSteps) / decaySteps;
  switch (type) {
    case 'constant_with_warmup':
      return baseLr;
    case 'linear':
      return baseLr * Math.max(0, (totalSteps - step) / decaySteps);
    case 'cosine':
      return baseLr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    default:
      throw new ConfigError(`lr_scheduler_type "${type as string}" is not supported; use constant, constant_with_warmup, linear or cosine`);
  }
}

/** warmup_steps wins over warmup_ratio, as in transformers. */
export function warmupStepsOf(warmupSteps: number, warmupRatio: number, totalSteps: number): number {
  return warmupSteps > 0 ? warmupSteps : Math.ceil(warmupRatio * totalSteps);
}
