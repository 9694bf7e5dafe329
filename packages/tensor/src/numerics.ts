import { engine, type Engine, type KernelSpec, type ReadBackCheck } from './engine.js';
import { TemaError } from './errors.js';
import type { DType } from './dtype.js';

/** Debugging switches; all are off by default because each costs GPU work. */
export interface DebugOptions {
  /**
   * Check for NaN and infinity in the output of every differentiable op and in each gradient
   * that backward computes, with one extra dispatch each. The next read-back (`Tensor.data()`,
   * `item()`, `engine().read`) or `checkNumerics()` then throws a TemaError naming the first op,
   * in recording order, whose output was not finite. Fills, copies and optimizer updates are
   * not checked.
   */
  checkNumerics?: boolean;
}

// Each invocation tests the exponent bits of one 32-bit word (one f32, or two f16 halves).
// WGSL lets implementations assume that floats are never NaN or infinite, so a float comparison
// could be folded away, while an integer test of the bits cannot. The first non-finite op wins
// because the flag keeps the maximum of (0xffffffff - op index), and 0 means "all finite".
const CHECK_FINITE = `
struct Params {
  words: u32,
  index: u32,
  half: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<u32>;
@group(0) @binding(2) var<storage, read_write> Flag: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.words) {
    return;
  }
  let w = X[i];
  var bad = false;
  if (p.half == 0u) {
    bad = (w & 0x7f800000u) == 0x7f800000u;
  } else {
    bad = (w & 0x7c00u) == 0x7c00u || (w & 0x7c000000u) == 0x7c000000u;
  }
  if (bad) {
    atomicMax(&Flag[0], 0xffffffffu - p.index);
  }
}
`;

const SPEC: KernelSpec = { source: CHECK_FINITE, entry: 'main', bindings: 'rw' };

/** The flag buffer, the ops checked since the last read-back, and the read-back hook of one engine. */
class NumericsCheck implements ReadBackCheck {
  /**
   * One pooled buffer kept for the engine's lifetime: a pooled buffer has an id, which the
   * engine's bind group cache needs, and it counts 256 bytes in `pool.liveBytes`.
   */
  private readonly flag: GPUBuffer;
  private nextIndex = 1;
  private readonly ops = new Map<number, string>();
  private staging: GPUBuffer | null = null;
  private lastSubmitted = 0;

  constructor(private readonly engine: Engine) {
    this.flag = engine.pool.acquire(4);
    engine.write(this.flag, 0, new Uint32Array([0]));
  }

  /** Record the check of one op's output. */
  check(op: string, buffer: GPUBuffer, shape: readonly number[], dtype: DType): void {
    if (dtype !== 'f32' && dtype !== 'f16') return;
    let size = 1;
    for (const d of shape) size *= d;
    const words = dtype === 'f32' ? size : Math.ceil(size / 2);
    if (words === 0) return;
    const index = this.nextIndex++;
    this.ops.set(index, `${op} (output ${dtype}[${shape.join(', ')}])`);
    this.engine.dispatch(SPEC, [words, index, dtype === 'f16' ? 1 : 0], [], [buffer, this.flag], workgroups(this.engine, words));
  }

  beforeSubmit(encoder: GPUCommandEncoder): void {
    this.staging = this.engine.device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.copyBufferToBuffer(this.flag, 0, this.staging, 0, 4);
    // Cleared in the same command buffer, so checks recorded after this read start from zero.
    encoder.clearBuffer(this.flag, 0, 4);
    this.lastSubmitted = this.nextIndex - 1;
  }

  async afterSubmit(): Promise<void> {
    const staging = this.staging;
    if (!staging) return;
    this.staging = null;
    const covered = this.lastSubmitted;
    await staging.mapAsync(GPUMapMode.READ);
    const value = new Uint32Array(staging.getMappedRange())[0];
    staging.unmap();
    staging.destroy();

    const first = value === 0 ? 0 : 0xffffffff - value;
    const op = this.ops.get(first);
    for (const index of this.ops.keys()) {
      if (index <= covered) this.ops.delete(index);
    }
    if (value !== 0) {
      throw new TemaError(
        `checkNumerics: ${op ?? `op number ${first}`} produced NaN or infinity; ` +
          'it is the first non-finite op since the previous read-back',
      );
    }
  }
}

function workgroups(engine: Engine, words: number): [number, number] {
  const groups = Math.ceil(words / 256);
  const max = engine.device.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

const checks = new WeakMap<Engine, NumericsCheck>();
let enabled = false;

/** Turn debugging checks on or off (see `DebugOptions`). Needs `await init()` first. */
export function setDebug(options: DebugOptions): void {
  if (options.checkNumerics === undefined) return;
  const e = engine();
  enabled = options.checkNumerics;
  if (enabled) {
    let check = checks.get(e);
    if (!check) checks.set(e, (check = new NumericsCheck(e)));
    e.readBackCheck = check;
  } else {
    e.readBackCheck = null;
  }
}

/** True while `setDebug({ checkNumerics: true })` is in effect. */
export function isCheckingNumerics(): boolean {
  return enabled;
}

/** Record a finiteness check of an op's output; a no-op unless numerics checking is on. */
export function checkOutput(op: string, buffer: GPUBuffer, shape: readonly number[], dtype: DType): void {
  if (!enabled) return;
  checks.get(engine())?.check(op, buffer, shape, dtype);
}

/**
 * Submit the recorded work and throw a TemaError naming the first op whose output held NaN or
 * infinity since the previous read-back. Does nothing while numerics checking is off.
 */
export async function checkNumerics(): Promise<void> {
  if (!enabled) return;
  const e = engine();
  const scratch = e.pool.acquire(4);
  try {
    await e.read(scratch, 0, 4);
  } finally {
    e.pool.release(scratch);
  }
}
