import {
  openGguf,
  openModelWeights,
  readLlama2cCheckpoint,
  type GgufFile,
  type Llama2cCheckpoint,
  type TensorStore,
} from '@tematrainer/io';
import { formatShape, FormatError, fromData, untrack, type Tensor } from '@tematrainer/tensor';

/** Tensors of a checkpoint under Hugging Face names, read as f32 on request. */
export interface WeightSource {
  /** File or folder name for messages. */
  readonly file: string;
  names(): string[];
  shape(name: string): number[] | undefined;
  read(name: string): Promise<Float32Array>;
}

export function safetensorsSource(store: TensorStore, file: string): WeightSource {
  return {
    file,
    names: () => [...store.tensors.keys()],
    shape: (name) => store.tensors.get(name)?.shape,
    read: async (name) => (await store.read(name, { as: 'f32' })).data,
  };
}

export async function hfFolderSource(folder: string): Promise<WeightSource> {
  return safetensorsSource(await openModelWeights(folder), folder);
}

/** GGUF tensor names of the llama architecture and their Hugging Face names. */
function ggufToHf(name: string): string | null {
  const fixed: Record<string, string> = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output_norm.weight': 'model.norm.weight',
    'output.weight': 'lm_head.weight',
  };
  if (fixed[name]) return fixed[name];
  const m = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(name);
  if (!m) return null;
  const parts: Record<string, string> = {
    attn_norm: 'input_layernorm',
    ffn_norm: 'post_attention_layernorm',
    attn_q: 'self_attn.q_proj',
    attn_k: 'self_attn.k_proj',
    attn_v: 'self_attn.v_proj',
    attn_output: 'self_attn.o_proj',
    ffn_gate: 'mlp.gate_proj',
    ffn_up: 'mlp.up_proj',
    ffn_down: 'mlp.down_proj',
  };
  const part = parts[m[2]];
  return part ? `model.layers.${m[1]}.${part}.${m[3]}` : null;
}

/** Weights of a GGUF file; their Q/K rows stay in the interleaved-pairs RoPE layout. */
export function ggufSource(gguf: GgufFile, file: string): WeightSource {
  const byHf = new Map<string, string>();
  for (const name of gguf.tensors.keys()) {
    const hf = ggufToHf(name);
    if (hf) byHf.set(hf, name);
  }
  return {
    file,
    names: () => [...byHf.keys()],
    shape: (name) => {
      const g = byHf.get(name);
      return g ? gguf.tensors.get(g)!.shape : undefined;
    },
    read: async (name) => {
      const g = byHf.get(name);
      if (!g) throw new FormatError(`${file}: no tensor for "${name}"`);
      return (await gguf.read(g)).data;
    },
  };
}

export async function ggufFileSource(path: string): Promise<{ source: WeightSource; gguf: GgufFile }> {
  const gguf = await openGguf(path);
  return { source: ggufSource(gguf, path), gguf };
}

/** Weights of a llama2.c checkpoint; per-layer tensors are cut out of llama2.c's stacked arrays. */
export function llama2cSource(ckpt: Llama2cCheckpoint, file: string): WeightSource {
  const c = ckpt.config;
  const map = new Map<string, { tensor: string; layer: number | null }>();
  map.set('model.embed_tokens.weight', { tensor: 'token_embedding_table', layer: null });
  map.set('model.norm.weight', { tensor: 'rms_final_weight', layer: null });
  map.set('lm_head.weight', { tensor: c.shared_classifier ? 'token_embedding_table' : 'wcls', layer: null });
  const perLayer: Record<string, string> = {
    'input_layernorm.weight': 'rms_att_weight',
    'post_attention_layernorm.weight': 'rms_ffn_weight',
    'self_attn.q_proj.weight': 'wq',
    'self_attn.k_proj.weight': 'wk',
    'self_attn.v_proj.weight': 'wv',
    'self_attn.o_proj.weight': 'wo',
    'mlp.gate_proj.weight': 'w1',
    'mlp.down_proj.weight': 'w2',
    'mlp.up_proj.weight': 'w3',
  };
  for (let l = 0; l < c.n_layers; l++) {
    for (const [suffix, tensor] of Object.entries(perLayer)) map.set(`model.layers.${l}.${suffix}`, { tensor, layer: l });
  }
  const entry = (name: string) => {
    const m = map.get(name);
    if (!m) return undefined;
    const t = ckpt.tensors.get(m.tensor);
    if (!t) return undefined;
    return { ...m, t };
  };
  return {
    file,
    names: () => [...map.keys()].filter((n) => entry(n)),
    shape: (name) => {
      const e = entry(name);
      if (!e) return undefined;
      return e.layer === null ? e.t.shape : e.t.shape.slice(1);
    },
    read: async (name) => {
      const e = entry(name);
      if (!e) throw new FormatError(`${file}: no tensor for "${name}"`);
      if (e.layer === null) return e.t.data;
      const per = e.t.data.length / e.t.shape[0];
      return e.t.data.subarray(e.layer * per, (e.layer + 1) * per);
    },
  };
}

export async function llama2cFileSource(path: string): Promise<{ source: WeightSource; ckpt: Llama2cCheckpoint }> {
  const ckpt = await readLlama2cCheckpoint(path);
  return { source: llama2cSource(ckpt, path), ckpt };
}

export interface CheckedLoadOptions {
  /** Another stored name to try for a tensor the file lacks under its own name. */
  alias?: (name: string) => string | null;
  /** Filter for the stored names listed as examples when a tensor is missing. */
  examples?: (storedName: string) => boolean;
  /** Upload one tensor (default: f32 in the stored shape). */
  upload?: (name: string, data: Float32Array, shape: number[]) => Tensor;
}

/**
 * Read every tensor of `expected` from `source`, checking that it is there with the expected
 * shape, and upload it. Errors name the file, the tensor and both shapes; on any error the
 * tensors uploaded so far are freed.
 */
export async function loadCheckedWeights(
  source: WeightSource,
  expected: Map<string, number[]>,
  options: CheckedLoadOptions = {},
): Promise<Map<string, Tensor>> {
  const params = new Map<string, Tensor>();
  const upload = options.upload ?? ((_name, data, shape) => fromData(data, shape));
  try {
    for (const [name, shape] of expected) {
      const alias = options.alias?.(name) ?? null;
      const stored = source.shape(name) ? name : alias && source.shape(alias) ? alias : null;
      if (!stored) {
        const near = source.names().filter(options.examples ?? (() => true)).slice(0, 12);
        throw new FormatError(`${source.file}: tensor "${name}" is missing; the file has for example: ${near.join(', ')}`);
      }
      const found = source.shape(stored)!;
      if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
        throw new FormatError(
          `${source.file}: tensor "${stored}" has shape ${formatShape(found)}, the config expects ${formatShape(shape)} — is this the right config for these weights?`,
        );
      }
      params.set(name, untrack(upload(name, await source.read(stored), shape)));
    }
  } catch (e) {
    for (const t of params.values()) t.dispose();
    throw e;
  }
  return params;
}
