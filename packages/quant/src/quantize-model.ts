import { ConfigError, logOnce, type Tensor } from '@tematrainer/tensor';
import { resolveBitsAndBytesConfig, type BitsAndBytesConfig } from './config.js';
import { Nf4Linear } from './nf4-linear.js';

/** The part of a linear layer that quantization reads; a models `DenseLinear` fits it. */
export interface QuantizableLinear {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: Tensor): Tensor;
  weight?: Tensor;
  bias?: Tensor | null;
}

/** The part of a model that quantization changes; a models `LlamaModel` or `Gpt2Model` fits it. */
export interface QuantizableModel {
  linears: Map<string, QuantizableLinear>;
  /** Base weights by Hugging Face name; quantized weights are removed from it. */
  params?: Map<string, Tensor>;
}

export interface QuantizeReport {
  /** Module names replaced by `Nf4Linear`. */
  quantized: string[];
  /** Module names left in full precision (the output head, skipped modules, layers without a weight). */
  kept: string[];
  /** f32 bytes of the replaced weights and biases before. */
  bytesBefore: number;
  /** Bytes of the same layers after: packed codes, absmax (or its double-quantized form) and biases. */
  bytesAfter: number;
  /** Dtype the 4-bit layers compute in. */
  computeDtype: 'float32';
}

/** Modules transformers never quantizes: the output head (lm_head; GPT-2's is tied to wte). */
const ALWAYS_KEPT = ['lm_head'];

function matchesModule(name: string, pattern: string): boolean {
  return name === pattern || name.endsWith(`.${pattern}`);
}

/**
 * Replace every full-precision linear layer of the model's blocks by an `Nf4Linear`, as
 * transformers' `load_in_4bit` does: each weight is read back from the GPU, quantized on the CPU,
 * uploaded as packed codes, and its f32 tensor is freed. Embeddings and the output head stay
 * full precision. Call this before wrapping layers with LoRA.
 */
export async function quantizeModel(model: QuantizableModel, config: BitsAndBytesConfig = { loadIn4bit: true }): Promise<QuantizeReport> {
  const resolved = resolveBitsAndBytesConfig(config);
  if (!resolved.loadIn4bit) {
    throw new ConfigError('quantizeModel: load_in_4bit is false, so there is nothing to do; set load_in_4bit: true');
  }
  if (resolved.bnb4bitComputeDtype !== 'float32') {
    logOnce(`bnb_4bit_compute_dtype ${resolved.bnb4bitComputeDtype}: the NF4 kernels compute in float32, which is what is used`);
  }

  const skip = [...ALWAYS_KEPT, ...resolved.llmInt8SkipModules];
  const report: QuantizeReport = { quantized: [], kept: [], bytesBefore: 0, bytesAfter: 0, computeDtype: 'float32' };
  for (const [name, layer] of model.linears) {
    const weight = layer.weight;
    if (skip.some((pattern) => matchesModule(name, pattern)) || !weight || weight.dtype !== 'f32') {
      report.kept.push(name);
      continue;
    }
    if (weight.shape.length !== 2 || weight.shape[0] !== layer.outFeatures || weight.shape[1] !== layer.inFeatures) {
      throw new ConfigError(`quantizeModel: ${name}.weight is ${weight.describe()}, expected [${layer.outFeatures}, ${layer.inFeatures}]`);
    }

    const values = (await weight.data()) as Float32Array;
    const bias = layer.bias ?? null;
    const quantized = Nf4Linear.fromWeight(name, values, [layer.outFeatures, layer.inFeatures], {
      blocksize: resolved.bnb4bitBlocksize,
      doubleQuant: resolved.bnb4bitUseDoubleQuant,
      bias,
    });
    model.linears.set(name, quantized);
    report.quantized.push(name);
    report.bytesBefore += weight.size * 4 + (bias?.size ?? 0) * 4;
    report.bytesAfter += quantized.byteLength;

    for (const [paramName, t] of model.params ?? []) {
      if (t === weight) model.params!.delete(paramName);
    }
    weight.dispose();
  }
  return report;
}

/**
 * Free the GPU buffers of the model's `Nf4Linear` layers. A model's own `dispose()` frees only its
 * `params`, which no longer contain the quantized weights, so call this next to it.
 */
export function disposeQuantizedLayers(model: Pick<QuantizableModel, 'linears'>): void {
  for (const layer of model.linears.values()) {
    if (layer instanceof Nf4Linear) layer.dispose();
  }
}
