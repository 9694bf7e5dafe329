import { ConfigError, FormatError, TemaError } from '@tematrainer/tensor';

import { mergeSymbols, type MergeVocab } from './spm-merge.js';
import type { ChatMessage, DecodeOptions, EncodeOptions, Tokenizer } from './types.js';

/** Token types as GGUF's `tokenizer.ggml.token_type` stores them (SentencePiece's piece types). */
export const TokenType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

/** A SentencePiece BPE vocabulary as plain arrays, the form llama2.c and GGUF files hold. */
export interface SentencePieceVocab {
  /** Token texts; '▁' (U+2581) and ' ' both mean a space. */
  tokens: readonly string[];
  /** Merge priority of each token: the pair whose merged token scores highest merges first. */
  scores: ArrayLike<number>;
  /** `TokenType` of each token. Without it, types follow from the special ids and the `<0xNN>` pattern. */
  tokenTypes?: ArrayLike<number>;
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  padId?: number | null;
  /** Prepend a space to non-empty text before encoding, as SentencePiece's dummy prefix. Default true. */
  addSpacePrefix?: boolean;
  /** Default of `encode`'s `addBos`. Default true. */
  addBos?: boolean;
  /** Default of `encode`'s `addEos`. Default false. */
  addEos?: boolean;
}

/** A llama2.c tokenizer file (tok*.bin) as the io package's `readLlama2cTokenizer` returns it. */
export interface Llama2cTokenizerData {
  maxTokenLength?: number;
  tokens: readonly string[];
  scores: ArrayLike<number>;
}

/** The tokenizer part of a GGUF file as the io package's `ggufTokenizerData` returns it. */
export interface GgufTokenizerData {
  /** `tokenizer.ggml.model`; only "llama" (SentencePiece BPE) is read here. */
  model: string;
  tokens: readonly string[];
  scores?: ArrayLike<number> | null;
  tokenTypes?: ArrayLike<number> | null;
  bosId?: number | null;
  eosId?: number | null;
  unkId?: number | null;
  padId?: number | null;
  addBos?: boolean | null;
  addEos?: boolean | null;
  addSpacePrefix?: boolean | null;
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextEncoder();

/**
 * The SentencePiece BPE tokenizer of llama2.c and of GGUF files with `tokenizer.ggml.model = "llama"`.
 * Encoding follows llama2.c's `run.c` `encode()`: a space is prepended to non-empty text, each
 * Unicode character becomes its token or, when the vocabulary lacks it, one byte-fallback token
 * per UTF-8 byte, and then adjacent pairs merge by score. Unlike SentencePiece itself there is no
 * NFKC normalisation, as in llama2.c.
 */
export class SentencePieceBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly padId: number | null;
  readonly addSpacePrefix: boolean;
  readonly addBos: boolean;
  readonly addEos: boolean;

  /** Token texts with '▁' replaced by ' '. */
  private readonly pieces: string[];
  private readonly pieceBytes: Uint8Array[];
  private readonly scores: Float64Array;
  private readonly types: Uint8Array;
  private readonly textToId = new Map<string, number>();
  /** Id of the `<0xNN>` token of each byte, or -1. */
  private readonly byteToId = new Int32Array(256).fill(-1);
  /** Byte value of each `<0xNN>` token, or -1 for other tokens. */
  private readonly byteValues: Int16Array;
  private readonly mergeVocab: MergeVocab;

