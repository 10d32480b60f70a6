// S4D Vandermonde kernel (S4D paper, Gu et al. 2022, eq. (6); state-spaces/s4 `log_vandermonde`).
// CPU twin: crates/seqlab-ssm/src/s4/s4d_kernel.rs, `s4d_vandermonde_kernel`.
//
//   K[h, l] = 2·Re Σ_n c[h, n]·exp(x[h, n]·l),   l = 0 … L−1
//
// where x = log dA (Δ·A for ZOH) and c = C̄ (C·B·(exp(ΔA) − 1)/A for ZOH), one entry per
// conjugate pair. Layout (the CPU function's): x and c as separate re / im arrays (H, N)
// row-major; out (H, L). f32 and f64 instantiations.
//
// Design: one thread per (h, l); a block covers VD_THREADS consecutive l of one h and stages
// (x, c) tiles of VD_TILE modes in shared memory. exp(x·l) is evaluated directly (no z^l
// recurrence, so no drift along l); in the f32 kernel the phase Im(x)·l is formed and reduced
// modulo 2π in f64, because for l in the thousands the f32 product alone loses the phase.

#define VD_THREADS 128
#define VD_TILE 256
#define TWO_PI 6.283185307179586

__device__ __forceinline__ void phase_sincos(float xi, int l, float* s, float* c) {
    double th = (double)xi * (double)l;
    th -= TWO_PI * rint(th * (1.0 / TWO_PI));
    sincosf((float)th, s, c);
}
__device__ __forceinline__ void phase_sincos(double xi, int l, double* s, double* c) {
    sincos(xi * (double)l, s, c);
}

template <typename T>
__device__ void vandermonde(const T* __restrict__ x_re, const T* __restrict__ x_im,
                            const T* __restrict__ c_re, const T* __restrict__ c_im,
                            T* __restrict__ out, int H, int N, int L) {
    __shared__ T s_xr[VD_TILE], s_xi[VD_TILE], s_cr[VD_TILE], s_ci[VD_TILE];
    const int h = blockIdx.y;
    const int l = blockIdx.x * VD_THREADS + threadIdx.x;
    if (h >= H) return;
    T acc = 0;
    for (int n0 = 0; n0 < N; n0 += VD_TILE) {
        const int m = min(VD_TILE, N - n0);
        for (int i = threadIdx.x; i < m; i += VD_THREADS) {
            const size_t k = (size_t)h * N + n0 + i;
            s_xr[i] = x_re[k];
            s_xi[i] = x_im[k];
            s_cr[i] = c_re[k];
            s_ci[i] = c_im[k];
        }
        __syncthreads();
        if (l < L) {
            for (int i = 0; i < m; ++i) {
                T s, c;
                phase_sincos(s_xi[i], l, &s, &c);
                const T mag = exp(s_xr[i] * (T)l);
                acc += mag * (s_cr[i] * c - s_ci[i] * s);
            }
        }
        __syncthreads();
    }
    if (l < L) out[(size_t)h * L + l] = 2 * acc;
}

// Grid: (ceil(L / VD_THREADS), H) blocks of VD_THREADS threads.
extern "C" __global__ void __launch_bounds__(VD_THREADS)
s4d_vandermonde_f32(const float* x_re, const float* x_im, const float* c_re, const float* c_im,
                    float* out, int H, int N, int L) {
    vandermonde(x_re, x_im, c_re, c_im, out, H, N, L);
}
extern "C" __global__ void __launch_bounds__(VD_THREADS)
s4d_vandermonde_f64(const double* x_re, const double* x_im, const double* c_re, const double* c_im,
                    double* out, int H, int N, int L) {
    vandermonde(x_re, x_im, c_re, c_im, out, H, N, L);
}
