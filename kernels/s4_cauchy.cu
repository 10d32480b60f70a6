// S4 Cauchy kernel (S4 paper, Gu et al. 2022, Prop. 3 / Lemma C.4; state-spaces/s4
// `cauchy_naive` / `cauchy_mult`).
// CPU twin: crates/seqlab-ssm/src/s4/s4_kernel.rs, `cauchy`.
//
//   conj_pairs = 0:  out[r, j] = Σ_n v[r, n] / (z[j] − w[r, n])
//   conj_pairs = 1:  out[r, j] = Σ_n v/(z − w) + conj(v)/(z − conj(w))
//                              = Σ_n (2Re(v)·z − 2Re(v·conj(w))) / (z² − 2Re(w)·z + |w|²)
//
// (the second form is what the CPU twin and S4 use: one stored mode per conjugate pair).
// Layout (the CPU function's): v, w (rows, N) and z (Lz) as separate re / im arrays, z shared by
// every row; out (rows, Lz) re / im. f32 and f64 instantiations.
//
// Design: one thread per (row, j); a block covers CY_THREADS nodes of one row and stages (v, w)
// tiles of CY_TILE modes in shared memory; one complex division per (mode, node).

#define CY_THREADS 128
#define CY_TILE 256

template <typename T>
__device__ __forceinline__ void cdiv_acc(T ar, T ai, T br, T bi, T& accr, T& acci) {
    // acc += (ar + i·ai) / (br + i·bi)
    const T inv = (T)1 / (br * br + bi * bi);
    accr += (ar * br + ai * bi) * inv;
    acci += (ai * br - ar * bi) * inv;
}

template <typename T>
__device__ void cauchy(const T* __restrict__ v_re, const T* __restrict__ v_im,
                       const T* __restrict__ w_re, const T* __restrict__ w_im,
                       const T* __restrict__ z_re, const T* __restrict__ z_im,
                       T* __restrict__ out_re, T* __restrict__ out_im, int rows, int N, int Lz,
                       int conj_pairs) {
    __shared__ T s_vr[CY_TILE], s_vi[CY_TILE], s_wr[CY_TILE], s_wi[CY_TILE];
    const int r = blockIdx.y;
    const int j = blockIdx.x * CY_THREADS + threadIdx.x;
    if (r >= rows) return;
    const T zr = j < Lz ? z_re[j] : (T)0, zi = j < Lz ? z_im[j] : (T)0;
    // z² for the conjugate-pair form.
    const T z2r = zr * zr - zi * zi, z2i = 2 * zr * zi;
    T accr = 0, acci = 0;
    for (int n0 = 0; n0 < N; n0 += CY_TILE) {
        const int m = min(CY_TILE, N - n0);
        for (int i = threadIdx.x; i < m; i += CY_THREADS) {
            const size_t k = (size_t)r * N + n0 + i;
            s_vr[i] = v_re[k];
            s_vi[i] = v_im[k];
            s_wr[i] = w_re[k];
            s_wi[i] = w_im[k];
        }
        __syncthreads();
        if (j < Lz) {
            for (int i = 0; i < m; ++i) {
                const T vr = s_vr[i], vi = s_vi[i], wr = s_wr[i], wi = s_wi[i];
                if (conj_pairs) {
                    const T num_r = 2 * vr * zr - 2 * (vr * wr + vi * wi);
                    const T num_i = 2 * vr * zi;
                    const T den_r = z2r - 2 * wr * zr + (wr * wr + wi * wi);
                    const T den_i = z2i - 2 * wr * zi;
                    cdiv_acc(num_r, num_i, den_r, den_i, accr, acci);
                } else {
                    cdiv_acc(vr, vi, zr - wr, zi - wi, accr, acci);
                }
            }
        }
        __syncthreads();
    }
    if (j < Lz) {
        out_re[(size_t)r * Lz + j] = accr;
        out_im[(size_t)r * Lz + j] = acci;
    }
}

// Grid: (ceil(Lz / CY_THREADS), rows) blocks of CY_THREADS threads.
extern "C" __global__ void __launch_bounds__(CY_THREADS)
s4_cauchy_f32(const float* v_re, const float* v_im, const float* w_re, const float* w_im,
              const float* z_re, const float* z_im, float* out_re, float* out_im, int rows, int N,
              int Lz, int conj_pairs) {
    cauchy(v_re, v_im, w_re, w_im, z_re, z_im, out_re, out_im, rows, N, Lz, conj_pairs);
}
extern "C" __global__ void __launch_bounds__(CY_THREADS)
s4_cauchy_f64(const double* v_re, const double* v_im, const double* w_re, const double* w_im,
              const double* z_re, const double* z_im, double* out_re, double* out_im, int rows,
              int N, int Lz, int conj_pairs) {
    cauchy(v_re, v_im, w_re, w_im, z_re, z_im, out_re, out_im, rows, N, Lz, conj_pairs);
}
