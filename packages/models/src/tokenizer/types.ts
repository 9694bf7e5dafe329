/** Options of `Tokenizer.encode`; an omitted flag follows the tokenizer's own rule. */
export interface EncodeOptions {
  /** Prepend the BOS token. Defaults to the tokenizer's rule (true for llama-style tokenizers). */
  addBos?: boolean;
  /** Append the EOS token. Defaults to the tokenizer's rule (false for llama-style tokenizers). */
  addEos?: boolean;
}

/** Options of `Tokenizer.decode`. */
export interface DecodeOptions {
  /** Leave out control tokens such as BOS, EOS and PAD, and the unknown token. Default false. */
  skipSpecialTokens?: boolean;
}

/** One turn of a chat, in the shape chat templates expect. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Options of `Tokenizer.applyChatTemplate`. */
export interface ChatTemplateOptions {
  /** Append the header that starts the assistant's reply. Default false. */
  addGenerationPrompt?: boolean;
}

/**
 * Text to token ids and back. Implemented by `SentencePieceBpeTokenizer` (llama2.c and GGUF
 * vocabularies) and `HfTokenizer` (tokenizer.json).
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;

  encode(text: string, options?: EncodeOptions): number[];

  /**
   * Decodes a whole sequence. A leading space that the encoder added as a dummy prefix is
   * removed at the start of the text and after BOS, so `decode(encode(x), { skipSpecialTokens: true })`
   * returns `x`.
   */
  decode(ids: number[], options?: DecodeOptions): string;

  /**
   * Returns the text of one token as it continues `previousId`, as llama2.c's `decode` does: the
   * leading space is stripped after BOS, and without `previousId` the token starts the text.
   * A byte-fallback token that holds only part of a multi-byte UTF-8 character returns U+FFFD,
   * so streaming output goes through `createDecodeStream`, which waits for the whole character.
   */
  decodeToken(id: number, previousId?: number): string;

  /**
   * Renders a chat with the tokenizer's chat template. Only tokenizers loaded with a
   * tokenizer_config.json have one; the others raise a ConfigError.
   */
  applyChatTemplate?(messages: ChatMessage[], options?: ChatTemplateOptions): string;
}
