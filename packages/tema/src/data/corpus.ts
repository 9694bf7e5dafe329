
import { ConfigError, FormatError } from '@tematrainer/tensor';

import { EpochOrder, type SamplerState } from './random.js';
import { decodeText, readInput } from './text.js';
import { readDataset } from './dataset.js';
import type { Batch, ChatMessage, Example, TextTokenizer } from './types.js';

/**
 * Reads a plain-text corpus as the reference measurements did: UTF-8, a leading byte order mark
 * dropped, CRLF converted to LF.
 */
export async function readCorpus(file: string): Promise<string> {
  return decodeText(await readInput(file), file);
}

/**
 * The text of a corpus file: a plain text file as `readCorpus` reads it, or the records of a
 * JSONL dataset in any of trl's formats, each record's text (prompt and completion, or every
 * message's content) joined, records separated by a blank line.
 */
export async function readCorpusText(file: string): Promise<string> {
  const extension = file.toLowerCase().slice(file.lastIndexOf('.'));
  if (extension !== '.jsonl' && extension !== '.json') return readCorpus(file);
  const { examples } = await readDataset(file);
  return examples.map(exampleText).join('\n\n');
}

function exampleText(example: Example): string {
  if ('text' in example) return example.text;
  if ('messages' in example) return example.messages.map((m) => m.content).join('\n');
  const part = (p: string | ChatMessage[]) => (typeof p === 'string' ? p : p.map((m) => m.content).join('\n'));
  return part(example.prompt) + part(example.completion);
}

/** Tokenizes a whole corpus as one document: BOS first, no EOS. */
export function tokenizeCorpus(text: string, tokenizer: TextTokenizer): Int32Array {
  if (tokenizer.bosId === null) {
    throw new ConfigError('the corpus protocol starts each corpus with BOS, but the tokenizer has no BOS token');
  }
  return Int32Array.from(tokenizer.encode(text, { addBos: true, addEos: false }));
}

export interface CorpusSplitOptions {
  /** Tokens per chunk; the tail shorter than a chunk is dropped. */
  chunkLength?: number;
  /** Fraction of the chunks, taken from the end, held out from training. */
  heldOutFraction?: number;
  /** Maximum number of held-out chunks in the evaluation set, spread evenly. */
  maxEvalChunks?: number;
  /** Name of the corpus in error messages. */
  source?: string;
}

/** Training and evaluation chunks of a corpus; each chunk's labels are its own ids. */
export interface CorpusSplit {
  train: Int32Array[];
  eval: Int32Array[];
}

/**
 * Splits a tokenized corpus by the reference protocol.
 *
 * 1. Cut `ids` into non-overlapping chunks of `chunkLength` tokens; drop the shorter tail.
 * 2. Hold out the last `max(1, Math.round(heldOutFraction * nChunks))` chunks. Math.round rounds
 *    halves up, so for exact halves (nChunks = 25, 35, ... at 0.1) this holds out one chunk more
 *    than Python's round, which rounds halves to even.
 * 3. Train on the chunks before them.
 * 4. Evaluate on the held-out chunks, or when there are more than `maxEvalChunks` of them, on the
 *    k = maxEvalChunks chunks at held-out indices `Math.floor(i * n / k)` for i < k.
 *
 * The chunks are views into `ids`.
 */
export function corpusSplit(ids: Int32Array, options: CorpusSplitOptions = {}): CorpusSplit {
  const { chunkLength = 128, heldOutFraction = 0.1, maxEvalChunks = 128, source = 'corpus' } = options;
  if (!Number.isInteger(chunkLength) || chunkLength < 1) {
    throw new ConfigError(`chunk_length: expected a positive integer, found ${chunkLength}`);
  }
  if (!(heldOutFraction > 0 && heldOutFraction < 1)) {
    throw new ConfigError(`held_out_fraction: expected a number between 0 and 1, found ${heldOutFraction}`);
  }
  if (!Number.isInteger(maxEvalChunks) || maxEvalChunks < 1) {
    throw new ConfigError(`max_eval_chunks: expected a positive integer, found ${maxEvalChunks}`);
  }

  const chunkCount = Math.floor(ids.length / chunkLength);
  const heldOutCount = Math.max(1, Math.round(heldOutFraction * chunkCount));
  const trainCount = chunkCount - heldOutCount;
  if (trainCount < 1) {
    throw new FormatError(
      `${source}: ${ids.length} tokens make ${chunkCount} chunks of ${chunkLength}, too few to hold out ${heldOutCount} and still train; use a longer corpus or a smaller chunk length`,
    );
  }

  const chunk = (index: number): Int32Array => ids.subarray(index * chunkLength, (index + 1) * chunkLength);
  const train = Array.from({ length: trainCount }, (_, index) => chunk(index));

  const evalCount = Math.min(heldOutCount, maxEvalChunks);
  const evalChunks = Array.from({ length: evalCount }, (_, i) =>
    chunk(trainCount + Math.floor((i * heldOutCount) / evalCount)),
  );
  return { train, eval: evalChunks };
}

/**
 * Reads, tokenizes and splits a corpus file by the reference protocol (see `readCorpus`,
 * `tokenizeCorpus` and `corpusSplit`).
 */
export async function loadCorpus(
  file: string,
  tokenizer: TextTokenizer,
  options: Omit<CorpusSplitOptions, 'source'> = {},
): Promise<CorpusSplit> {
  const ids = tokenizeCorpus(await readCorpusText(file), tokenizer);
  return corpusSplit(ids, { ...options, source: file });
}

/** Stacks equal-length chunks into a batch whose labels are the input ids; no padding. */
export function chunkBatch(chunks: readonly Int32Array[]): Batch {
  const batchSize = chunks.length;
  const seqLen = chunks[0]?.length ?? 0;
  const inputIds = new Int32Array(batchSize * seqLen);

  chunks.forEach((chunk, row) => {
    if (chunk.length !== seqLen) {
      throw new ConfigError(`chunk batch: row ${row} has ${chunk.length} tokens, row 0 has ${seqLen}; chunks must be equal`);
    }
    inputIds.set(chunk, row * seqLen);
  });

  return {
    inputIds,
    labels: inputIds.slice(),
    attentionMask: new Int32Array(batchSize * seqLen).fill(1),
    batchSize,
    seqLen,
  };
}

/**
 * Draws batches of training chunks in a seeded order, a new permutation each epoch. An epoch's
 * last batch is smaller when the chunk count is not a multiple of `batchSize`. `state` resumes
 * the same order.
 */
export class ChunkSampler {
  private readonly order: EpochOrder;

  constructor(
    private readonly chunks: readonly Int32Array[],
    readonly batchSize: number,
    seed: number,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new ConfigError(`batch_size: expected a positive integer, found ${batchSize}`);
    }
    this.order = new EpochOrder(chunks.length, seed, true);
  }

  get state(): SamplerState {
    return this.order.state;
  }

  restore(state: SamplerState): void {
    this.order.restore(state);
  }

  /** Returns the next batch of chunks, starting a new epoch when the current one is done. */
  next(): Batch {
    return chunkBatch(this.order.take(this.batchSize).map((index) => this.chunks[index]!));
  }
}
