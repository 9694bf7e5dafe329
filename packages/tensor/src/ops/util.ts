import { engine, type KernelSpec } from '../engine.js';
import { ShapeError } from '../errors.js';
import { KERNELS } from '../kernels.generated.js';
import { formatShape, type Tensor } from '../tensor.js';

export type KernelFile = keyof typeof KERNELS;

export function kernel(
  file: KernelFile,
  entry: string,
  bindings: string,
  defines?: Record<string, string | number>,
): KernelSpec {
  return { source: KERNELS[file], entry, bindings, defines };
}

/**
 * Workgroup counts covering `n` invocations of `size` each, folded into a second dimension past
 * the per-dimension limit; kernels rebuild the linear index as x + y * numWorkgroups.x * size.
 */
export function grid(n: number, size: number): [number, number] {
  const groups = Math.ceil(n / size);
  const max = engine().device.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

/** Workgroups for one-workgroup-per-row kernels, folded the same way. */
export function rowGrid(rows: number): [number, number] {
  return grid(rows, 1);
}

export function run(
  spec: KernelSpec,
  u32: readonly number[],
  f32: readonly number[],
  tensors: readonly Tensor[],
  workgroups: readonly [number, number?, number?],
): void {
  engine().dispatch(
    spec,
    u32,
    f32,
    tensors.map((t) => t.buffer),
    workgroups,
  );
}

export function expectF32(op: string, ...tensors: Tensor[]): void {
  for (const t of tensors) {
    if (t.dtype !== 'f32') throw new ShapeError(`${op}: expected an f32 tensor, got ${t.describe()}`);
  }
}

export function expectSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`${op}: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} differ`);
  }
}

export function lastDim(t: Tensor): number {
  return t.shape[t.shape.length - 1] ?? 1;
}

/**
 * A row-reduction kernel in two variants: a workgroup per row with a tree reduction (GPUs), or
 * one invocation per row with plain loops (CPU adapters such as lavapipe, where barriers are
 * expensive). Both compute the same sums in different orders.
 */
export function rowKernel(file: KernelFile, workgroupEntry: string, rowsEntry: string, bindings: string) {
  const perWorkgroup = kernel(file, workgroupEntry, bindings);
  const perInvocation = kernel(file, rowsEntry, bindings);
  return (rows: number): { spec: KernelSpec; workgroups: [number, number] } =>
    // NOTE: chosen by adapter type, not measured; a GPU with a small vocabulary might prefer
    // the per-invocation variant too.
    engine().info.isSoftware ? { spec: perInvocation, workgroups: grid(rows, 64) } : { spec: perWorkgroup, workgroups: rowGrid(rows) };
}
