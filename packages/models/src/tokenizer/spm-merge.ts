/**
 * The merge loop of llama2.c's `encode()`: while some adjacent pair of symbols concatenates to a
 * vocabulary entry, merge the pair whose merged token has the highest score, the leftmost pair on
 * ties. llama2.c rescans the whole sequence after every merge (quadratic in the text length). This
 * keeps the candidate pairs in a heap ordered by (score, left position) instead, which picks the
 * same pair at every step, so the ids are identical, in O(n log n).
 */

/** A candidate merge of the symbols at positions `left` and `right`, valid while both are unchanged. */
interface Candidate {
  score: number;
  left: number;
  right: number;
  leftId: number;
  rightId: number;
  mergedId: number;
}

/** True when `a` is merged before `b`: higher score first, then the leftmost pair. */
function comesBefore(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

class CandidateHeap {
  private readonly items: Candidate[] = [];

  get size(): number {
    return this.items.length;
  }

  push(candidate: Candidate): void {
    const items = this.items;
    items.push(candidate);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!comesBefore(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): Candidate {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length === 0) return top;

    items[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let best = i;
      if (left < items.length && comesBefore(items[left]!, items[best]!)) best = left;
      if (right < items.length && comesBefore(items[right]!, items[best]!)) best = right;
      if (best === i) break;
      [items[i], items[best]] = [items[best]!, items[i]!];
      i = best;
    }
    return top;
  }
}

/** The parts of a vocabulary that the merge loop reads. */
export interface MergeVocab {
  /** Text of each token; only read for tokens that `mergeable` accepts. */
  pieces: readonly string[];
  scores: ArrayLike<number>;
  /** Tokens that text can produce, by their text. */
  textToId: ReadonlyMap<string, number>;
  /** Whether a token may take part in a merge (false for byte-fallback and special tokens). */
  mergeable(id: number): boolean;
}

/** Merges the initial per-character ids as llama2.c does and returns the final ids. */
export function mergeSymbols(initialIds: readonly number[], vocab: MergeVocab): number[] {
  const n = initialIds.length;
  const ids = Int32Array.from(initialIds);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }

  const heap = new CandidateHeap();
  const offer = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const leftId = ids[left]!;
    const rightId = ids[right]!;
    if (!vocab.mergeable(leftId) || !vocab.mergeable(rightId)) return;
    const mergedId = vocab.textToId.get(vocab.pieces[leftId]! + vocab.pieces[rightId]!);
    if (mergedId === undefined) return;
    heap.push({ score: vocab.scores[mergedId]!, left, right, leftId, rightId, mergedId });
  };
  for (let i = 0; i + 1 < n; i++) offer(i, i + 1);

  while (heap.size > 0) {
    const c = heap.pop();

    // Entries go stale when a neighbour was merged after they were pushed.
    const stale =
      !alive[c.left] || !alive[c.right] || next[c.left] !== c.right || ids[c.left] !== c.leftId || ids[c.right] !== c.rightId;
    if (stale) continue;

    // The merged symbol keeps the left position, so positions stay in text order.
    ids[c.left] = c.mergedId;
    alive[c.right] = 0;
    const after = next[c.right]!;
    next[c.left] = after;
    if (after >= 0) prev[after] = c.left;

    offer(prev[c.left]!, c.left);
    offer(c.left, after);
  }

  const result: number[] = [];
  for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]!) result.push(ids[i]!);
  return result;
}
