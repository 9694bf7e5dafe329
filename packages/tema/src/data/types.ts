/** One chat turn, as trl's conversational formats store it. */
export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * The part of a tokenizer that the data pipeline uses. Any tokenizer of the models package fits
 * this shape; the pipeline declares it here so that it depends on no tokenizer implementation.
 */
export interface TextTokenizer {
  vocabSize: number;
  bosId: number | null;
  eosId: number | null;
  padId: number | null;
  encode(text: string, options?: { addBos?: boolean; addEos?: boolean }): number[];
  applyChatTemplate?(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
}

/** Language-modeling record: `{"text": ...}`. */
export interface TextExample {
  text: string;
}

/** Prompt-completion record with plain strings: `{"prompt": ..., "completion": ...}`. */
export interface PromptCompletionExample {
  prompt: string;
  completion: string;
}

/** Conversational language-modeling record: `{"messages": [{role, content}, ...]}`. */
export interface MessagesExample {
  messages: ChatMessage[];
}

/** Conversational prompt-completion record: prompt and completion are both message lists. */
export interface ConversationalPromptCompletionExample {
  prompt: ChatMessage[];
  completion: ChatMessage[];
}

/** A record in one of trl's SFT dataset formats. */
export type Example =
  | TextExample
  | PromptCompletionExample
  | MessagesExample
  | ConversationalPromptCompletionExample;

/** The names of trl's SFT dataset formats. */
export type DatasetFormat = 'text' | 'prompt-completion' | 'messages' | 'conversational-prompt-completion';

/** Token ids of one example and their labels; a label of -100 is left out of the loss. */
export interface TokenizedExample {
  inputIds: number[];
  labels: number[];
}

/** A padded batch, row-major `[batchSize, seqLen]`. */
export interface Batch {
  inputIds: Int32Array;
  labels: Int32Array;
  /** 1 on real tokens, 0 on padding. */
  attentionMask: Int32Array;
  batchSize: number;
  seqLen: number;
}

/** The label value that the cross-entropy loss skips, as in PyTorch and trl. */
export const IGNORE_INDEX = -100;
