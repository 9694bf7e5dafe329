import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeSafetensors, type TensorToWrite } from '@tematrainer/io';
import { LlamaModel, toHfConfig, type ModelConfig } from '@tematrainer/models';
import { ConfigError } from '@tematrainer/tensor';
import type { LoraModel } from './model.js';

/**
 * Reorder the rows of a q_proj or k_proj weight [heads * headDim, in] from the interleaved-pairs
 * RoPE layout (llama2.c, GGUF) to Hugging Face's rotate-half layout: within each head, row 2i + p
 * moves to p * headDim / 2 + i, the permutation transformers applies when converting such weights.
 */
export function pairsToHalves(w: Float32Array, heads: number, headDim: number, inFeatures: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let p = 0; p < 2; p++) {
        const from = (h * headDim + 2 * i + p) * inFeatures;
        const to = (h * headDim + p * half + i) * inFeatures;
        out.set(w.subarray(from, from + inFeatures), to);
      }
    }
  }
  return out;
}

/**
 * Write the model with its adapters merged in as a Hugging Face folder (config.json and
 * model.safetensors, plus tokenizer files copied from `tokenizerFolder` when given), loadable by
 * transformers' LlamaForCausalLM. The adapters are merged for the copy and unmerged afterwards.
 * Weights from GGUF or llama2.c are converted to the rotate-half RoPE layout on the way.
 */
export async function saveMergedModel(lora: LoraModel, dir: string, options: { tokenizerFolder?: string } = {}): Promise<void> {
  const model = lora.model;
  // NOTE: GPT-2 needs its Conv1D weights transposed back to [in, out] and its own config.json.
  // saveModel in @tematrainer/models does both, but this function does not use it yet.
  if (!(model instanceof LlamaModel)) {
    throw new ConfigError(`saveMergedModel: only Llama-family models can be saved merged, this one is ${model.config.architecture}`);
  }
  const c: ModelConfig = model.config;
  mkdirSync(dir, { recursive: true });
  lora.merge();
  const record: Record<string, TensorToWrite> = {};
  try {
    for (const [name, t] of model.params) {
      let data = (await t.data()) as Float32Array;
      if (c.ropeLayout === 'pairs' && /self_attn\.(q|k)_proj\.weight$/.test(name)) {
        const heads = name.includes('q_proj') ? c.numAttentionHeads : c.numKeyValueHeads;
        data = pairsToHalves(data, heads, c.headDim, c.hiddenSize);
      }
      record[name] = { dtype: 'F32', shape: [...t.shape], data };
    }
  } finally {
    lora.unmerge();
  }
  await writeSafetensors(join(dir, 'model.safetensors'), record, { format: 'pt' });
  await writeFileAtomic(join(dir, 'config.json'), new TextEncoder().encode(`${JSON.stringify(toHfConfig(c), null, 2)}\n`));
  if (options.tokenizerFolder) {
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      const from = join(options.tokenizerFolder, file);
      if (existsSync(from)) copyFileSync(from, join(dir, file));
    }
  }
}
