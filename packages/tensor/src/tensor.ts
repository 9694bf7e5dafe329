import { BYTES_PER_ELEMENT, type DType, typedArrayFor } from './dtype.js';
import { engine } from './engine.js';
import { ShapeError, TemaError } from './errors.js';
import { checkOutput, isCheckingNumerics } from './numerics.js';

/** A reference-counted GPU buffer shared by a tensor and its views. */
class Storage {
  refs = 1;
  constructor(
    readonly buffer: GPUBuffer,
    readonly byteLength: number,
  ) {}

  release(): void {
    if (--this.refs === 0) engine().pool.release(this.buffer);
  }
}

/** A node of the autograd tape: the op that produced `output` and how to push a gradient back. */
export interface GradNode {
  op: string;
  output: Tensor;
  inputs: Tensor[];
  /** Tensors kept alive for the backward pass (views holding their own reference). */
  saved: Tensor[];
  backward: (gradOutput: Tensor, saved: Tensor[]) => (Tensor | null)[];
  freed: boolean;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * An n-dimensional array in a pooled GPU buffer. Tensors are eager: each op records its GPU work
 * at once and returns a new tensor; nothing reaches the CPU until `data()` or `item()` is awaited.
 */
export class Tensor {
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  /** Optional name used in error messages and by optimizers (for example a parameter path). */
  name = '';
  private disposed = false;

  /** Use `empty`, `fromData` and the ops to create tensors. */
  constructor(
    private storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {
    currentScope()?.tensors.push(this);
  }

  static allocate(shape: readonly number[], dtype: DType): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape ${formatShape(shape)}`);
    }
    const bytes = Math.max(4, numel(shape) * BYTES_PER_ELEMENT[dtype]);
    const buffer = engine().pool.acquire(bytes);
    return new Tensor(new Storage(buffer, bytes), shape, dtype);
  }

  get size(): number {
    return numel(this.shape);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** True when no other tensor shares this buffer, so writing into it in place is safe. */
  get isExclusive(): boolean {
    return !this.disposed && this.storage.refs === 1;
  }

  get buffer(): GPUBuffer {
    if (this.disposed) {
      throw new TemaError(`tensor ${this.describe()} is used after dispose()`);
    }
    return this.storage.buffer;
  }

  describe(): string {
    return `${this.name ? `"${this.name}" ` : ''}${this.dtype}${formatShape(this.shape)}`;
  }

  /** Return a view of another shape over the same buffer (no copy); gradients flow through it. */
  reshape(shape: readonly number[]): Tensor {
    const resolved = resolveShape(shape, this.size);
    if (numel(resolved) !== this.size) {
      throw new ShapeError(`reshape: cannot view ${this.describe()} as ${formatShape(shape)}`);
    }
    this.buffer; // reject use after dispose
    this.storage.refs++;
    const view = new Tensor(this.storage, resolved, this.dtype);
    recordOp('reshape', view, [this], [], (g) => [g.reshape(this.shape)]);
    return view;
  }

  /** Return a second handle to the same buffer with its own lifetime, which autograd uses to keep saved inputs. */
  retain(): Tensor {
    this.buffer;
    this.storage.refs++;
    const t = new Tensor(this.storage, this.shape, this.dtype);
    untrack(t);
    return t;
  }

  /** Read the values back to the CPU. */
  async data(): Promise<Float32Array | Int32Array | Uint32Array | Uint16Array> {
    const bytes = this.size * BYTES_PER_ELEMENT[this.dtype];
    const copy = await engine().read(this.buffer, 0, Math.ceil(bytes / 4) * 4);
    return typedArrayFor(this.dtype, copy, 0, this.size);
  }

  /** Read a one-element tensor back as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item() needs one element, ${this.describe()} has ${this.size}`);
    return (await this.data())[0];
  }

