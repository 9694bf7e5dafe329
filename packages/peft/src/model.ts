import { assign, ConfigError, empty, fromData, gemm, untrack, type Tensor } from '@tematrainer/tensor';
import { DenseLinear, type CausalLM } from '@tematrainer/models';
import { loraConfig, loraScaling, matchesTarget, type LoraConfig } from './config.js';
import { LoraLinear } from './layer.js';

/** The prefix peft puts before module names in adapter files of causal LMs. */
export const PEFT_PREFIX = 'base_model.model.';

/** Seeded uniform generator (mulberry32) for reproducible initialisation. */
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

/** Kaiming-uniform with a = sqrt(5), as torch.nn.Linear and peft's lora_A: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
function kaimingUniform(n: number, fanIn: number, random: () => number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: n }, () => (random() * 2 - 1) * bound);
}

function gaussian(n: number, std: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(random(), 1e-12);
    const v = random();
    const radius = std * Math.sqrt(-2 * Math.log(u));
    out[i] = radius * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = radius * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** One trainable tensor of the adapter with its name in peft's files. */
export interface AdapterTensor {
  /** e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight */
  peftName: string;
  layer: LoraLinear;
  which: 'A' | 'B';
}

/**
 * LoRA adapters injected into a model's linear layers. The base stays frozen; the trainable
 * tensors are every layer's lora_A and lora_B, in a fixed order (`tensors`).
 */
export class LoraModel {
  readonly layers = new Map<string, LoraLinear>();
  readonly tensors: AdapterTensor[] = [];

  constructor(
    readonly model: CausalLM,
    readonly config: LoraConfig,
    options: { seed?: number } = {},
  ) {
    const names = [...model.linears.keys()].filter((n) => matchesTarget(n, config.targetModules, 'lm_head'));
    if (names.length === 0) {
      const available = [...new Set([...model.linears.keys()].map((n) => n.replace(/^model\.layers\.\d+\./, '')))];
      throw new ConfigError(
        `target_modules ${JSON.stringify(config.targetModules)} match no linear layer; the model has: ${available.join(', ')}`,
      );
    }
    const random = uniform(options.seed ?? 0);
    const scaling = loraScaling(config);
    for (const name of names) {
      const base = model.linears.get(name)!;
      if (base instanceof LoraLinear) throw new ConfigError(`layer "${name}" already has a LoRA adapter`);
      const { inFeatures: inF, outFeatures: outF } = base;
      const r = config.r;
      let a: Float32Array;
      let b: Float32Array;
      if (config.initLoraWeights === 'gaussian') {
        a = gaussian(r * inF, 1 / r, random);
        b = new Float32Array(outF * r);
      } else if (config.initLoraWeights) {
        a = kaimingUniform(r * inF, inF, random);
        b = new Float32Array(outF * r);
      } else {
        a = kaimingUniform(r * inF, inF, random);
        b = kaimingUniform(outF * r, r, random);
      }
      const loraA = untrack(fromData(a, [r, inF]));
      const loraB = untrack(fromData(b, [outF, r]));
      loraA.requiresGrad = loraB.requiresGrad = true;
      loraA.name = `${PEFT_PREFIX}${name}.lora_A.weight`;
      loraB.name = `${PEFT_PREFIX}${name}.lora_B.weight`;
      const layer = new LoraLinear(name, base, loraA, loraB, scaling, config.loraDropout);
      model.linears.set(name, layer);
      this.layers.set(name, layer);
      this.tensors.push({ peftName: loraA.name, layer, which: 'A' }, { peftName: loraB.name, layer, which: 'B' });
    }
  }

  /** The current trainable tensors, in `tensors` order. */
  parameters(): Tensor[] {
    return this.tensors.map((t) => (t.which === 'A' ? t.layer.loraA : t.layer.loraB));
  }

  setTraining(training: boolean, dropoutSeed = 0): void {
    for (const layer of this.layers.values()) {
      layer.training = training;
      layer.dropoutSeed = dropoutSeed;
    }
  }

