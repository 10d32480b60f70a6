// S4's causal long convolution (Gu et al. 2022, eq. (5) without the D term) and its gradients.
// CPU twins: crates/seqlab-ssm/src/s4/fft_conv.rs, `direct_conv` (forward) and `fft_conv_bwd`.
//
//   y[b, h, t]  = Σ_{s=0}^{t} K[h, s]·u[b, h, t−s]
//   ∂u[b, h, s] = Σ_{j=0}^{L−1−s} K[h, j]·g[b, h, s+j]
//   ∂K[h, j]    = Σ_b Σ_{s=0}^{L−1−j} u[b, h, s]·g[b, h, s+j]
//
// Both gradients are the forward's causal convolution again, on reversed sequences:
// rev(∂u[b, h]) = K[h] ∗ rev(g[b, h]) and rev(∂K[h]) = Σ_b u[b, h] ∗ rev(g[b, h]).
// Layout (the CPU functions'): u, g, y, ∂u (B, H, L) and K, ∂K (H, L), row-major. f32 and f64.
//
// Design: direct O(L²) summation, exact up to rounding (the CPU uses FFTs of size 2L; there is
// no FFT library here). One block per (row, tile of LC_THREADS output positions), one output
// per thread. The summation index s walks in tiles of LC_TILE: the block stages a[s0, s0+TILE)
// and the window of x it needs in shared memory, zero-filled outside [0, L), so that t − s < 0
// contributes 0 (causality) without a branch; tiles past the block's last t are never visited.
// Grid: (rows, ceil(L / LC_THREADS)) with rows = B·H (forward, ∂u) or H (∂K).

#define LC_THREADS 256
#define LC_TILE 256

// x[i] of a row of length L, read from the end when `rev`; 0 outside [0, L).
template <typename T>
__device__ __forceinline__ T row_at(const T* __restrict__ x, int i, int L, bool rev) {
    if (i < 0 || i >= L) return T(0);
    return x[rev ? L - 1 - i : i];
}

// acc += Σ_{s=0}^{t} a[s]·x[t−s] for this thread's t = t0 + threadIdx.x (x reversed if rev_x).
// s_a holds LC_TILE values, s_x LC_THREADS + LC_TILE − 1.
template <typename T>
__device__ void conv_accumulate(const T* __restrict__ a, const T* __restrict__ x, int L,
                                bool rev_x, int t0, T* s_a, T* s_x, T& acc) {
    const int s_end = min(t0 + LC_THREADS, L);
    for (int s0 = 0; s0 < s_end; s0 += LC_TILE) {
        // x[t − s] for t ∈ [t0, t0 + LC_THREADS) and s ∈ [s0, s0 + LC_TILE) starts at `base`.
        const int base = t0 - s0 - (LC_TILE - 1);
        for (int i = threadIdx.x; i < LC_TILE; i += LC_THREADS)
            s_a[i] = row_at(a, s0 + i, L, false);
        for (int i = threadIdx.x; i < LC_THREADS + LC_TILE - 1; i += LC_THREADS)
            s_x[i] = row_at(x, base + i, L, rev_x);
        __syncthreads();
        // x[t − s0 − j] = s_x[threadIdx.x + LC_TILE − 1 − j].
        const T* xw = s_x + threadIdx.x + (LC_TILE - 1);
#pragma unroll 8
        for (int j = 0; j < LC_TILE; ++j) acc += s_a[j] * xw[-j];
        __syncthreads();
    }
}

// mode 0: y = K ∗ u; mode 1: ∂u from g (written reversed); mode 2: ∂K from u and g (summed
// over the batch, written reversed).
template <typename T>
__device__ void long_conv(const T* __restrict__ u, const T* __restrict__ k,
                          const T* __restrict__ g, T* __restrict__ out, int B, int H, int L,
                          int mode) {
    __shared__ T s_a[LC_TILE];
    __shared__ T s_x[LC_THREADS + LC_TILE - 1];
    const int row = blockIdx.x;
    const int t0 = blockIdx.y * LC_THREADS;
    const int t = t0 + threadIdx.x;
    T acc = 0;
    if (mode == 2) {
        for (int b = 0; b < B; ++b) {
            const size_t r = ((size_t)b * H + row) * L;
            conv_accumulate(u + r, g + r, L, true, t0, s_a, s_x, acc);
        }
    } else {
        const T* kh = k + (size_t)(row % H) * L;
        conv_accumulate(kh, (mode == 0 ? u : g) + (size_t)row * L, L, mode == 1, t0, s_a, s_x,
                        acc);
    }
    if (t < L) out[(size_t)row * L + (mode == 0 ? t : L - 1 - t)] = acc;
}

extern "C" __global__ void __launch_bounds__(LC_THREADS)
long_conv_fwd_f32(const float* u, const float* k, float* y, int B, int H, int L) {
    long_conv(u, k, (const float*)nullptr, y, B, H, L, 0);
}
extern "C" __global__ void __launch_bounds__(LC_THREADS)
long_conv_fwd_f64(const double* u, const double* k, double* y, int B, int H, int L) {
    long_conv(u, k, (const double*)nullptr, y, B, H, L, 0);
}
extern "C" __global__ void __launch_bounds__(LC_THREADS)
long_conv_bwd_du_f32(const float* k, const float* g, float* du, int B, int H, int L) {
    long_conv((const float*)nullptr, k, g, du, B, H, L, 1);
}
extern "C" __global__ void __launch_bounds__(LC_THREADS)
long_conv_bwd_du_f64(const double* k, const double* g, double* du, int B, int H, int L) {
    long_conv((const double*)nullptr, k, g, du, B, H, L, 1);
}
extern "C" __global__ void __launch_bounds__(LC_THREADS)
long_conv_bwd_dk_f32(const float* u, const float* g, float* dk, int B, int H, int L) {
    long_conv(u, (const float*)nullptr, g, dk, B, H, L, 2);
}
extern "C" __global__ void __launch_bounds__(LC_THREADS)
long_conv_bwd_dk_f64(const double* u, const double* g, double* dk, int B, int H, int L) {
    long_conv(u, (const double*)nullptr, g, dk, B, H, L, 2);
}
