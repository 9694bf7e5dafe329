import fs from 'node:fs/promises';
import path from 'node:path';

import { Tokenizer as HfTokenizerCore } from '@huggingface/tokenizers';
import { ConfigError, FormatError, TemaError } from '@tematrainer/tensor';

import { ChatTemplate, type ChatTemplateTokens } from './chat-template.js';
import type { ChatMessage, ChatTemplateOptions, DecodeOptions, EncodeOptions, Tokenizer } from './types.js';

/** A special token in tokenizer_config.json: a string, or an AddedToken object with `content`. */
type SpecialTokenValue = string | { content: string } | null | undefined;

/** The fields of tokenizer_config.json (and special_tokens_map.json) read here; others pass through. */
export interface HfTokenizerConfig {
  bos_token?: SpecialTokenValue;
  eos_token?: SpecialTokenValue;
  pad_token?: SpecialTokenValue;
  unk_token?: SpecialTokenValue;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  /** One template, or named templates of which "default" is used. */
  chat_template?: string | { name: string; template: string }[] | null;
  [key: string]: unknown;
}

/** Options of `HfTokenizer.fromJson`. */
export interface HfTokenizerOptions {
  /** A chat template that replaces tokenizer_config.json's, as transformers reads chat_template.jinja. */
  chatTemplate?: string;
  /** Folder the files came from, named in error messages. */
  source?: string;
}

/** A tokenizer.json tokenizer (run by `@huggingface/tokenizers`) with its tokenizer_config.json. */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  /** Default of `encode`'s `addBos`: add_bos_token, else what tokenizer.json's post-processor does. */
  readonly addBos: boolean;
  /** Default of `encode`'s `addEos`: add_eos_token, else what tokenizer.json's post-processor does. */
  readonly addEos: boolean;
  readonly specialTokens: ChatTemplateTokens;

  private readonly core: HfTokenizerCore;
  private readonly specialIds: Set<number>;
  /** Ids the post-processor puts around a text other than BOS and EOS (for example BERT's [CLS]). */
  private readonly otherPrefixIds: number[];
  private readonly otherSuffixIds: number[];
  private readonly chatTemplate: ChatTemplate | null;

  private constructor(core: HfTokenizerCore, config: HfTokenizerConfig, options: HfTokenizerOptions) {
    const source = options.source ?? 'tokenizer.json';
    this.core = core;

    let maxId = -1;
    for (const id of core.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    this.specialTokens = {
      bos_token: tokenContent(config.bos_token),
      eos_token: tokenContent(config.eos_token),
      pad_token: tokenContent(config.pad_token),
      unk_token: tokenContent(config.unk_token),
    };
    const idOf = (field: keyof ChatTemplateTokens): number | null => {
      const token = this.specialTokens[field];
      if (token === null) return null;
      const id = core.token_to_id(token);
      if (id === undefined) throw new ConfigError(`${source}: tokenizer_config.json ${field} "${token}" is not in the vocabulary of tokenizer.json`);
      return id;
    };
    this.bosId = idOf('bos_token');
    this.eosId = idOf('eos_token');
    this.padId = idOf('pad_token');
    this.unkId = idOf('unk_token');

    this.specialIds = new Set<number>();
    for (const [id, token] of core.get_added_tokens_decoder()) if (token.special) this.specialIds.add(id);
    for (const id of [this.bosId, this.eosId, this.padId, this.unkId]) if (id !== null) this.specialIds.add(id);

    // Find what the post-processor adds around a text by encoding one with and without it.
    const probe = 'a';
    const plain = core.encode(probe, { add_special_tokens: false }).ids;
    const withSpecial = core.encode(probe, { add_special_tokens: true }).ids;
    const start = indexOfSequence(withSpecial, plain);
    const prefix: number[] = start >= 0 ? withSpecial.slice(0, start) : [];
    const suffix: number[] = start >= 0 ? withSpecial.slice(start + plain.length) : [];
    this.otherPrefixIds = prefix.filter((id) => id !== this.bosId);
    this.otherSuffixIds = suffix.filter((id) => id !== this.eosId);
    this.addBos = config.add_bos_token ?? (this.bosId !== null && prefix.includes(this.bosId));
    this.addEos = config.add_eos_token ?? (this.eosId !== null && suffix.includes(this.eosId));

    const template = options.chatTemplate ?? selectChatTemplate(config.chat_template, source);
    this.chatTemplate = template === null ? null : new ChatTemplate(template, source);
  }

  /** Builds a tokenizer from the parsed tokenizer.json and tokenizer_config.json. */
  static fromJson(tokenizerJson: object, tokenizerConfig: HfTokenizerConfig = {}, options: HfTokenizerOptions = {}): HfTokenizer {
    const source = options.source ?? 'tokenizer.json';
    let core: HfTokenizerCore;
    try {
      core = new HfTokenizerCore(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new FormatError(`${source}: @huggingface/tokenizers could not build the tokenizer: ${(error as Error).message}`);
    }
    return new HfTokenizer(core, tokenizerConfig, options);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.core.encode(text, { add_special_tokens: false }).ids;

    const prefix = [...this.otherPrefixIds];
    if (options.addBos ?? this.addBos) prefix.unshift(this.requireId(this.bosId, 'bos_token'));
    const suffix = [...this.otherSuffixIds];
    if (options.addEos ?? this.addEos) suffix.push(this.requireId(this.eosId, 'eos_token'));

    return [...prefix, ...ids, ...suffix];
  }

  decode(ids: number[], options: DecodeOptions = {}): string {
    for (const id of ids) this.checkTokenId(id);
    if (ids.length === 0) return ''; // @huggingface/tokenizers 0.2 raises on an empty list
    return this.core.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /**
   * Returns the text `id` adds after `previousId`: the difference of decoding both and decoding
   * `previousId` alone, because tokenizer.json decoders work on whole sequences. A special token
   * returns its own text.
   */
  decodeToken(id: number, previousId?: number): string {
    this.checkTokenId(id);
    if (this.specialIds.has(id)) return this.core.decode([id]);

    const options = { skip_special_tokens: true };
    if (previousId === undefined) return this.core.decode([id], options);

    this.checkTokenId(previousId);
    const before = this.core.decode([previousId], options);
    const after = this.core.decode([previousId, id], options);
    return after.startsWith(before) ? after.slice(before.length) : after;
  }

  applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.chatTemplate) {
      throw new ConfigError(
        'This tokenizer has no chat template: tokenizer_config.json has no chat_template and there is no chat_template.jinja',
      );
    }
    return this.chatTemplate.render(messages, this.specialTokens, options);
  }

  /** Returns the id of a token's text, or undefined when the vocabulary lacks it. */
  tokenToId(token: string): number | undefined {
    return this.core.token_to_id(token);
  }

  private requireId(id: number | null, field: string): number {
    if (id === null) throw new ConfigError(`This tokenizer has no ${field}; tokenizer_config.json does not set one`);
    return id;
  }

  private checkTokenId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TemaError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }
}

