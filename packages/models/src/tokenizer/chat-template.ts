import { Template } from '@huggingface/jinja';
import { ConfigError } from '@tematrainer/tensor';

import type { ChatMessage, ChatTemplateOptions } from './types.js';

/** Special tokens that chat templates read as variables (`bos_token`, `eos_token`, ...). */
export interface ChatTemplateTokens {
  bos_token: string | null;
  eos_token: string | null;
  pad_token: string | null;
  unk_token: string | null;
}

/**
 * A parsed Jinja chat template, rendered with the variables that transformers' `apply_chat_template`
 * passes: `messages`, `add_generation_prompt` and the special tokens.
 */
export class ChatTemplate {
  private readonly template: Template;

  /** Parses `source`; `origin` names where it came from in error messages. */
  constructor(
    readonly source: string,
    private readonly origin: string,
  ) {
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new ConfigError(`${origin}: the chat template is not valid Jinja: ${(error as Error).message}`);
    }
  }

  render(messages: ChatMessage[], tokens: ChatTemplateTokens, options: ChatTemplateOptions = {}): string {
    try {
      return this.template.render({
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? false,
        ...tokens,
      });
    } catch (error) {
      // This includes the template's own raise_exception(...), which @huggingface/jinja provides.
      throw new ConfigError(`${this.origin}: rendering the chat template failed: ${(error as Error).message}`);
    }
  }
}
