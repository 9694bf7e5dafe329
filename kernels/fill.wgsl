// Out[offset + i] = value for i < n; the u32 form writes the same bits for integer tensors.

struct Params {
  n: u32,
  offset: u32,
  bits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) {
    return;
  }
  Out[p.offset + i] = p.bits;
}
