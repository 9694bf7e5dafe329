import type { ChatMessage, TextTokenizer } from './types.js';

/** Offset of byte values in the test tokenizer's vocabulary: ids 0..2 are PAD/UNK, BOS and EOS. */
export const BYTE_OFFSET = 3;

/**
 * Creates a deterministic tokenizer for tests: one token per UTF-8 byte (id = byte + 3), BOS = 1,
 * EOS = 2, no pad id. Like Llama's tokenizers, it adds BOS and no EOS unless the options request
 * otherwise. Its chat template writes `<|role|>content\n` per message and `<|assistant|>` as the
 * generation prompt.
 */
export function byteTokenizer(options: { chatTemplate?: boolean } = {}): TextTokenizer {
  const tokenizer: TextTokenizer = {
    vocabSize: 256 + BYTE_OFFSET,
    bosId: 1,
    eosId: 2,
    padId: null,
    encode(text, { addBos = true, addEos = false } = {}) {
      const ids = Array.from(new TextEncoder().encode(text), (byte) => byte + BYTE_OFFSET);
      return [...(addBos ? [1] : []), ...ids, ...(addEos ? [2] : [])];
    },
  };

  if (options.chatTemplate ?? true) {
    tokenizer.applyChatTemplate = (messages: ChatMessage[], { addGenerationPrompt = false } = {}) =>
      messages.map((message) => `<|${message.role}|>${message.content}\n`).join('') +
      (addGenerationPrompt ? '<|assistant|>' : '');
  }
  return tokenizer;
}

/** Encodes `text` as the test tokenizer does, without special tokens. */
export function byteIds(text: string): number[] {
  return Array.from(new TextEncoder().encode(text), (byte) => byte + BYTE_OFFSET);
}