  /** Overwrite the values from the CPU (same dtype and element count). */
  write(values: ArrayLike<number>): void {
    if (values.length !== this.size) {
      throw new ShapeError(`write: ${this.describe()} has ${this.size} elements, got ${values.length}`);
    }
    engine().write(this.buffer, 0, toTyped(values, this.dtype));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function resolveShape(shape: readonly number[], size: number): number[] {
  const out = [...shape];
  const free = out.indexOf(-1);
  if (free >= 0) {
    const rest = numel(out.filter((_, i) => i !== free));
    out[free] = rest === 0 ? 0 : size / rest;
  }
  return out;
}

function toTyped(values: ArrayLike<number>, dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'f32':
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case 'i32':
      return values instanceof Int32Array ? values : Int32Array.from(values);
    case 'u32':
      return values instanceof Uint32Array ? values : Uint32Array.from(values);
    case 'f16': {
      // Pad to whole 32-bit words, which writeBuffer requires.
      const out = new Uint16Array(values.length + (values.length % 2));
      out.set(values instanceof Uint16Array ? values : Uint16Array.from(values));
      return out;
    }
  }
}

/** Allocate a tensor with uninitialised contents. */
export function empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return Tensor.allocate(shape, dtype);
}

/** Create a tensor from `values` (row-major). f16 values are given as raw half-precision bits. */
export function fromData(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (values.length !== numel(shape)) {
    throw new ShapeError(`fromData: ${values.length} values do not fill shape ${formatShape(shape)}`);
  }
  const t = Tensor.allocate(shape, dtype);
  if (values.length > 0) t.write(values);
  return t;
}

// ---------------------------------------------------------------- scopes

interface Scope {
  tensors: Tensor[];
  nodes: GradNode[];
}

const scopes: Scope[] = [];

function currentScope(): Scope | undefined {
  return scopes[scopes.length - 1];
}

/** Remove a tensor from the scope that would dispose it (it then lives until disposed by hand). */
export function untrack(t: Tensor): Tensor {
  for (let s = scopes.length - 1; s >= 0; s--) {
    const list = scopes[s].tensors;
    const i = list.lastIndexOf(t);
    if (i >= 0) {
      list.splice(i, 1);
      break;
    }
  }
  return t;
}

function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value instanceof Tensor) out.add(value);
  else if (depth < 3 && Array.isArray(value)) for (const v of value) collectTensors(v, out, depth + 1);
  else if (depth < 3 && value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
  }
}

function closeScope(scope: Scope, keep: Set<Tensor>): void {
  for (const node of scope.nodes) freeNode(node);
  const parent = currentScope();
  for (const t of scope.tensors) {
    if (keep.has(t)) parent?.tensors.push(t);
    else t.dispose();
  }
}

/**
 * Run `fn` and dispose every tensor it created, except those in its return value (a tensor, or
 * arrays and plain objects of them), which move to the enclosing scope. The autograd graph
 * recorded inside is freed too, so call `backward` inside the scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: [], nodes: [] };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    closeScope(scope, new Set());
    throw e;
  }
  scopes.pop();
  const keep = new Set<Tensor>();
  collectTensors(result, keep);
  closeScope(scope, keep);
  return result;
}

/** Run an async `fn` as `tidy` runs a sync one. Scopes of this kind must not overlap in time. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { tensors: [], nodes: [] };
  scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    scopes.splice(scopes.indexOf(scope), 1);
    closeScope(scope, new Set());
    throw e;
  }
  scopes.splice(scopes.indexOf(scope), 1);
  const keep = new Set<Tensor>();
  collectTensors(result, keep);
  closeScope(scope, keep);
  return result;
}

// ---------------------------------------------------------------- autograd

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording anything for autograd. */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

function freeNode(node: GradNode): void {
  if (node.freed) return;
  node.freed = true;
  for (const t of node.saved) t.dispose();
  node.saved = [];
}

/**
 * Record that `output` came from `inputs` through `op`, if any input needs a gradient.
 * `backward` receives d(loss)/d(output) and handles to the `saved` tensors, which stay valid
 * until the backward pass even when the originals are disposed, and returns d(loss)/d(input)
 * for each input (null for inputs without a gradient). Every differentiable op calls this, so it is
 * also where `setDebug({ checkNumerics: true })` records the check of the op's output.
 */