  /** Counts as peft's print_trainable_parameters. */
  trainableParameters(): { trainable: number; total: number; percent: number; summary: string } {
    const trainable = this.parameters().reduce((s, t) => s + t.size, 0);
    let base = 0;
    for (const t of this.model.params.values()) base += t.size;
    const total = base + trainable;
    const percent = (100 * trainable) / total;
    return {
      trainable,
      total,
      percent,
      summary: `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${total.toLocaleString('en-US')} || trainable%: ${percent.toFixed(4)}`,
    };
  }

  /**
   * Put other values into every LoRA tensor until the returned scope is disposed, for example
   * the EMA teacher: `using _ = lora.swapIn(ema)`. The originals come back on leaving, also
   * when an exception is thrown inside the scope. No data is copied: the layers point at the
   * other tensors meanwhile.
   */
  swapIn(values: Tensor[]): Disposable & { restore(): void } {
    const own = this.parameters();
    if (values.length !== own.length) {
      throw new ConfigError(`swapIn: got ${values.length} tensors for ${own.length} LoRA tensors`);
    }
    values.forEach((v, i) => {
      if (v.size !== own[i].size) throw new ConfigError(`swapIn: ${v.describe()} does not fit ${own[i].describe()}`);
    });
    this.assign(values);
    let restored = false;
    const restore = () => {
      if (restored) return;
      restored = true;
      this.assign(own);
    };
    return { restore, [Symbol.dispose]: restore };
  }

  private assign(values: Tensor[]): void {
    this.tensors.forEach((t, i) => {
      if (t.which === 'A') t.layer.loraA = values[i];
      else t.layer.loraB = values[i];
    });
  }

  /** Disable (base model only) or enable every adapter. */
  setEnabled(enabled: boolean): void {
    for (const layer of this.layers.values()) layer.enabled = enabled;
  }

  /** Add scaling · B·A into each base weight (inference without the extra matmuls). */
  merge(): void {
    this.applyDelta(1);
  }

  /** Subtract what `merge` added. */
  unmerge(): void {
    this.applyDelta(-1);
  }

  private applyDelta(sign: 1 | -1): void {
    for (const layer of this.layers.values()) {
      if ((sign === 1) === layer.merged) continue;
      const base = layer.base;
      if (!(base instanceof DenseLinear) || base.weight.dtype !== 'f32') {
        throw new ConfigError(`merge: layer "${layer.name}" has no f32 weight to merge into (a 4-bit or f16 base keeps its adapters separate)`);
      }
      const [outF, inF] = base.weight.shape;
      const r = layer.loraA.shape[0];
      // W [out, in] += sign · scaling · B [out, r] · A [r, in]
      gemm(
        layer.loraB, { batchOuter: 0, batchInner: 0, row: r, col: 1 },
        layer.loraA, { batchOuter: 0, batchInner: 0, row: inF, col: 1 },
        base.weight, { batchOuter: 0, batchInner: 0, row: inF, col: 1 },
        { M: outF, N: inF, K: r, batch: 1 },
        sign * layer.scaling,
        1,
      );
      layer.merged = sign === 1;
    }
  }

  /** Remove the adapters and give the model its plain layers back. */
  unload(): void {
    for (const [name, layer] of this.layers) {
      this.model.linears.set(name, layer.base);
      layer.loraA.dispose();
      layer.loraB.dispose();
    }
    this.layers.clear();
  }

  /** Fresh copies of the LoRA tensors (for an EMA), untracked. */
  cloneParameters(): Tensor[] {
    return this.parameters().map((p) => {
      const c = untrack(empty(p.shape));
      assign(c, p);
      return c;
    });
  }
}

/** Inject LoRA into `model` with peft's defaults for every field not given. */
export function getPeftModel(model: CausalLM, config: Partial<LoraConfig>, options: { seed?: number } = {}): LoraModel {
  return new LoraModel(model, loraConfig(config), options);
}
