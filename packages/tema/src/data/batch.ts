import { ConfigError } from '@tematrainer/tensor';

import { EpochOrder, type SamplerState } from './random.js';
import type { Batch, TextTokenizer, TokenizedExample } from './types.js';
import { IGNORE_INDEX } from './types.js';

/** Returns the padding id: the tokenizer's pad id, else its EOS id, else 0. */
export function paddingId(tokenizer: Pick<TextTokenizer, 'padId' | 'eosId'>): number {
  return tokenizer.padId ?? tokenizer.eosId ?? 0;
}

/**
 * Stacks examples into one batch, right-padded to the longest: padding gets `padId` as input,
 * 0 in the attention mask and -100 as label.
 */
export function collate(examples: readonly TokenizedExample[], padId: number): Batch {
  const batchSize = examples.length;
  const seqLen = examples.reduce((longest, example) => Math.max(longest, example.inputIds.length), 0);

  const inputIds = new Int32Array(batchSize * seqLen).fill(padId);
  const labels = new Int32Array(batchSize * seqLen).fill(IGNORE_INDEX);
  const attentionMask = new Int32Array(batchSize * seqLen);

  examples.forEach((example, row) => {
    if (example.labels.length !== example.inputIds.length) {
      throw new ConfigError(
        `batch row ${row}: ${example.inputIds.length} input ids but ${example.labels.length} labels; each token needs one label`,
      );
    }
    const offset = row * seqLen;
    inputIds.set(example.inputIds, offset);
    labels.set(example.labels, offset);
    attentionMask.fill(1, offset, offset + example.inputIds.length);
  });

  return { inputIds, labels, attentionMask, batchSize, seqLen };
}

/**
 * Concatenates examples into one stream and cuts it into blocks of `maxLength` tokens (trl's
 * `packing`). An EOS token, labelled EOS, separates consecutive examples unless the earlier one
 * already ends with EOS. Labels travel with their tokens, so -100 prompt labels stay masked.
 * The last block is shorter when the stream does not fill it.
 */
export function packSequences(
  examples: readonly TokenizedExample[],
  maxLength: number,
  eosId: number,
): TokenizedExample[] {
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new ConfigError(`max_length: expected a positive integer, found ${maxLength}`);
  }

  const streamIds: number[] = [];
  const streamLabels: number[] = [];
  examples.forEach((example, index) => {
    const previousEndsWithEos = streamIds.length > 0 && streamIds[streamIds.length - 1] === eosId;
    if (index > 0 && !previousEndsWithEos) {
      streamIds.push(eosId);
      streamLabels.push(eosId);
    }
    for (let i = 0; i < example.inputIds.length; i++) {
      streamIds.push(example.inputIds[i]!);
      streamLabels.push(example.labels[i]!);
    }
  });

  const blocks: TokenizedExample[] = [];
  for (let start = 0; start < streamIds.length; start += maxLength) {
    blocks.push({
      inputIds: streamIds.slice(start, start + maxLength),
      labels: streamLabels.slice(start, start + maxLength),
    });
  }
  return blocks;
}

export interface BatcherOptions {
  batchSize: number;
  /** Seed of the per-epoch shuffle. */
  seed: number;
  /** Padding id; see `paddingId`. */
  padId: number;
  /** Visit examples in a new seeded order each epoch (default) or in file order. */
  shuffle?: boolean;
  /** Skip an epoch's last batch when it has fewer than `batchSize` examples. */
  dropLast?: boolean;
}

/**
 * Draws padded batches from tokenized examples, epoch after epoch, in a seeded order. `state`
 * is `{epoch, position, seed}`, and a batcher restored from it yields the batches that the
 * original would have yielded next.
 */
export class Batcher {
  readonly batchSize: number;
  readonly dropLast: boolean;
  private readonly order: EpochOrder;

  constructor(
    private readonly examples: readonly TokenizedExample[],
    private readonly options: BatcherOptions,
  ) {
    const { batchSize, dropLast = false } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new ConfigError(`batch_size: expected a positive integer, found ${batchSize}`);
    }
    if (dropLast && batchSize > examples.length) {
      throw new ConfigError(
        `batch_size ${batchSize} is larger than the ${examples.length} examples, so dropping the last partial batch leaves none`,
      );
    }
    this.batchSize = batchSize;
    this.dropLast = dropLast;
    this.order = new EpochOrder(examples.length, options.seed, options.shuffle ?? true);
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    const count = this.examples.length / this.batchSize;
    return this.dropLast ? Math.floor(count) : Math.ceil(count);
  }

  get state(): SamplerState {
    return this.order.state;
  }

  restore(state: SamplerState): void {
    this.order.restore(state);
  }

  /** Returns the next batch, starting a new epoch when the current one is done. */
  next(): Batch {
    if (this.dropLast && this.order.remaining > 0 && this.order.remaining < this.batchSize) {
      this.order.endEpoch();
    }
    const indices = this.order.take(this.batchSize);
    return collate(
      indices.map((index) => this.examples[index]!),
      this.options.padId,
    );
  }
}
