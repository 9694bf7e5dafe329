export {
  NF4_VALUES,
  NF4_THRESHOLDS,
  NF4_BLOCK_SIZES,
  NF4_DEFAULT_BLOCK_SIZE,
  nf4Code,
  nf4CodeAt,
  quantizeNf4,
  dequantizeNf4,
  type Nf4Quantized,
} from './nf4.js';
export {
  DOUBLE_QUANT_BLOCK_SIZE,
  DYNAMIC_MAP,
  createDynamicMap,
  nearestDynamicCode,
  doubleQuantize,
  doubleDequantize,
  type DoubleQuantized,
} from './double-quant.js';
export {
  parseBitsAndBytesConfig,
  resolveBitsAndBytesConfig,
  type BitsAndBytesConfig,
  type ResolvedBitsAndBytesConfig,
  type QuantType,
  type ComputeDtype,
} from './config.js';
export { Nf4Linear, type Nf4LinearOptions } from './nf4-linear.js';
export { quantizeModel, disposeQuantizedLayers, type QuantizableLinear, type QuantizableModel, type QuantizeReport } from './quantize-model.js';
