// Inverted dropout with a counter-based generator: element i keeps its value (scaled by
// 1 / keep) when hash(seed, offset + i) / 2^32 < keep. The mask is a pure function of
// (seed, offset, i), so the backward pass regenerates it instead of storing it, and a resumed
// run draws the same masks. The hash is the PCG output function applied twice (an integer
// hash, not a cryptographic one). Reference: dropoutReference in packages/tensor/src/ops/dropout.ts.

struct Params {
  n: u32,
  seed: u32,
  offset: u32,
  threshold: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) {
    return;
  }
  let r = pcg(pcg(p.offset + i) ^ p.seed);
  if (r < p.threshold) {
    Y[i] = X[i] * p.scale;
  } else {
    Y[i] = 0.0;
  }
}
