import { crossEntropy, fromData, noGrad, tidy, untrack, type Tensor } from '@tematrainer/tensor';
import type { LlamaModel } from '@tematrainer/models';
import { IGNORE_INDEX, type Batch } from './data/index.js';

/** Targets for next-token prediction: position t predicts labels[t + 1]; the last position predicts nothing. */
export function shiftLabels(batch: Batch): Int32Array {
  const { batchSize: B, seqLen: T, labels } = batch;
  const out = new Int32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) out[b * T + t] = labels[b * T + t + 1];
  }
  return out;
}

export function countTargets(targets: Int32Array): number {
  let n = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) n++;
  return n;
}

export interface Perplexity {
  /** Mean next-token negative log-likelihood over every counted target. */
  loss: number;
  perplexity: number;
  tokens: number;
}

/**
 * Mean next-token NLL and perplexity exp(NLL) of `model` over `batches`. All batches are
 * encoded before the first read-back, so the GPU never waits for the CPU in between.
 */
export async function evaluateModel(model: Pick<LlamaModel, 'forward'>, batches: Batch[]): Promise<Perplexity> {
  const sums: Tensor[] = [];
  let count = 0;
  for (const batch of batches) {
    const targets = shiftLabels(batch);
    count += countTargets(targets);
    const sum = tidy(() =>
      noGrad(() => {
        const ids = fromData(batch.inputIds, [batch.batchSize, batch.seqLen], 'i32');
        const logits = model.forward(ids).reshape([batch.batchSize * batch.seqLen, -1]); // [B*T, vocab]
        return crossEntropy(logits, fromData(targets, [targets.length], 'i32'), 1);
      }),
    );
    sums.push(untrack(sum));
  }
  let total = 0;
  for (const s of sums) {
    total += await s.item();
    s.dispose();
  }
  const loss = total / Math.max(1, count);
  return { loss, perplexity: Math.exp(loss), tokens: count };
}
