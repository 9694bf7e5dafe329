import { ShapeError } from '../errors.js';
import { empty, recordOp, type Tensor } from '../tensor.js';
import { expectF32, grid, kernel, lastDim, rowKernel, run } from './util.js';

const CE = rowKernel('losses', 'cross_entropy', 'cross_entropy_rows', 'rrww');
const CE_BACKWARD = kernel('losses', 'cross_entropy_backward', 'rrrrw');
const DIV = rowKernel('losses', 'divergence', 'divergence_rows', 'rrrw');
const DIV_BACKWARD = rowKernel('losses', 'divergence_backward', 'divergence_backward_rows', 'rrrrw');
const SUM_ALL = kernel('reduce', 'sum_all', 'rw');

/** Label value of positions that count for nothing, as PyTorch's ignore_index. */
export const IGNORE_INDEX = -100;

function checkTargets(op: string, logits: Tensor, targets: Tensor): { rows: number; V: number } {
  expectF32(op, logits);
  const V = lastDim(logits);
  const rows = logits.size / V;
  if (targets.dtype !== 'i32' || targets.size !== rows) {
    throw new ShapeError(`${op}: targets ${targets.describe()} must be i32 with one entry per row of ${logits.describe()}`);
  }
  return { rows, V };
}

/** sum(rowValues) / normalizer as a one-element tensor. */
function sumRows(rowValues: Tensor, normalizer: number): Tensor {
  const out = empty([]);
  run(SUM_ALL, [rowValues.size, 0, 0, 0], [1 / normalizer], [rowValues, out], [1]);
  return out;
}

/**
 * Cross-entropy of logits [..., V] against already shifted targets (i32, IGNORE_INDEX skipped):
 * sum over counted rows of -log softmax(logits)[target], divided by `normalizer` (the number of
 * counted targets of the whole optimizer step under gradient accumulation, so the micro-batch
 * losses add up to the step's mean).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, normalizer: number): Tensor {
  const { rows, V } = checkTargets('crossEntropy', logits, targets);
  if (!(normalizer > 0)) throw new ShapeError(`crossEntropy: normalizer must be positive, got ${normalizer}`);
  const rowLoss = empty([rows]);
  const lse = empty([rows]);
  const ce = CE(rows);
  run(ce.spec, [rows, V, 0], [1, 1, 0, 1 / normalizer], [logits, targets, rowLoss, lse], ce.workgroups);
  const loss = sumRows(rowLoss, normalizer);
  rowLoss.dispose();
  recordOp('crossEntropy', loss, [logits], [logits, targets, lse], (g, [logits, targets, lse]) => {
    const dz = empty(logits.shape);
    run(CE_BACKWARD, [rows, V, 0], [1, 1, 0, 1 / normalizer], [logits, targets, lse, g, dz], grid(rows * V, 256));
    return [dz];
  });
  lse.dispose();
  return loss;
}

export type DivergenceDirection = 'forward' | 'reverse' | 'jsd';

export interface DivergenceOptions {
  /** 'forward' = KL(teacher || student), 'reverse' = KL(student || teacher), 'jsd' = generalized Jensen-Shannon. */
  direction: DivergenceDirection;
  /** Both distributions are softmax(logits / T); the result is multiplied by T². */
  temperature: number;
  /** Mixing weight of the teacher in the JSD mixture m = beta·teacher + (1 - beta)·student, as trl's GKD. */
  jsdBeta?: number;
  normalizer: number;
}

const DIRECTION_CODE: Record<DivergenceDirection, number> = { forward: 0, reverse: 1, jsd: 2 };

/**
 * Divergence between student and teacher token distributions over the rows whose target is
 * counted, summed and divided by `normalizer`. Gradients reach the student logits only.
 */
export function divergence(student: Tensor, teacher: Tensor, targets: Tensor, options: DivergenceOptions): Tensor {
  const { rows, V } = checkTargets('divergence', student, targets);
  expectF32('divergence', teacher);
  if (teacher.size !== student.size) {
    throw new ShapeError(`divergence: teacher ${teacher.describe()} and student ${student.describe()} differ`);
  }
  const { direction, temperature, jsdBeta = 0.5, normalizer } = options;
  if (!(temperature > 0)) throw new ShapeError(`divergence: temperature must be positive, got ${temperature}`);
  const u32 = [rows, V, DIRECTION_CODE[direction]];
  const f32 = [1 / temperature, temperature * temperature, jsdBeta, 1 / normalizer];
  const rowLoss = empty([rows]);
  const div = DIV(rows);
  run(div.spec, u32, f32, [student, teacher, targets, rowLoss], div.workgroups);
  const loss = sumRows(rowLoss, normalizer);
  rowLoss.dispose();
  recordOp('divergence', loss, [student], [student, teacher, targets], (g, [student, teacher, targets]) => {
    const dz = empty(student.shape);
    const back = DIV_BACKWARD(rows);
    run(back.spec, u32, f32, [student, teacher, targets, g, dz], back.workgroups);
    return [dz];
  });
  return loss;
}

function logSoftmax(z: ArrayLike<number>, offset: number, V: number, invT: number): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, z[offset + j] * invT);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(z[offset + j] * invT - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let j = 0; j < V; j++) out[j] = z[offset + j] * invT - lse;
  return out;
}

/** Plain reference for tests (float64). */
export function crossEntropyReference(logits: ArrayLike<number>, targets: ArrayLike<number>, V: number, normalizer: number): number {
  let total = 0;
  for (let r = 0; r < targets.length; r++) {
    if (targets[r] < 0) continue;
    total -= logSoftmax(logits, r * V, V, 1)[targets[r]];
  }
  return total / normalizer;
}

/** Plain reference for tests (float64). */
export function divergenceReference(
  student: ArrayLike<number>,
  teacher: ArrayLike<number>,
  targets: ArrayLike<number>,
  V: number,
  options: DivergenceOptions,
): number {
  const { direction, temperature: T, jsdBeta: beta = 0.5, normalizer } = options;
  let total = 0;
  for (let r = 0; r < targets.length; r++) {
    if (targets[r] < 0) continue;
    const ls = logSoftmax(student, r * V, V, 1 / T);
    const lt = logSoftmax(teacher, r * V, V, 1 / T);
    let d = 0;
    for (let j = 0; j < V; j++) {
      const ps = Math.exp(ls[j]);
      const pt = Math.exp(lt[j]);
      if (direction === 'forward') d += pt * (lt[j] - ls[j]);
      else if (direction === 'reverse') d += ps * (ls[j] - lt[j]);
      else {
        const lm = Math.log(beta * pt + (1 - beta) * ps);
        d += beta * pt * (lt[j] - lm) + (1 - beta) * ps * (ls[j] - lm);
      }
    }
    total += T * T * d;
  }
  return total / normalizer;
}
