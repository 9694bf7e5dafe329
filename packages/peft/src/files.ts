import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openSafetensors, writeFileAtomic, writeSafetensors, type TensorToWrite } from '@tematrainer/io';
import { ConfigError, FormatError, formatShape, type Tensor } from '@tematrainer/tensor';
import type { CausalLM } from '@tematrainer/models';
import { fromAdapterConfigJson, toAdapterConfigJson, type LoraConfig } from './config.js';
import { LoraModel } from './model.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** Read the values of tensors into a safetensors record under the given names. */
export async function tensorsToRecord(names: string[], tensors: Tensor[]): Promise<Record<string, TensorToWrite>> {
  const out: Record<string, TensorToWrite> = {};
  for (let i = 0; i < names.length; i++) {
    out[names[i]] = { dtype: 'F32', shape: [...tensors[i].shape], data: (await tensors[i].data()) as Float32Array };
  }
  return out;
}

/**
 * Save the adapter as peft's save_pretrained does: adapter_config.json and
 * adapter_model.safetensors with names such as
 * base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight. Both files are written
 * atomically.
 */
export async function saveAdapter(lora: LoraModel, dir: string, options: { baseModelNameOrPath?: string | null } = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const config: LoraConfig = { ...lora.config, baseModelNameOrPath: options.baseModelNameOrPath ?? lora.config.baseModelNameOrPath };
  const record = await tensorsToRecord(
    lora.tensors.map((t) => t.peftName),
    lora.parameters(),
  );
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS), record, { format: 'pt' });
  await writeFileAtomic(join(dir, ADAPTER_CONFIG), new TextEncoder().encode(`${JSON.stringify(toAdapterConfigJson(config), null, 2)}\n`));
}

export async function readAdapterConfig(dir: string): Promise<LoraConfig> {
  const file = join(dir, ADAPTER_CONFIG);
  if (!existsSync(file)) throw new FormatError(`${dir}: no ${ADAPTER_CONFIG}, so this is not a peft adapter folder`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new FormatError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return fromAdapterConfigJson(json, file);
}

/**
 * Put the values of a safetensors file into the adapter's tensors, by peft name. `prefix` is
 * prepended to every name (the EMA file uses "ema."). Every tensor of the adapter must be
 * present with its shape; extra tensors in the file are an error too.
 */
export async function loadAdapterWeights(lora: LoraModel, file: string, prefix = ''): Promise<void> {
  const st = await openSafetensors(file);
  const params = lora.parameters();
  const expected = new Set(lora.tensors.map((t) => prefix + t.peftName));
  for (const name of st.tensors.keys()) {
    if (!expected.has(name)) {
      throw new FormatError(`${file}: tensor "${name}" has no matching LoRA layer in this model — was the adapter made for another base model or config?`);
    }
  }
  for (let i = 0; i < params.length; i++) {
    const name = prefix + lora.tensors[i].peftName;
    const entry = st.tensors.get(name);
    if (!entry) throw new FormatError(`${file}: tensor "${name}" is missing`);
    const p = params[i];
    if (entry.shape.length !== p.shape.length || entry.shape.some((d, k) => d !== p.shape[k])) {
      throw new FormatError(
        `${file}: tensor "${name}" has shape ${formatShape(entry.shape)}, the model's layer expects ${formatShape(p.shape)} — was the adapter made for another base model?`,
      );
    }
    p.write((await st.read(name, { as: 'f32' })).data);
  }
}

/** Load a peft adapter folder into `model`: its config decides the targets, its file the values. */
export async function loadAdapter(model: CausalLM, dir: string): Promise<LoraModel> {
  const config = await readAdapterConfig(dir);
  // fan_in_fan_out only marks the base layers as Conv1D ([in, out]); lora_A and lora_B keep
  // nn.Linear's shapes either way. The GPT-2 model stores its Conv1D weights transposed to [out, in], so the
  // adapter applies and merges as for any other model.
  if (config.fanInFanOut && model.config.architecture !== 'gpt2') {
    throw new ConfigError(
      `${dir}: fan_in_fan_out adapters belong to GPT-2-style Conv1D layers, which this ${model.config.architecture} model does not have`,
    );
  }
  const lora = new LoraModel(model, config);
  try {
    await loadAdapterWeights(lora, join(dir, ADAPTER_WEIGHTS));
  } catch (e) {
    lora.unload();
    throw e;
  }
  return lora;
}
