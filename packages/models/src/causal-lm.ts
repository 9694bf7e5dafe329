import { BYTES_PER_ELEMENT, copyBlock, empty, type Tensor } from '@tematrainer/tensor';
import type { Gpt2Model } from './gpt2.js';
import type { LlamaModel } from './llama.js';

/**
 * Any decoder this package loads. Both share the surface adapters and generation use: `config`,
 * `params` and `linears` maps under Hugging Face names, `forward(ids, { cache, lastOnly })` and
 * `dispose()`.
 */
export type CausalLM = LlamaModel | Gpt2Model;

/** Copy the last position of each sequence of x [batch, seq, width] into [batch, 1, width] (no autograd). */
export function lastPositions(x: Tensor, batch: number, seq: number, width: number): Tensor {
  const last = empty([batch, 1, width]);
  copyBlock(x, last, { rows: batch, cols: width, srcOffset: (seq - 1) * width, srcStride: seq * width, dstOffset: 0, dstStride: width });
  return last;
}

/** Sum the GPU bytes of a model's weights, whatever their dtypes. */
export function parameterBytesOf(params: Map<string, Tensor>): number {
  let n = 0;
  for (const t of params.values()) n += t.size * BYTES_PER_ELEMENT[t.dtype];
  return n;
}
