import { getDevice, type DeviceInfo } from './device.js';
import { TemaError } from './errors.js';
import { BufferPool } from './pool.js';

/** One compute entry point of a WGSL kernel file, with the access mode of each storage binding. */
export interface KernelSpec {
  /** WGSL source; `{{NAME}}` placeholders are filled from `defines`. */
  source: string;
  entry: string;
  /**
   * Storage bindings 1..n in order: 'r' for `var<storage, read>`, 'w' for `var<storage, read_write>`.
   * Binding 0 is always the uniform parameter block.
   */
  bindings: string;
  defines?: Record<string, string | number>;
}

/**
 * Extra work that every read-back carries, such as the numerics check of `setDebug`: copies
 * recorded into the read's command buffer, and a step after its submit that may throw.
 */
export interface ReadBackCheck {
  beforeSubmit(encoder: GPUCommandEncoder): void;
  afterSubmit(): Promise<void>;
}

/** Bytes of the uniform block of one dispatch; every kernel's `Params` struct must fit in it. */
const PARAM_BYTES = 256;
const RING_SLOTS = 4096;
/**
 * Bind groups kept for reuse, least recently used evicted first. The pool hands tensors
 * different buffers from step to step, so the set of buffer combinations is unbounded; an
 * unbounded cache crashed lavapipe after some 60,000 bind groups.
 */
const MAX_BIND_GROUPS = 4096;

/**
 * Records dispatches into one open compute pass and submits them only when a value is read back,
 * a buffer is written from the CPU, or the parameter ring is full. Each dispatch's parameters
 * occupy one 256-byte slot of a uniform ring bound with a dynamic offset, so bind groups can be
 * cached by their buffers alone.
 */
