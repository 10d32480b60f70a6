// mamba_ssm's selective-scan backward (f32) behind a C entry point: see scan_capi.h.
#include "selective_scan_bwd_kernel.cuh"
#include "scan_capi.h"

/// du, dδ, dA, dB, dC (and dD, dz, dδ_bias when D, z, δ_bias are given) from dout, the forward's
/// `out` (pre-gate, needed with z) and chunk states `x`, as mamba_ssm's `selective_scan_bwd`
/// computes them without recomputing out_z. Like it, zeroes the atomically accumulated outputs
/// first, on the same stream. Returns 0 or a CUDA error code.
extern "C" int seqlab_mamba_ssm_bwd(const MambaSsmScan *s, void *stream, char *err, int err_len) {
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    SSMParamsBwd p;
    mamba_ssm_fwd_params(*s, p);
    // As set_ssm_params_bwd: `out` is dout when there is no z, and no out_z is recomputed.
    if (!s->z) p.out_ptr = reinterpret_cast<void *>(s->dout);
    p.out_z_ptr = nullptr;
    const uint64_t len = s->seqlen, n = s->dstate, bdl = uint64_t(s->dim) * len;
    auto ptr = [](devptr v) { return reinterpret_cast<void *>(v); };
    p.dout_ptr = ptr(s->dout);
    p.du_ptr = ptr(s->du);
    p.ddelta_ptr = ptr(s->ddelta);
    p.dA_ptr = ptr(s->da);
    p.dB_ptr = ptr(s->db);
    p.dC_ptr = ptr(s->dc);
    p.dD_ptr = s->d ? ptr(s->dd) : nullptr;
    p.dz_ptr = s->z ? ptr(s->dz) : nullptr;
    p.ddelta_bias_ptr = s->delta_bias ? ptr(s->ddelta_bias) : nullptr;
    p.dout_batch_stride = p.du_batch_stride = p.ddelta_batch_stride = p.dz_batch_stride = bdl;
    p.dout_d_stride = p.du_d_stride = p.ddelta_d_stride = p.dz_d_stride = len;
    p.dA_d_stride = n;
    p.dA_dstate_stride = 1;
    p.dB_batch_stride = p.dC_batch_stride = n * len;
    p.dB_group_stride = p.dC_group_stride = n * len;
    p.dB_dstate_stride = p.dC_dstate_stride = len;
    const size_t f = sizeof(float);
    seqlab_shim_check(cudaMemsetAsync(p.dA_ptr, 0, size_t(s->dim) * n * f, st));
    seqlab_shim_check(cudaMemsetAsync(p.dB_ptr, 0, size_t(s->batch) * n * len * f, st));
    seqlab_shim_check(cudaMemsetAsync(p.dC_ptr, 0, size_t(s->batch) * n * len * f, st));
    if (p.dD_ptr) seqlab_shim_check(cudaMemsetAsync(p.dD_ptr, 0, size_t(s->dim) * f, st));
    if (p.ddelta_bias_ptr) {
        seqlab_shim_check(cudaMemsetAsync(p.ddelta_bias_ptr, 0, size_t(s->dim) * f, st));
    }
    if (mamba_ssm_take_error(err, err_len) == 0) selective_scan_bwd_cuda<float, float>(p, st);
    return mamba_ssm_take_error(err, err_len);
}