/** Files `loadHfTokenizer` reads; only tokenizer.json is required. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

/**
 * Loads the tokenizer of a Hugging Face model folder: tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json (special tokens that tokenizer_config.json lacks) and chat_template.jinja
 * (which replaces tokenizer_config.json's chat_template, as in transformers).
 */
export async function loadHfTokenizer(folder: string): Promise<HfTokenizer> {
  const tokenizerJson = await readJson(folder, 'tokenizer.json');
  if (tokenizerJson === null) {
    let present: string[];
    try {
      present = await fs.readdir(folder);
    } catch {
      throw new FormatError(`${folder}: folder not found; expected a Hugging Face model folder with ${TOKENIZER_FILES[0]}`);
    }
    throw new FormatError(
      `${folder}: tokenizer.json not found (looked for ${TOKENIZER_FILES.join(', ')}; the folder contains ` +
        `${present.length > 0 ? present.join(', ') : 'nothing'}). Only the tokenizer.json form is read: a folder with ` +
        'only tokenizer.model can be converted by loading it with transformers\' AutoTokenizer and calling save_pretrained',
    );
  }

  const config = ((await readJson(folder, 'tokenizer_config.json')) ?? {}) as HfTokenizerConfig;
  const specialTokensMap = ((await readJson(folder, 'special_tokens_map.json')) ?? {}) as HfTokenizerConfig;
  for (const field of ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const) {
    config[field] ??= specialTokensMap[field];
  }

  const chatTemplate = await readText(path.join(folder, 'chat_template.jinja'));
  return HfTokenizer.fromJson(tokenizerJson as object, config, { chatTemplate: chatTemplate ?? undefined, source: folder });
}

async function readText(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function readJson(folder: string, name: string): Promise<unknown> {
  const file = path.join(folder, name);
  const text = await readText(file);
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new FormatError(`${file}: invalid JSON: ${(error as Error).message}`);
  }
}

function tokenContent(value: SpecialTokenValue): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : value.content;
}

function selectChatTemplate(value: HfTokenizerConfig['chat_template'], source: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;

  const named = value.find((entry) => entry.name === 'default') ?? value[0];
  if (!named) throw new ConfigError(`${source}: tokenizer_config.json chat_template is an empty list`);
  return named.template;
}

function indexOfSequence(haystack: number[], needle: number[]): number {
  for (let start = 0; start + needle.length <= haystack.length; start++) {
    if (needle.every((id, i) => haystack[start + i] === id)) return start;
  }
  return -1;
}