export class Engine {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; key: string }>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private ring: GPUBuffer;
  private ringData = new ArrayBuffer(PARAM_BYTES * RING_SLOTS);
  private ringU32 = new Uint32Array(this.ringData);
  private ringF32 = new Float32Array(this.ringData);
  private ringUsed = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** Dispatches recorded since the engine started; benchmarks read it. */
  dispatchCount = 0;
  submitCount = 0;
  /** Set by `setDebug({ checkNumerics })`; runs with every `read`. */
  readBackCheck: ReadBackCheck | null = null;

  constructor(readonly info: DeviceInfo) {
    this.device = info.device;
    this.pool = new BufferPool(this.device, () => this.bindGroups.clear());
    this.ring = this.device.createBuffer({
      size: PARAM_BYTES * RING_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  private layoutFor(bindings: string): GPUBindGroupLayout {
    let layout = this.layouts.get(bindings);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ];
      for (let i = 0; i < bindings.length; i++) {
        entries.push({
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: bindings[i] === 'w' ? 'storage' : 'read-only-storage' },
        });
      }
      layout = this.device.createBindGroupLayout({ entries });
      this.layouts.set(bindings, layout);
    }
    return layout;
  }

  private pipelineFor(spec: KernelSpec) {
    let code = spec.source;
    if (spec.defines) {
      for (const [name, value] of Object.entries(spec.defines)) code = code.replaceAll(`{{${name}}}`, String(value));
    }
    const key = `${spec.entry}|${spec.bindings}|${code}`;
    let entry = this.pipelines.get(key);
    if (!entry) {
      let module = this.modules.get(code);
      if (!module) {
        module = this.device.createShaderModule({ code });
        this.modules.set(code, module);
      }
      const layout = this.layoutFor(spec.bindings);
      const pipeline = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: spec.entry },
      });
      entry = { pipeline, layout, key: `${this.pipelines.size}` };
      this.pipelines.set(key, entry);
    }
    return entry;
  }

  /**
   * Record one dispatch. `u32` and `f32` fill the kernel's `Params` struct in that order (all u32
   * fields first, then all f32 fields).
   */
  dispatch(
    spec: KernelSpec,
    u32: readonly number[],
    f32: readonly number[],
    buffers: readonly GPUBuffer[],
    workgroups: readonly [number, number?, number?],
  ): void {
    if (buffers.length !== spec.bindings.length) {
      throw new TemaError(`kernel ${spec.entry}: expected ${spec.bindings.length} buffers, got ${buffers.length}`);
    }
    if (u32.length + f32.length > PARAM_BYTES / 4) throw new TemaError(`kernel ${spec.entry}: too many parameters`);
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new TemaError(`kernel ${spec.entry}: dispatch [${x}, ${y}, ${z}] exceeds ${maxWg} workgroups per dimension`);
    }
    const { pipeline, layout, key } = this.pipelineFor(spec);

    if (this.ringUsed === RING_SLOTS) this.flush();
    const slot = this.ringUsed++;
    const base = (slot * PARAM_BYTES) / 4;
    for (let i = 0; i < u32.length; i++) this.ringU32[base + i] = u32[i];
    for (let i = 0; i < f32.length; i++) this.ringF32[base + u32.length + i] = f32[i];

    let groupKey = key;
    for (const b of buffers) groupKey += `,${this.pool.id(b)}`;
    let group = this.bindGroups.get(groupKey);
    if (group) {
      // Move to the most recently used end.
      this.bindGroups.delete(groupKey);
      this.bindGroups.set(groupKey, group);
    } else {
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.ring, size: PARAM_BYTES } }];
      buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
      group = this.device.createBindGroup({ layout, entries });
      this.bindGroups.set(groupKey, group);
      if (this.bindGroups.size > MAX_BIND_GROUPS) this.evictBindGroups(MAX_BIND_GROUPS / 4);
    }

    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group, [slot * PARAM_BYTES]);
    this.pass.dispatchWorkgroups(x, y, z);
    this.dispatchCount++;
  }

  private evictBindGroups(count: number): void {
    let n = 0;
    for (const [key, group] of this.bindGroups) {
      if (n++ >= count) break;
      this.bindGroups.delete(key);
      // Recorded commands keep their own reference, so releasing ours is safe. bun-webgpu frees
      // native objects only on an explicit destroy(); the Node addon frees them when collected.
      (group as { destroy?: () => void }).destroy?.();
    }
  }

  /** Number of cached bind groups (benchmarks and tests read it). */
  get bindGroupCount(): number {
    return this.bindGroups.size;
  }

  /** True when commands are recorded but not yet submitted. */
  get pending(): boolean {
    return this.encoder !== null;
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.ringUsed > 0) {
      this.device.queue.writeBuffer(this.ring, 0, this.ringData, 0, this.ringUsed * PARAM_BYTES);
      this.ringUsed = 0;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.submitCount++;
  }

  /**
   * Write CPU data into a buffer. Recorded work is submitted first, because `writeBuffer` takes
   * effect before any command not yet submitted, which may still read the buffer's old contents.
   */
  write(buffer: GPUBuffer, byteOffset: number, data: ArrayBufferView): void {
    this.flush();
    this.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copy `byteLength` bytes of a buffer back to the CPU, submitting recorded work first. */
  async read(buffer: GPUBuffer, byteOffset: number, byteLength: number): Promise<ArrayBuffer> {
    const size = Math.ceil(byteLength / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, size);
    const check = this.readBackCheck;
    check?.beforeSubmit(this.encoder);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0, byteLength);
    staging.unmap();
    staging.destroy();
    await check?.afterSubmit();
    return copy;
  }

  /** Wait until the GPU has finished everything submitted. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }
}

let current: Engine | null = null;
let starting: Promise<Engine> | null = null;

/** Open the WebGPU device and the engine; every tensor function needs this to have finished. */
export function init(): Promise<Engine> {
  if (current) return Promise.resolve(current);
  starting ??= getDevice().then((info) => (current = new Engine(info)));
  return starting;
}

/** Return the engine opened by `init()`. */
export function engine(): Engine {
  if (!current) throw new TemaError('the WebGPU engine is not started: call `await init()` first');
  return current;
}
