import { add, dropout, linear, type Tensor } from '@tematrainer/tensor';
import type { LinearLayer } from '@tematrainer/models';

/**
 * A frozen base layer plus a low-rank update: y = base(x) + scaling · (dropout(x) · Aᵀ) · Bᵀ
 * with lora_A [r, in] and lora_B [out, r], as peft's lora.Linear.
 */
export class LoraLinear implements LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** When false, the layer computes the base layer alone. */
  enabled = true;
  /** Dropout is applied only while training. */
  training = false;
  /** True while B·A is added into the base weight (see LoraModel.merge). */
  merged = false;
  /** Seed and counter of the dropout masks; the counter advances every training forward pass. */
  dropoutSeed = 0;
  dropoutOffset = 0;

  constructor(
    readonly name: string,
    readonly base: LinearLayer,
    public loraA: Tensor,
    public loraB: Tensor,
    readonly scaling: number,
    readonly dropoutP: number,
  ) {
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  forward(x: Tensor): Tensor {
    const y = this.base.forward(x); // [..., out]
    if (!this.enabled || this.merged) return y;
    let input = x;
    if (this.training && this.dropoutP > 0) {
      input = dropout(x, this.dropoutP, this.dropoutSeed, this.dropoutOffset);
      this.dropoutOffset = (this.dropoutOffset + x.size) >>> 0;
    }
    const low = linear(input, this.loraA); // [..., r]
    return add(y, linear(low, this.loraB), this.scaling); // [..., out]
  }
}
