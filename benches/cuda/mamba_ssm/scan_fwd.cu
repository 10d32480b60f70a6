// mamba_ssm's selective-scan forward (f32) behind a C entry point: see scan_capi.h.
#include "selective_scan_fwd_kernel.cuh"
#include "scan_capi.h"

/// out (and out_z when z) and the chunk states x, as mamba_ssm's `selective_scan_fwd` computes
/// them; launched on `stream` (a CUstream / cudaStream_t). Returns 0 or a CUDA error code.
extern "C" int seqlab_mamba_ssm_fwd(const MambaSsmScan *s, void *stream, char *err, int err_len) {
    SSMParamsBase p;
    mamba_ssm_fwd_params(*s, p);
    selective_scan_fwd_cuda<float, float>(p, static_cast<cudaStream_t>(stream));
    return mamba_ssm_take_error(err, err_len);
}
