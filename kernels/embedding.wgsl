// Embedding gather Out[n, :] = W[ids[n], :] and its gradient. The gradient gives each table
// row to one invocation, which scans the ids in order: deterministic, with no atomics, at the
// cost of O(vocab * tokens) reads; fine while the embedding stays frozen under LoRA.
// Reference: embeddingReference in packages/tensor/src/ops/embedding.ts.

struct Params {
  n: u32,
  dim: u32,
  vocab: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Bindings: W, Ids -> Out.
@group(0) @binding(1) var<storage, read> gW: array<f32>;
@group(0) @binding(2) var<storage, read> gIds: array<i32>;
@group(0) @binding(3) var<storage, read_write> gOut: array<f32>;

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n * p.dim) {
    return;
  }
  let row = i / p.dim;
  let id = gIds[row];
  if (id < 0 || u32(id) >= p.vocab) {
    gOut[i] = 0.0;
    return;
  }
  gOut[i] = gW[u32(id) * p.dim + i % p.dim];
}

// Bindings: G, Ids -> dW.
@group(0) @binding(1) var<storage, read> sG: array<f32>;
@group(0) @binding(2) var<storage, read> sIds: array<i32>;
@group(0) @binding(3) var<storage, read_write> sDW: array<f32>;

@compute @workgroup_size(256)
fn scatter_add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.vocab * p.dim) {
    return;
  }
  let v = i32(i / p.dim);
  let d = i % p.dim;
  var s = 0.0;
  for (var r = 0u; r < p.n; r = r + 1u) {
    if (sIds[r] == v) {
      s = s + sG[r * p.dim + d];
    }
  }
  sDW[i] = s;
}
