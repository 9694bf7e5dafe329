import { fromData, noGrad, tidy } from '@tematrainer/tensor';
import type { CausalLM } from './causal-lm.js';
import { KVCache } from './llama.js';
import { createDecodeStream, type Tokenizer } from './tokenizer/index.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 or absent: greedy decoding. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Stop when one of these ids is produced; the tokenizer's EOS by default. */
  stopIds?: number[];
  /** Called with each new piece of text as soon as it forms complete characters. */
  onText?: (text: string) => void;
}

export interface GenerateResult {
  ids: number[];
  newIds: number[];
  text: string;
}

/** xorshift-style seeded uniform generator for sampling (mulberry32). */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pick the next token from one row of logits: argmax, or a sample after temperature, top-k and top-p. */
export function sampleToken(logits: ArrayLike<number>, options: GenerateOptions, random: () => number): number {
  const V = logits.length;
  const t = options.temperature ?? 0;
  if (!(t > 0)) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
  if (options.topK && options.topK > 0) order = order.slice(0, options.topK);
  const max = logits[order[0]];
  let probs = order.map((i) => Math.exp((logits[i] - max) / t));
  let z = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / z);
  if (options.topP !== undefined && options.topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length && cum < options.topP) cum += probs[keep++];
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    z = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / z);
  }
  let r = random();
  for (let k = 0; k < probs.length; k++) {
    r -= probs[k];
    if (r <= 0) return order[k];
  }
  return order[order.length - 1];
}

/** Continue `promptIds` with a KV cache, one token per forward pass after the prompt. */
export async function generate(
  model: CausalLM,
  tokenizer: Tokenizer,
  promptIds: number[],
  options: GenerateOptions,
): Promise<GenerateResult> {
  const maxLength = Math.min(promptIds.length + options.maxNewTokens, model.config.maxPositionEmbeddings);
  const cache = new KVCache(model.config, 1, maxLength);
  const random = uniform(options.seed ?? 0);
  const stop = new Set(options.stopIds ?? (tokenizer.eosId !== null ? [tokenizer.eosId] : []));
  const stream = createDecodeStream(tokenizer, { context: promptIds.slice(-1) });
  const ids = [...promptIds];
  const newIds: number[] = [];
  let text = '';
  try {
    let input = promptIds;
    while (newIds.length < options.maxNewTokens && ids.length < maxLength + 1) {
      const logits = tidy(() =>
        noGrad(() => model.forward(fromData(input, [1, input.length], 'i32'), { cache, lastOnly: true })),
      );
      const row = (await logits.data()) as Float32Array;
      logits.dispose();
      const next = sampleToken(row, options, random);
      if (stop.has(next)) break;
      ids.push(next);
      newIds.push(next);
      const piece = stream.push(next);
      text += piece;
      if (piece) options.onText?.(piece);
      if (cache.length >= maxLength) break;
      input = [next];
    }
    const rest = stream.flush();
    text += rest;
    if (rest) options.onText?.(rest);
  } finally {
    cache.dispose();
  }
  return { ids, newIds, text };
}
