// One recurrent step of the selective SSM (Mamba's step mode, `selective_state_update_ref`),
// with heads and groups as in Mamba-2.
// CPU twin: crates/seqlab-ssm/src/state_update.rs, `selective_state_update`.
//
//   Δ = softplus(dt + dt_bias)  (or dt + dt_bias)
//   state ← state ⊙ exp(Δ A) + (Δ B) x          per (batch b, head h, channel p, state n)
//   out = Σ_n state·C + D x,   out ·= SiLU(z)
//
// Layout (the CPU function's): state (batch, nheads, headdim, dstate), f32; x, dt, z, out
// (batch, nheads, headdim); A (nheads, headdim, dstate); B, C (batch, ngroups, dstate), group g
// serving heads g·nheads/ngroups …; D, dt_bias (nheads, headdim). A, D, dt_bias are f32; x, dt,
// B, C, z, out may be f32, f16 or bf16 (f32 arithmetic; the state stays f32).
//
// Design: one warp per (batch, head, channel) row; lanes stride over n and the warp sums Σ state·C
// with shuffles, so any dstate works and the state reads are coalesced. exp via exp2f on A·log2 e.

#include "common.cuh"

#define SU_THREADS 128

template <typename T>
__device__ void state_update(float* __restrict__ state, const T* __restrict__ x,
                             const T* __restrict__ dt, const float* __restrict__ A,
                             const T* __restrict__ B, const T* __restrict__ C,
                             const float* __restrict__ D, const T* __restrict__ z,
                             const float* __restrict__ dt_bias, T* __restrict__ out, int batch,
                             int nheads, int headdim, int dstate, int ngroups, int dt_softplus) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    const int hp_count = nheads * headdim;
    if (row >= batch * hp_count) return;  // whole warp leaves together
    const int bi = row / hp_count, hp = row % hp_count;
    const int g = (hp / headdim) / (nheads / ngroups);
    const float raw = to_f32(dt[row]) + (dt_bias ? dt_bias[hp] : 0.f);
    const float delta = dt_softplus ? softplus_f(raw) : raw;
    const float xv = to_f32(x[row]);
    const float dx = delta * xv;
    float* st = state + (size_t)row * dstate;
    const float* a = A + (size_t)hp * dstate;
    const size_t bc = ((size_t)bi * ngroups + g) * dstate;
    float y = 0.f;
    for (int n = lane; n < dstate; n += 32) {
        const float s = st[n] * exp2f(delta * (a[n] * LOG2E_F)) + to_f32(B[bc + n]) * dx;
        st[n] = s;
        y += s * to_f32(C[bc + n]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) y += __shfl_xor_sync(0xffffffffu, y, o);
    if (lane == 0) {
        if (D) y += xv * D[hp];
        if (z) y *= silu_f(to_f32(z[row]));
        store_f32(&out[row], y);
    }
}

#define SU_PARAMS(T)                                                                            \
    float *state, const T *x, const T *dt, const float *A, const T *B, const T *C, const float *D, \
        const T *z, const float *dt_bias, T *out, int batch, int nheads, int headdim, int dstate,  \
        int ngroups, int dt_softplus
#define SU_ARGS state, x, dt, A, B, C, D, z, dt_bias, out, batch, nheads, headdim, dstate, ngroups, dt_softplus

// Grid: ceil(batch·nheads·headdim / (SU_THREADS/32)) blocks of SU_THREADS threads.
extern "C" __global__ void __launch_bounds__(SU_THREADS)
selective_state_update_f32(SU_PARAMS(float)) { state_update(SU_ARGS); }
extern "C" __global__ void __launch_bounds__(SU_THREADS)
selective_state_update_f16(SU_PARAMS(f16_t)) { state_update(SU_ARGS); }
extern "C" __global__ void __launch_bounds__(SU_THREADS)
selective_state_update_bf16(SU_PARAMS(bf16_t)) { state_update(SU_ARGS); }
