// A C entry point to mamba_ssm's selective scan (csrc/selective_scan, fetched by build.sh) for
// the side-by-side benchmark in crates/seqlab-ssm/benches/cuda_scan.rs, which loads the library
// and passes device buffers it allocated. f32 inputs and weights, real A, B and C
// input-dependent with one group, all tensors contiguous:
//   u, delta, z, out, out_z, dout, du, ddelta, dz  (batch, dim, seqlen)
//   A, dA (dim, dstate);  B, C, dB, dC (batch, 1, dstate, seqlen);  D, delta_bias, dD (dim)
//   x  (batch, dim, ceil(seqlen / 2048), dstate, 2): the chunk states the forward saves.
// Keep in step with `MambaSsmScan` in cuda_scan.rs.
#pragma once
#include <stdint.h>

#include <cstdio>
#include <cstring>

#include "selective_scan.h"
#include "shim/torch_shim.h"

typedef uint64_t devptr;  // a CUdeviceptr

struct MambaSsmScan {
    int32_t batch, dim, seqlen, dstate, delta_softplus;
    devptr u, delta, a, b, c, d, z, delta_bias;  // d, z, delta_bias: 0 = absent
    devptr out, x, out_z;                        // out_z: when z
    devptr dout, du, ddelta, da, db, dc, dd, dz, ddelta_bias;
};

/// The forward parameters, as mamba_ssm's `set_ssm_params_fwd` sets them for contiguous tensors.
inline void mamba_ssm_fwd_params(const MambaSsmScan &s, SSMParamsBase &p) {
    memset(&p, 0, sizeof(p));
    const uint64_t len = s.seqlen, n = s.dstate, bdl = uint64_t(s.dim) * len;
    p.batch = s.batch;
    p.dim = s.dim;
    p.seqlen = s.seqlen;
    p.dstate = s.dstate;
    p.n_groups = 1;
    p.n_chunks = (s.seqlen + 2047) / 2048;
    p.dim_ngroups_ratio = s.dim;
    p.is_variable_B = p.is_variable_C = true;
    p.delta_softplus = s.delta_softplus != 0;
    p.A_d_stride = n;
    p.A_dstate_stride = 1;
    p.B_batch_stride = p.C_batch_stride = n * len;
    p.B_group_stride = p.C_group_stride = n * len;
    p.B_dstate_stride = p.C_dstate_stride = len;
    p.u_batch_stride = p.delta_batch_stride = p.z_batch_stride = bdl;
    p.out_batch_stride = p.out_z_batch_stride = bdl;
    p.u_d_stride = p.delta_d_stride = p.z_d_stride = len;
    p.out_d_stride = p.out_z_d_stride = len;
    auto ptr = [](devptr v) { return reinterpret_cast<void *>(v); };
    p.A_ptr = ptr(s.a);
    p.B_ptr = ptr(s.b);
    p.C_ptr = ptr(s.c);
    p.D_ptr = ptr(s.d);
    p.u_ptr = ptr(s.u);
    p.delta_ptr = ptr(s.delta);
    p.delta_bias_ptr = ptr(s.delta_bias);
    p.out_ptr = ptr(s.out);
    p.x_ptr = ptr(s.x);
    p.z_ptr = ptr(s.z);
    p.out_z_ptr = s.z ? ptr(s.out_z) : nullptr;
}

/// 0, or the CUDA error the launch recorded, with its text in `err`.
inline int mamba_ssm_take_error(char *err, int err_len) {
    cudaError_t e = seqlab_shim_error();
    seqlab_shim_error() = cudaSuccess;
    if (e != cudaSuccess && err && err_len > 0) {
        snprintf(err, err_len, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    }
    return int(e);
}
