import { ConfigError } from '@tematrainer/tensor';
import { describe, expect, it } from 'vitest';

import { Batcher, collate, packSequences, paddingId } from './batch.js';
import { epochPermutation, mulberry32 } from './random.js';
import type { Batch, TokenizedExample } from './types.js';

const EOS = 2;

function example(ids: number[], labels: number[] = ids): TokenizedExample {
  return { inputIds: ids, labels };
}

describe('packSequences', () => {
  it('joins with EOS and cuts blocks', () => {
    const examples = [example([10, 11, 12]), example([20, 21], [-100, 21]), example([30, 31, 32, 33])];
    const blocks = packSequences(examples, 4, EOS);
    // Stream: 10 11 12 EOS 20 21 EOS 30 31 32 33
    expect(blocks).toEqual([
      { inputIds: [10, 11, 12, EOS], labels: [10, 11, 12, EOS] },
      { inputIds: [20, 21, EOS, 30], labels: [-100, 21, EOS, 30] },
      { inputIds: [31, 32, 33], labels: [31, 32, 33] },
    ]);
  });

  it('adds no EOS after an example ending in EOS', () => {
    const blocks = packSequences([example([1, 5, EOS]), example([1, 6, EOS])], 8, EOS);
    expect(blocks).toEqual([{ inputIds: [1, 5, EOS, 1, 6, EOS], labels: [1, 5, EOS, 1, 6, EOS] }]);
  });
});

describe('collate', () => {
  it('pads to the longest row', () => {
    const batch = collate([example([5, 6, 7], [-100, 6, 7]), example([8])], 0);
    expect(batch.batchSize).toBe(2);
    expect(batch.seqLen).toBe(3);
    expect(Array.from(batch.inputIds)).toEqual([5, 6, 7, 8, 0, 0]);
    expect(Array.from(batch.labels)).toEqual([-100, 6, 7, 8, -100, -100]);
    expect(Array.from(batch.attentionMask)).toEqual([1, 1, 1, 1, 0, 0]);
  });

  it('picks pad, then EOS, then 0', () => {
    expect(paddingId({ padId: 3, eosId: 2 })).toBe(3);
    expect(paddingId({ padId: null, eosId: 2 })).toBe(2);
    expect(paddingId({ padId: null, eosId: null })).toBe(0);
  });
});

describe('mulberry32', () => {
  it('repeats its sequence for a seed', () => {
    const first = mulberry32(42);
    const second = mulberry32(42);
    const other = mulberry32(43);
    const a = [first(), first(), first()];
    expect([second(), second(), second()]).toEqual(a);
    expect([other(), other(), other()]).not.toEqual(a);
    expect(a.every((value) => Number.isInteger(value) && value >= 0 && value < 2 ** 32)).toBe(true);
  });

  it('permutes every index once', () => {
    const order = Array.from(epochPermutation(100, 7, 3));
    expect(order.slice().sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(order).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(epochPermutation(100, 7, 4))).not.toEqual(order);
  });
});

/** Ten examples whose first token is their index, lengths 1..4. */
const examples = Array.from({ length: 10 }, (_, index) => example(Array.from({ length: 1 + (index % 4) }, () => index)));

function firstTokens(batch: Batch): number[] {
  return Array.from({ length: batch.batchSize }, (_, row) => batch.inputIds[row * batch.seqLen]!);
}

describe('Batcher', () => {
  it('visits every example once per epoch', () => {
    const batcher = new Batcher(examples, { batchSize: 3, seed: 1, padId: 0 });
    expect(batcher.batchesPerEpoch).toBe(4);

    const epoch = [batcher.next(), batcher.next(), batcher.next(), batcher.next()];
    expect(epoch.map((batch) => batch.batchSize)).toEqual([3, 3, 3, 1]);
    expect(epoch.flatMap(firstTokens).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(batcher.state).toEqual({ epoch: 0, position: 10, seed: 1 });
  });

  it('shuffles the same for the same seed', () => {
    const drawn = (seed: number) => {
      const batcher = new Batcher(examples, { batchSize: 4, seed, padId: 0 });
      return Array.from({ length: 6 }, () => firstTokens(batcher.next()));
    };
    expect(drawn(5)).toEqual(drawn(5));
    expect(drawn(5)).not.toEqual(drawn(6));
  });

  it('resumes the same order from its state', () => {
    const original = new Batcher(examples, { batchSize: 4, seed: 9, padId: 0 });
    for (let k = 0; k < 5; k++) {
      original.next();
    }
    const saved = JSON.parse(JSON.stringify(original.state));
    const expected = Array.from({ length: 7 }, () => original.next());

    const resumed = new Batcher(examples, { batchSize: 4, seed: 123, padId: 0 });
    resumed.restore(saved);
    const actual = Array.from({ length: 7 }, () => resumed.next());
    expect(actual).toEqual(expected);
  });

  it('drops the partial last batch when asked', () => {
    const batcher = new Batcher(examples, { batchSize: 4, seed: 1, padId: 0, dropLast: true });
    expect(batcher.batchesPerEpoch).toBe(2);
    expect([batcher.next(), batcher.next(), batcher.next()].map((batch) => batch.batchSize)).toEqual([4, 4, 4]);
    expect(batcher.state.epoch).toBe(1);
  });

  it('keeps file order without shuffle', () => {
    const batcher = new Batcher(examples, { batchSize: 5, seed: 1, padId: 0, shuffle: false });
    expect(firstTokens(batcher.next())).toEqual([0, 1, 2, 3, 4]);
    expect(firstTokens(batcher.next())).toEqual([5, 6, 7, 8, 9]);
  });

  it('rejects a state for another dataset', () => {
    const batcher = new Batcher(examples, { batchSize: 2, seed: 1, padId: 0 });
    expect(() => batcher.restore({ epoch: 0, position: 11, seed: 1 })).toThrow(ConfigError);
  });
});