export function recordOp(
  op: string,
  output: Tensor,
  inputs: Tensor[],
  saved: Tensor[],
  backward: (gradOutput: Tensor, saved: Tensor[]) => (Tensor | null)[],
): void {
  // A reshape is a view of values already checked.
  if (op !== 'reshape' && isCheckingNumerics()) checkOutput(op, output.buffer, output.shape, output.dtype);
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return;
  const node: GradNode = { op, output, inputs, saved: saved.map((t) => t.retain()), backward, freed: false };
  output.requiresGrad = true;
  output.node = node;
  currentScope()?.nodes.push(node);
}

/** Kernels autograd needs, installed by the ops module to keep this file free of WGSL. */
interface AutogradKernels {
  /** target += delta, in place. */
  addInto: (target: Tensor, delta: Tensor) => void;
  /** A new tensor a + b. */
  add: (a: Tensor, b: Tensor) => Tensor;
  onesLike: (t: Tensor) => Tensor;
}

let kernels: AutogradKernels | null = null;

export function setAutogradKernels(k: AutogradKernels): void {
  kernels = k;
}

/** existing + delta, in place when `existing` owns its buffer alone; consumes both handles. */
function accumulate(existing: Tensor, delta: Tensor): Tensor {
  if (existing.isExclusive && existing.buffer !== delta.buffer) {
    kernels!.addInto(existing, delta);
    delta.dispose();
    return existing;
  }
  const sum = kernels!.add(existing, delta);
  existing.dispose();
  delta.dispose();
  return sum;
}

/**
 * Back-propagate from `loss` (a one-element tensor unless `gradOutput` is given). Gradients of
 * leaf tensors with `requiresGrad` accumulate into their `.grad`; intermediate gradients and the
 * tensors the graph saved are freed as soon as they are used, and the graph cannot be used twice.
 */
export function backward(loss: Tensor, gradOutput?: Tensor): void {
  if (!loss.node) {
    throw new TemaError(`backward: ${loss.describe()} does not depend on any tensor with requiresGrad`);
  }
  if (!gradOutput && loss.size !== 1) {
    throw new ShapeError(`backward: ${loss.describe()} is not a scalar; pass the gradient of the output`);
  }

  // Topological order of the nodes reachable from the loss.
  const order: GradNode[] = [];
  const seen = new Set<GradNode>();
  const stack: [GradNode, number][] = [[loss.node, 0]];
  seen.add(loss.node);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const child = node.inputs[i].node;
      if (child && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }

  const grads = new Map<Tensor, Tensor>();
  grads.set(loss, gradOutput ? gradOutput.retain() : kernels!.onesLike(loss));
  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k];
    const g = grads.get(node.output);
    if (!g) continue;
    grads.delete(node.output);
    if (node.freed) {
      throw new TemaError(
        `backward: the graph through op "${node.op}" (output ${node.output.describe()}) was already freed ` +
          '(backward twice, or after the tidy scope that recorded it closed?)',
      );
    }
    const returned = noGrad(() => node.backward(g, node.saved));
    if (isCheckingNumerics() && node.op !== 'reshape') {
      for (const gi of returned) if (gi && gi !== g) checkOutput(`${node.op} backward`, gi.buffer, gi.shape, gi.dtype);
    }
    // A backward may pass its incoming gradient through unchanged, even to several inputs:
    // give each use its own handle so that every handle can be disposed on its own.
    const used = new Set<Tensor>();
    const inputGrads = returned.map((gi) => {
      if (!gi) return null;
      if (gi === g || used.has(gi)) return gi.retain();
      used.add(gi);
      return gi;
    });
    g.dispose();
    freeNode(node);
    node.inputs.forEach((input, i) => {
      const gi = inputGrads[i];
      if (!gi) return;
      if (!input.requiresGrad) {
        gi.dispose();
        return;
      }
      if (input.node) {
        const existing = grads.get(input);
        grads.set(input, existing ? accumulate(existing, gi) : gi);
      } else {
        input.grad = untrack(input.grad ? accumulate(input.grad, gi) : gi);
      }
    });
  }
  for (const g of grads.values()) g.dispose();
}
