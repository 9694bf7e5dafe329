/**
 * A pool of GPU storage buffers reused by size class, so that a training loop allocates its
 * buffers in the first step and reuses them afterwards. Sizes are rounded up to 2^k · {1, 1.25,
 * 1.5, 1.75} (at most 25% waste) with a 256-byte minimum.
 */
export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private nextId = 1;
  readonly ids = new WeakMap<GPUBuffer, number>();
  /** Bytes of the buffers handed out and not yet returned, by size class. */
  liveBytes = 0;
  peakBytes = 0;
  /** Bytes of every buffer the pool created and has not destroyed. */
  allocatedBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly onDestroy: () => void,
  ) {}

  static sizeClass(bytes: number): number {
    if (bytes <= 256) return 256;
    const p = 2 ** Math.floor(Math.log2(bytes));
    for (const f of [1, 1.25, 1.5, 1.75, 2]) {
      const size = Math.ceil((p * f) / 256) * 256;
      if (size >= bytes) return size;
    }
    return p * 2;
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (!buffer) {
      buffer = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.ids.set(buffer, this.nextId++);
      this.allocatedBytes += size;
    }
    this.liveBytes += size;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.liveBytes -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buffer);
  }

  /** Start a new peak measurement from the bytes live now (peakBytes is otherwise a process-wide maximum). */
  resetPeak(): void {
    this.peakBytes = this.liveBytes;
  }

  id(buffer: GPUBuffer): number {
    return this.ids.get(buffer) ?? 0;
  }

  /** Destroy every free buffer (for example between two models of different sizes). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const buffer of list) {
        this.allocatedBytes -= buffer.size;
        buffer.destroy();
      }
    }
    this.free.clear();
    this.onDestroy();
  }
}
