// Strided 2-D copy of 32-bit elements: Out[dstOffset + r * dstStride + c] (+)= In[srcOffset + r * srcStride + c]
// for r < rows, c < cols. Slicing columns, concatenation and their gradients are all this copy.

struct Params {
  rows: u32,
  cols: u32,
  srcOffset: u32,
  srcStride: u32,
  dstOffset: u32,
  dstStride: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> In: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.rows * p.cols) {
    return;
  }
  let r = i / p.cols;
  let c = i % p.cols;
  let d = p.dstOffset + r * p.dstStride + c;
  let v = In[p.srcOffset + r * p.srcStride + c];
  if (p.accumulate != 0u) {
    Out[d] = Out[d] + v;
  } else {
    Out[d] = v;
  }
}
