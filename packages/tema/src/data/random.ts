import { ConfigError } from '@tematrainer/tensor';

/** Finalizer of MurmurHash3: spreads every input bit over the 32-bit output. */
function mix32(value: number): number {
  let x = value >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Returns a mulberry32 generator: each call yields the next uniform 32-bit unsigned integer.
 * The sequence depends only on `seed`, on every platform.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Returns a permutation of 0..size-1, shuffled by Fisher-Yates with a generator seeded from (seed, epoch). */
export function epochPermutation(size: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    order[i] = i;
  }

  const next = mulberry32(mix32(seed ^ mix32(epoch + 0x9e3779b9)));
  for (let i = size - 1; i > 0; i--) {
    // A 32-bit draw scaled to [0, i]; the bias is below size / 2^32.
    const j = Math.floor((next() / 0x1_0000_0000) * (i + 1));
    const swap = order[i]!;
    order[i] = order[j]!;
    order[j] = swap;
  }
  return order;
}

/** Position in a seeded, epoch-by-epoch order; enough to resume that order exactly. */
export interface SamplerState {
  epoch: number;
  /** Index, within the epoch's order, of the next item to draw. */
  position: number;
  seed: number;
}

/**
 * An endless order over `size` items: each epoch visits every item once, shuffled with a
 * permutation that depends only on (seed, epoch), or in file order when `shuffle` is false.
 * Only the low 32 bits of the seed take part.
 */
export class EpochOrder {
  private epoch = 0;
  private position = 0;
  private seed: number;
  private cachedEpoch = -1;
  private cachedOrder: Uint32Array = new Uint32Array(0);

  constructor(
    readonly size: number,
    seed: number,
    readonly shuffle: boolean,
  ) {
    if (!Number.isInteger(size) || size < 1) {
      throw new ConfigError(`data: expected at least one example to draw from, found ${size}`);
    }
    this.seed = checkSeed(seed);
  }

  get state(): SamplerState {
    return { epoch: this.epoch, position: this.position, seed: this.seed };
  }

  /** Restores a state taken from `state`; the next draw continues exactly where that state was. */
  restore(state: SamplerState): void {
    if (!Number.isInteger(state.epoch) || state.epoch < 0) {
      throw new ConfigError(`sampler state: epoch must be a non-negative integer, found ${state.epoch}`);
    }
    if (!Number.isInteger(state.position) || state.position < 0 || state.position > this.size) {
      throw new ConfigError(
        `sampler state: position must be an integer in [0, ${this.size}] for ${this.size} items, found ${state.position}; was the state saved for another dataset?`,
      );
    }
    this.seed = checkSeed(state.seed);
    this.epoch = state.epoch;
    this.position = state.position;
    this.cachedEpoch = -1;
  }

  /** Items left in the current epoch. */
  get remaining(): number {
    return this.size - this.position;
  }

  /**
   * Draws up to `count` item indices from the current epoch. When the epoch runs out, fewer are
   * returned and the next call starts the next epoch.
   */
  take(count: number): number[] {
    if (this.position >= this.size) {
      this.epoch++;
      this.position = 0;
    }

    const order = this.currentOrder();
    const end = Math.min(this.size, this.position + count);
    const indices = Array.from(order.subarray(this.position, end));
    this.position = end;
    return indices;
  }

  /** Skips the rest of the current epoch. */
  endEpoch(): void {
    this.position = this.size;
  }

  private currentOrder(): Uint32Array {
    if (this.cachedEpoch !== this.epoch) {
      this.cachedOrder = this.shuffle
        ? epochPermutation(this.size, this.seed, this.epoch)
        : Uint32Array.from({ length: this.size }, (_, i) => i);
      this.cachedEpoch = this.epoch;
    }
    return this.cachedOrder;
  }
}

function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed)) {
    throw new ConfigError(`seed: expected an integer, found ${seed}`);
  }
  return seed;
}
