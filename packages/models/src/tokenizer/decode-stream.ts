import type { Tokenizer } from './types.js';

/** Incremental decoder for generated tokens; see `createDecodeStream`. */
export interface DecodeStream {
  /** Adds one token and returns the text it completes, or "" while a UTF-8 character is still partial. */
  push(id: number): string;
  /** Returns the text still held back, with U+FFFD for an incomplete character. */
  flush(): string;
}

/** Options of `createDecodeStream`. */
export interface DecodeStreamOptions {
  /** Leave out BOS, EOS and other special tokens. Default true. */
  skipSpecialTokens?: boolean;
  /** Ids that come before the streamed ones (a prompt): they set the context but are not returned. */
  context?: number[];
}

/** The longest UTF-8 character is 4 bytes, so 4 byte-fallback tokens always complete one. */
const MAX_PENDING_TOKENS = 4;

/**
 * Creates a streamer that turns token ids into text as soon as the text is complete UTF-8. Byte-fallback
 * tokens (`<0xE2>`, ...) of a multi-byte character produce nothing until the last byte arrives.
 *
 * It decodes a short window of ids twice, with and without the new tokens, and returns the
 * difference. So it needs only the tokenizer's `decode`, not how tokens map to bytes, and it also
 * works with decoders that strip a leading space at the start of the text.
 */
export function createDecodeStream(tokenizer: Tokenizer, options: DecodeStreamOptions = {}): DecodeStream {
  const decodeOptions = { skipSpecialTokens: options.skipSpecialTokens ?? true };
  let ids = [...(options.context ?? [])];

  // ids[prefixOffset..readOffset) were returned already; they give the new tokens their context.
  let prefixOffset = Math.max(0, ids.length - 1);
  let readOffset = ids.length;

  const pendingText = (): { text: string; complete: boolean } => {
    const prefixText = tokenizer.decode(ids.slice(prefixOffset, readOffset), decodeOptions);
    const fullText = tokenizer.decode(ids.slice(prefixOffset), decodeOptions);
    const text = fullText.startsWith(prefixText) ? fullText.slice(prefixText.length) : fullText;
    return { text, complete: !fullText.endsWith('\uFFFD') };
  };

  const advance = (): void => {
    // Drop ids that no later window reaches.
    ids = ids.slice(readOffset);
    prefixOffset = 0;
    readOffset = ids.length;
  };

  return {
    push(id: number): string {
      ids.push(id);
      const { text, complete } = pendingText();
      const waited = ids.length - readOffset >= MAX_PENDING_TOKENS;
      if (text.length === 0 || (!complete && !waited)) return '';

      advance();
      return text;
    },

    flush(): string {
      if (readOffset === ids.length) return '';
      const { text } = pendingText();
      advance();
      return text;
    },
  };
}
