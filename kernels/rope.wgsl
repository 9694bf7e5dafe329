// Rotary position embedding on rows of [rows, heads, headDim] where row r has position
// start + r % seqLen. Two layouts of the rotated pairs:
//   halves (Hugging Face "rotate_half"): pair (i, i + rotaryDim / 2)
//   pairs  (llama2.c, GGUF): pair (2i, 2i + 1)
// Pair i rotates by angle pos * invFreq[i]; invFreq comes from the CPU so that scaled variants
// (Llama 3) need no kernel change. sign = -1 rotates backwards, which is the gradient.
// Reference: ropeReference in packages/tensor/src/ops/rope.ts.

struct Params {
  rows: u32,
  heads: u32,
  headDim: u32,
  rotaryDim: u32,
  seqLen: u32,
  start: u32,
  interleaved: u32,
  sign: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> InvFreq: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = p.rotaryDim / 2u;
  let i = gid.x + gid.y * nwg.x * 64u;
  let perRow = p.heads * p.headDim;
  if (i >= p.rows * perRow) {
    return;
  }
  let row = i / perRow;
  let d = i % p.headDim;
  let headBase = i - d;
  if (d >= p.rotaryDim) {
    Y[i] = X[i];
    return;
  }
  var pairIndex: u32;
  var partner: u32;
  var first: bool;
  if (p.interleaved != 0u) {
    pairIndex = d / 2u;
    first = (d % 2u) == 0u;
    partner = select(d - 1u, d + 1u, first);
  } else {
    pairIndex = d % half;
    first = d < half;
    partner = select(d - half, d + half, first);
  }
  let pos = f32(p.start + row % p.seqLen);
  let angle = pos * InvFreq[pairIndex];
  let c = cos(angle);
  let s = sin(angle) * p.sign;
  let x = X[headBase + d];
  let y = X[headBase + partner];
  // (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
  if (first) {
    Y[i] = x * c - y * s;
  } else {
    Y[i] = x * c + y * s;
  }
}
