import { ConfigError } from '@tematrainer/tensor';
import {
  Batcher,
  collate,
  packSequences,
  paddingId,
  readDataset,
  tokenizeDataset,
  type Batch,
  type DatasetFormat,
  type TextTokenizer,
  type TokenizedExample,
} from './data/index.js';

export interface TrainingDataOptions {
  /** trl's max_length: longer examples are cut at the end, and packing cuts blocks of this size. */
  maxLength: number;
  completionOnlyLoss: boolean;
  packing: boolean;
  /** Receives the truncation notice (once) and the count of truncated examples. */
  logger?: (message: string) => void;
}

/** A dataset file read, tokenized and (with packing) packed into sequences. */
export interface TrainingData {
  file: string;
  format: DatasetFormat;
  /** Records in the file. */
  records: number;
  /** Records longer than max_length, cut at the end. */
  truncated: number;
  /** The sequences that batches are drawn from: one per record, or packed blocks. */
  sequences: TokenizedExample[];
}

/**
 * Read a dataset file in one of trl's formats and tokenize it the way SFTTrainer does:
 * readDataset, tokenizeDataset with max_length and completion_only_loss, then packSequences
 * when `packing` is on. Errors of the file (invalid JSON, an empty file) name the file and line.
 */
export async function loadTrainingData(file: string, tokenizer: TextTokenizer, options: TrainingDataOptions): Promise<TrainingData> {
  const dataset = await readDataset(file);
  const { examples, truncated } = tokenizeDataset(dataset.examples, tokenizer, {
    maxLength: options.maxLength,
    completionOnlyLoss: options.completionOnlyLoss,
    logger: (message) => options.logger?.(`${file}: ${message}`),
  });
  if (truncated > 0) options.logger?.(`${file}: ${truncated} of ${examples.length} examples truncated to max_length ${options.maxLength}`);

  let sequences = examples;
  if (options.packing) {
    if (tokenizer.eosId === null) throw new ConfigError(`packing: the tokenizer has no EOS token to separate packed examples; set packing: false`);
    sequences = packSequences(examples, options.maxLength, tokenizer.eosId);
  }
  return { file, format: dataset.format, records: examples.length, truncated, sequences };
}

/** Build a seeded, shuffled source of padded training batches over `data`, restorable from its state. */
export function trainingBatches(data: TrainingData, tokenizer: TextTokenizer, batchSize: number, seed: number): Batcher {
  return new Batcher(data.sequences, { batchSize, seed, padId: paddingId(tokenizer) });
}

/** Cut `data` into evaluation batches in file order, the last one smaller when the count does not divide. */
export function evaluationBatches(data: TrainingData, tokenizer: TextTokenizer, batchSize: number): Batch[] {
  const batches: Batch[] = [];
  for (let start = 0; start < data.sequences.length; start += batchSize) {
    batches.push(collate(data.sequences.slice(start, start + batchSize), paddingId(tokenizer)));
  }
  return batches;
}
