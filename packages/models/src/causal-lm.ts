import type { Gpt2Model } from './gpt2.js';
import type { LlamaModel } from './llama.js';

/**
 * Any decoder this package loads. Both share the surface adapters and generation use: `config`,
 * `params` and `linears` maps under Hugging Face names, `forward(ids, { cache, lastOnly })` and
 * `dispose()`.
 */
export type CausalLM = LlamaModel | Gpt2Model;