  private constructor(vocab: SentencePieceVocab) {
    const n = vocab.tokens.length;
    this.vocabSize = n;
    this.bosId = checkId(vocab.bosId, 'bosId', n);
    this.eosId = checkId(vocab.eosId, 'eosId', n);
    this.unkId = checkId(vocab.unkId, 'unkId', n);
    this.padId = checkId(vocab.padId ?? null, 'padId', n);
    this.addSpacePrefix = vocab.addSpacePrefix ?? true;
    this.addBos = vocab.addBos ?? true;
    this.addEos = vocab.addEos ?? false;

    if (vocab.scores.length !== n) {
      throw new ConfigError(`SentencePiece vocabulary: ${n} tokens but ${vocab.scores.length} scores; each token needs one score`);
    }
    if (vocab.tokenTypes && vocab.tokenTypes.length !== n) {
      throw new ConfigError(
        `SentencePiece vocabulary: ${n} tokens but ${vocab.tokenTypes.length} token types; each token needs one type`,
      );
    }

    this.pieces = vocab.tokens.map((token) => token.replaceAll('\u2581', ' '));
    this.pieceBytes = this.pieces.map((piece) => utf8.encode(piece));
    this.scores = Float64Array.from(vocab.scores);
    this.types = new Uint8Array(n);
    this.byteValues = new Int16Array(n).fill(-1);

    for (let id = 0; id < n; id++) {
      const type = vocab.tokenTypes ? vocab.tokenTypes[id]! : this.inferType(id);
      this.types[id] = type;

      if (type === TokenType.byte) {
        const match = BYTE_TOKEN.exec(this.pieces[id]!);
        if (!match) {
          throw new ConfigError(`SentencePiece vocabulary: token ${id} "${this.pieces[id]}" has the byte type but is not of the form <0xNN>`);
        }
        const byte = parseInt(match[1]!, 16);
        this.byteValues[id] = byte;
        if (this.byteToId[byte] === -1) this.byteToId[byte] = id;
      } else if (this.producibleFromText(id) && !this.textToId.has(this.pieces[id]!)) {
        this.textToId.set(this.pieces[id]!, id);
      }
    }

    this.mergeVocab = {
      pieces: this.pieces,
      scores: this.scores,
      textToId: this.textToId,
      mergeable: (id) => this.producibleFromText(id),
    };
  }

  /** Builds a tokenizer from plain arrays (see `SentencePieceVocab` for the defaults). */
  static fromVocab(vocab: SentencePieceVocab): SentencePieceBpeTokenizer {
    return new SentencePieceBpeTokenizer(vocab);
  }

  /**
   * Builds the tokenizer of a llama2.c tok*.bin file. Those files store BOS and EOS as "\n<s>\n" and
   * "\n</s>\n" at ids 1 and 2 and the unknown token at id 0; they are renamed `<s>` and `</s>`.
   */
  static fromLlama2c(data: Llama2cTokenizerData): SentencePieceBpeTokenizer {
    if (data.tokens.length < 3) {
      throw new FormatError(`llama2.c tokenizer: ${data.tokens.length} tokens, expected at least 3 (<unk>, <s>, </s>)`);
    }
    const tokens = [...data.tokens];
    tokens[1] = tokens[1] === '\n<s>\n' ? '<s>' : tokens[1]!;
    tokens[2] = tokens[2] === '\n</s>\n' ? '</s>' : tokens[2]!;
    return new SentencePieceBpeTokenizer({
      tokens,
      scores: data.scores,
      bosId: 1,
      eosId: 2,
      unkId: 0,
      addSpacePrefix: true,
      addBos: true,
    });
  }

  /**
   * Builds the tokenizer embedded in a GGUF file. Missing flags take llama.cpp's defaults for the
   * "llama" model: add_space_prefix true, add_bos true, add_eos false.
   */
  static fromGguf(data: GgufTokenizerData): SentencePieceBpeTokenizer {
    if (data.model !== 'llama') {
      throw new FormatError(
        `GGUF tokenizer.ggml.model is "${data.model}", expected "llama": only SentencePiece BPE vocabularies are read here`,
      );
    }
    if (!data.scores) {
      throw new FormatError('GGUF tokenizer.ggml.scores is missing; a "llama" tokenizer needs a score per token to merge');
    }
    return new SentencePieceBpeTokenizer({
      tokens: data.tokens,
      scores: data.scores,
      tokenTypes: data.tokenTypes ?? undefined,
      bosId: data.bosId ?? null,
      eosId: data.eosId ?? null,
      unkId: data.unkId ?? null,
      padId: validOrNull(data.padId, data.tokens.length),
      addSpacePrefix: data.addSpacePrefix ?? true,
      addBos: data.addBos ?? true,
      addEos: data.addEos ?? false,
    });
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    // Built without spreading, because spreading a long text's ids into push() overflows the stack.
    const ids = text.length > 0 ? mergeSymbols(this.initialSymbols(text), this.mergeVocab) : [];
    if (options.addBos ?? this.addBos) ids.unshift(this.requireId(this.bosId, 'BOS'));
    if (options.addEos ?? this.addEos) ids.push(this.requireId(this.eosId, 'EOS'));
    return ids;
  }

