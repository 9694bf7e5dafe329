export * from './types.js';
export { decodeText } from './text.js';
export { readDataset, parseJsonLines, parseRecord, exampleFormat, type Dataset } from './dataset.js';
export { tokenizeExample, tokenizeDataset, type TokenizeOptions, type TruncationStats } from './tokenize.js';
export { mulberry32, epochPermutation, EpochOrder, type SamplerState } from './random.js';
export { collate, paddingId, packSequences, Batcher, type BatcherOptions } from './batch.js';
export {
  readCorpus,
  readCorpusText,
  tokenizeCorpus,
  corpusSplit,
  loadCorpus,
  chunkBatch,
  ChunkSampler,
  type CorpusSplit,
  type CorpusSplitOptions,
} from './corpus.js';
