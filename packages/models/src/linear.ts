import { linear, type Tensor } from '@tematrainer/tensor';

/**
 * A linear layer of a model, addressed by its Hugging Face module name
 * (`model.layers.0.self_attn.q_proj`). Adapters (LoRA) and quantized bases replace the entry in
 * the model's `linears` map with their own implementation of this interface.
 */
export interface LinearLayer {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** y = x · Wᵀ + b for x [..., inFeatures] -> [..., outFeatures]. */
  forward(x: Tensor): Tensor;
}

/** A plain full-precision layer in torch.nn.Linear layout: weight [out, in], optional bias [out]. */
export class DenseLinear implements LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly name: string,
    public weight: Tensor,
    public bias: Tensor | null = null,
  ) {
    [this.outFeatures, this.inFeatures] = weight.shape;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
