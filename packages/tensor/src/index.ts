export * from './errors.js';
export * from './log.js';
export * from './dtype.js';
export { getDevice, type DeviceInfo, type WebGpuRuntime } from './device.js';
export { init, engine, Engine, type KernelSpec } from './engine.js';
export {
  Tensor,
  empty,
  fromData,
  tidy,
  tidyAsync,
  untrack,
  noGrad,
  isGradEnabled,
  backward,
  recordOp,
  numel,
  formatShape,
  type GradNode,
} from './tensor.js';
export * from './ops/index.js';
export { KERNELS } from './kernels.generated.js';
export * from './optim.js';
export * from './tuning.js';
export { seededRandom, randomArray, maxAbsDiff } from './testing.js';
export { setDebug, checkNumerics, isCheckingNumerics, type DebugOptions } from './numerics.js';
