import { ConfigError } from '@tematrainer/tensor';

import { exampleFormat } from './dataset.js';
import type { ChatMessage, Example, TextTokenizer, TokenizedExample } from './types.js';
import { IGNORE_INDEX } from './types.js';

/** Running count of truncated examples, shared across `tokenizeExample` calls. */
export interface TruncationStats {
  truncated: number;
}

export interface TokenizeOptions {
  /** Maximum sequence length in tokens (trl's `max_length`); longer examples are cut at the end. */
  maxLength: number;
  /** Label prompt tokens -100 for prompt-completion data, so only the completion is learned (trl's `completion_only_loss`). */
  completionOnlyLoss?: boolean;
  /** Receives the truncation notice. */
  logger?: (message: string) => void;
  /**
   * Counts truncated examples. The notice is logged only for the first truncation counted in it;
   * without it, every truncation is logged.
   */
  truncationStats?: TruncationStats;
}

/**
 * Tokenizes one example the way trl's SFTTrainer does.
 *
 * - text: text + EOS; every token is a label.
 * - prompt-completion: prompt + completion + EOS. The prompt's tokens (from encoding the prompt
 *   alone) are labelled -100 when `completionOnlyLoss` is on.
 *
 * For these two, BOS is left to the tokenizer's default (Llama adds one, Qwen2 has none), and
 * EOS is appended when the tokenizer has one.
 * - messages: the chat template's output, encoded without extra BOS/EOS because the template
 *   writes its own special tokens; every token is a label.
 * - conversational prompt-completion: the prompt rendered with the generation prompt marks the
 *   prompt tokens, the full conversation is what is encoded.
 *
 * Labels are the input ids themselves; the loss shifts them by one position.
 */
export function tokenizeExample(
  example: Example,
  tokenizer: TextTokenizer,
  options: TokenizeOptions,
): TokenizedExample {
  const { maxLength, completionOnlyLoss = true } = options;
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new ConfigError(`max_length: expected a positive integer, found ${maxLength}`);
  }

  const addEos = tokenizer.eosId !== null;
  let inputIds: number[];
  let promptLength = 0;

  if ('messages' in example) {
    inputIds = tokenizer.encode(renderChat(tokenizer, example.messages, false), { addBos: false, addEos: false });
  } else if ('prompt' in example && typeof example.prompt === 'string') {
    const completion = example.completion as string;
    promptLength = tokenizer.encode(example.prompt, { addEos: false }).length;
    inputIds = tokenizer.encode(example.prompt + completion, { addEos });
  } else if ('prompt' in example) {
    const prompt = example.prompt as ChatMessage[];
    const completion = example.completion as ChatMessage[];
    const promptText = renderChat(tokenizer, prompt, true);
    promptLength = tokenizer.encode(promptText, { addBos: false, addEos: false }).length;
    inputIds = tokenizer.encode(renderChat(tokenizer, [...prompt, ...completion], false), {
      addBos: false,
      addEos: false,
    });
  } else {
    inputIds = tokenizer.encode(example.text, { addEos });
  }

  const labels = inputIds.slice();
  if (completionOnlyLoss) {
    labels.fill(IGNORE_INDEX, 0, Math.min(promptLength, labels.length));
  }

  if (inputIds.length > maxLength) {
    const stats = options.truncationStats;
    if (stats === undefined || stats.truncated === 0) {
      options.logger?.(
        `a ${exampleFormat(example)} example has ${inputIds.length} tokens, more than max_length ${maxLength}: ` +
          `keeping its first ${maxLength} tokens; further truncations are counted, not logged`,
      );
    }
    if (stats !== undefined) {
      stats.truncated++;
    }
    return { inputIds: inputIds.slice(0, maxLength), labels: labels.slice(0, maxLength) };
  }
  return { inputIds, labels };
}

/**
 * Tokenizes every example with one shared truncation count, so the truncation notice is logged
 * once. Returns the tokenized examples and how many were truncated.
 */
export function tokenizeDataset(
  examples: readonly Example[],
  tokenizer: TextTokenizer,
  options: Omit<TokenizeOptions, 'truncationStats'>,
): { examples: TokenizedExample[]; truncated: number } {
  const truncationStats: TruncationStats = { truncated: 0 };
  const tokenized = examples.map((example) => tokenizeExample(example, tokenizer, { ...options, truncationStats }));
  return { examples: tokenized, truncated: truncationStats.truncated };
}

function renderChat(tokenizer: TextTokenizer, messages: ChatMessage[], addGenerationPrompt: boolean): string {
  if (tokenizer.applyChatTemplate === undefined) {
    throw new ConfigError(
      'conversational dataset, but the tokenizer has no chat template; use a tokenizer whose tokenizer_config.json has "chat_template", or convert the data to the text or prompt-completion format',
    );
  }
  return tokenizer.applyChatTemplate(messages, { addGenerationPrompt });
}
