import { setAutogradKernels } from '../tensor.js';
import { add, addInPlace, map } from './elementwise.js';
import { ones } from './fill.js';
import { setBiasAdd } from './matmul.js';

export { MAPS, map, reduceTo, add, sub, mul, scale, silu, gelu, swiglu, addInPlace, type MapName } from './elementwise.js';
export { fillInPlace, full, zeros, ones, clone, assign, copyBlock } from './fill.js';
export { matmul, linear, gemm, matmulReference, matmulVariant, setMatmulVariant, type MatmulVariant, type Strides } from './matmul.js';
export { rmsNorm, rmsNormReference } from './norm.js';
export { layerNorm, layerNormReference } from './layernorm.js';
export { rope, ropeTable, ropeInverseFrequencies, ropeReference, type RopeLayout } from './rope.js';
export { attention, attentionReference, type AttentionOptions, type AttentionLayout } from './attention.js';
export {
  crossEntropy,
  divergence,
  crossEntropyReference,
  divergenceReference,
  IGNORE_INDEX,
  type DivergenceDirection,
  type DivergenceOptions,
} from './losses.js';
export { embedding, embeddingReference } from './embedding.js';
export { dropout, dropoutReference, pcgHash } from './dropout.js';
export { sliceLastDim, concatLastDim } from './shape.js';
export { sum, mean } from './reduce.js';
export { cast } from './cast.js';

setAutogradKernels({
  addInto: (target, delta) => addInPlace(target, delta),
  add: (a, b) => map('add', [a, b], a.shape, 1),
  onesLike: (t) => ones(t.shape),
});
setBiasAdd((y, bias) => add(y, bias));