  decode(ids: number[], options: DecodeOptions = {}): string {
    const chunks: Uint8Array[] = [];
    let length = 0;
    let previousId: number | undefined;
    for (const id of ids) {
      this.checkTokenId(id);
      if (!(options.skipSpecialTokens && this.isSpecial(id))) {
        const bytes = this.pieceBytesAfter(id, previousId);
        chunks.push(bytes);
        length += bytes.length;
      }
      previousId = id;
    }

    const joined = new Uint8Array(length);
    let offset = 0;
    for (const chunk of chunks) {
      joined.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(joined);
  }

  decodeToken(id: number, previousId?: number): string {
    this.checkTokenId(id);
    return new TextDecoder().decode(this.pieceBytesAfter(id, previousId));
  }

  /**
   * Returns the bytes of one token as it continues `previousId`, llama2.c's `decode`: `<0xNN>` is
   * the byte NN, and the leading space is stripped after BOS or, without `previousId`, at the start.
   */
  tokenBytes(id: number, previousId?: number): Uint8Array {
    this.checkTokenId(id);
    return this.pieceBytesAfter(id, previousId).slice();
  }

  /** Returns the text of a token as stored, with ' ' in place of '▁'. */
  idToToken(id: number): string {
    this.checkTokenId(id);
    return this.pieces[id]!;
  }

  applyChatTemplate(_messages: ChatMessage[]): string {
    throw new ConfigError(
      'This SentencePiece tokenizer (llama2.c or GGUF vocabulary) has no chat template; ' +
        'load the model\'s tokenizer.json and tokenizer_config.json with loadHfTokenizer to render chats',
    );
  }

  /** Tells whether decoding with `skipSpecialTokens` leaves the token out (control and unknown tokens). */
  isSpecial(id: number): boolean {
    const type = this.types[id];
    return type === TokenType.control || type === TokenType.unknown;
  }

  /** Implements `tokenBytes` for a checked id, returning a view of the stored bytes. */
  private pieceBytesAfter(id: number, previousId: number | undefined): Uint8Array {
    const byte = this.byteValues[id]!;
    if (byte >= 0) return Uint8Array.of(byte);

    const bytes = this.pieceBytes[id]!;
    const startsText = previousId === undefined || previousId === this.bosId;
    if (this.addSpacePrefix && startsText && bytes[0] === 0x20) return bytes.subarray(1);
    return bytes;
  }

  /** Maps each character to its id, or to one byte-fallback id per UTF-8 byte when the vocabulary lacks it. */
  private initialSymbols(text: string): number[] {
    const symbols: number[] = [];
    const input = this.addSpacePrefix ? ' ' + text : text;
    for (const char of input) {
      const id = this.textToId.get(char);
      if (id !== undefined) {
        symbols.push(id);
        continue;
      }
      for (const byte of utf8.encode(char)) {
        const byteId = this.byteToId[byte]!;
        symbols.push(byteId >= 0 ? byteId : this.requireId(this.unkId, `unknown (the vocabulary has no <0x${hex(byte)}> byte token)`));
      }
    }
    return symbols;
  }

  /**
   * Tells whether text can produce the token: normal and user-defined tokens, as in SentencePiece.
   * NOTE: llama2.c looks up every token's text. So where the vocabulary has the pieces to build it,
   * llama2.c merges a literal "<0x41>" or "<s>" into that byte or control token, and this never does.
   */
  private producibleFromText(id: number): boolean {
    const type = this.types[id];
    return type === TokenType.normal || type === TokenType.userDefined;
  }

  private inferType(id: number): number {
    if (id === this.unkId) return TokenType.unknown;
    if (id === this.bosId || id === this.eosId || id === this.padId) return TokenType.control;
    if (BYTE_TOKEN.test(this.pieces[id]!)) return TokenType.byte;
    return TokenType.normal;
  }

  private requireId(id: number | null, name: string): number {
    if (id === null) throw new ConfigError(`This SentencePiece tokenizer has no ${name} token id`);
    return id;
  }

  private checkTokenId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TemaError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }
}

function checkId(id: number | null, field: string, vocabSize: number): number | null {
  if (id === null) return null;
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new ConfigError(`SentencePiece vocabulary: ${field} is ${id}, expected a token id in 0..${vocabSize - 1} or null`);
  }
  return id;
}

/** Maps an id outside the vocabulary to null: stories260K.gguf, for one, stores "no padding token" as 0xFFFFFFFF. */
function validOrNull(id: number | null | undefined, vocabSize: number): number | null {
  return id !== null && id !== undefined && id >= 0 && id < vocabSize ? id : null;
}

function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, '0');
}
