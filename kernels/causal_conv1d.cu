// Mamba's depthwise causal conv1d: forward, backward and the one-token update.
// CPU twins: crates/seqlab-ssm/src/causal_conv1d.rs, `causal_conv1d_fwd`, `causal_conv1d_bwd`,
// `causal_conv1d_update`.
//
// For channel d of row b, with the input extended to the left by the K−1 values of the initial
// state (zeros when absent):
//   p_t = bias_d + Σ_{k<K} w_{d,k} · x_{t−(K−1)+k},        out_t = SiLU(p_t) if silu else p_t
// With seq_idx (packed rows) input s feeds output t only if seq_idx does not change between s and
// t (the initial state belongs to the first document). Backward, with g_t = ∂ℒ/∂out_t·SiLU′(p_t):
//   ∂x_s = Σ_k w_k g_{s+(K−1)−k},   ∂w_k = Σ_{b,t} g_t x_{t−(K−1)+k},   ∂bias = Σ_{b,t} g_t.
// Update (step mode), per token: out = act(bias + Σ_k w_k·[state, x_t]_{last K}); the state
// (batch, dim, S ≥ K−1), oldest first, drops its oldest entry and appends x_t.
//
// Layout (the CPU functions'): x, out, dout, dx (batch, dim, len); weight (dim, K); bias (dim);
// initial_state (batch, dim, K−1); seq_idx (batch, len) int32; conv_state (batch, dim, S).
// Forward and update take f32, f16 or bf16 x/weight/bias/out (f32 arithmetic); backward is f32.
// ∂w and ∂bias are accumulated with atomics (per block: warp sums first): zero them first.

#include "common.cuh"

#define CC_THREADS 128

// Pre-activation p_t of one row. `seq` is the row's seq_idx (or null), `init` its K−1 state
// entries (or null).
template <typename T>
__device__ __forceinline__ float conv_pre(const T* x, const T* init, const T* w, float bias,
                                          const int* seq, int t, int K) {
    float acc = bias;
    bool alive = true;  // no document change between the input and t so far
    for (int k = K - 1; k >= 0; --k) {
        const int s = t - (K - 1) + k;
        if (s < t && s >= 0 && seq) alive = alive && seq[s] == seq[s + 1];
        if (!alive) break;
        float v;
        if (s >= 0) v = to_f32(x[s]);
        else if (init) v = to_f32(init[s + K - 1]);
        else break;
        acc += to_f32(w[k]) * v;
    }
    return acc;
}

template <typename T>
__device__ void conv_fwd(const T* __restrict__ x, const T* __restrict__ weight,
                         const T* __restrict__ bias, const T* __restrict__ initial_state,
                         const int* __restrict__ seq_idx, T* __restrict__ out, int batch, int dim,
                         int len, int K, int silu) {
    const int row = blockIdx.y;
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= batch * dim || t >= len) return;
    const int bi = row / dim, d = row % dim;
    const float p = conv_pre(x + (size_t)row * len,
                             initial_state ? initial_state + (size_t)row * (K - 1) : (const T*)0,
                             weight + (size_t)d * K, bias ? to_f32(bias[d]) : 0.f,
                             seq_idx ? seq_idx + (size_t)bi * len : (const int*)0, t, K);
    store_f32(&out[(size_t)row * len + t], silu ? silu_f(p) : p);
}

// Grid: (ceil(len / CC_THREADS), batch·dim) blocks of CC_THREADS threads.
extern "C" __global__ void __launch_bounds__(CC_THREADS)
causal_conv1d_fwd_f32(const float* x, const float* weight, const float* bias, const float* initial_state,
                      const int* seq_idx, float* out, int batch, int dim, int len, int K, int silu) {
    conv_fwd(x, weight, bias, initial_state, seq_idx, out, batch, dim, len, K, silu);
}
extern "C" __global__ void __launch_bounds__(CC_THREADS)
causal_conv1d_fwd_f16(const f16_t* x, const f16_t* weight, const f16_t* bias, const f16_t* initial_state,
                      const int* seq_idx, f16_t* out, int batch, int dim, int len, int K, int silu) {
    conv_fwd(x, weight, bias, initial_state, seq_idx, out, batch, dim, len, K, silu);
}
extern "C" __global__ void __launch_bounds__(CC_THREADS)
causal_conv1d_fwd_bf16(const bf16_t* x, const bf16_t* weight, const bf16_t* bias, const bf16_t* initial_state,
                       const int* seq_idx, bf16_t* out, int batch, int dim, int len, int K, int silu) {
    conv_fwd(x, weight, bias, initial_state, seq_idx, out, batch, dim, len, K, silu);
}


// Backward. Thread j of row (b, d) handles position s = j − (K−1) ∈ [−(K−1), len): as an input it
// computes ∂x_s (s ≥ 0) or ∂initial_state (s < 0); as an output (s ≥ 0) it adds g_s·x to ∂w and
// g_s to ∂bias. Grid: (ceil((len + K − 1) / CC_THREADS), batch·dim). K ≤ 32.
extern "C" __global__ void __launch_bounds__(CC_THREADS)
causal_conv1d_bwd_f32(const float* __restrict__ x, const float* __restrict__ weight,
                      const float* __restrict__ bias, const float* __restrict__ initial_state,
                      const int* __restrict__ seq_idx, const float* __restrict__ dout,
                      float* __restrict__ dx, float* __restrict__ dweight,
                      float* __restrict__ dbias, float* __restrict__ dinitial_state, int batch,
                      int dim, int len, int K, int silu) {
    __shared__ float s_dw[32 + 1];  // ∂w_k, then ∂bias at index K
    const int row = blockIdx.y;
    if (row >= batch * dim) return;
    const int bi = row / dim, d = row % dim;
    const int s = (int)(blockIdx.x * blockDim.x + threadIdx.x) - (K - 1);
    const bool active = s < len;
    const float* xr = x + (size_t)row * len;
    const float* init = initial_state ? initial_state + (size_t)row * (K - 1) : (const float*)0;
    const float* w = weight + (size_t)d * K;
    const float b = bias ? bias[d] : 0.f;
    const int* seq = seq_idx ? seq_idx + (size_t)bi * len : (const int*)0;
    const float* gr = dout + (size_t)row * len;
    for (int i = threadIdx.x; i <= K; i += blockDim.x) s_dw[i] = 0.f;
    __syncthreads();
    // g_t = dout_t · SiLU′(p_t).
    auto g_at = [&](int t) -> float {
        const float go = gr[t];
        return silu ? go * silu_grad_f(conv_pre(xr, init, w, b, seq, t, K)) : go;
    };
    if (active) {
        // As an input: outputs t = s + (K−1) − k for k = K−1 … 0 (t = s first, then later ones).
        float acc = 0.f;
        const int lo = s < 0 ? 0 : s;  // first position whose document is checked
        for (int k = K - 1; k >= 0; --k) {
            const int t = s + (K - 1) - k;
            if (t >= len) break;
            if (t < 0) continue;  // s < 0: outputs before position 0 do not exist
            if (seq && t > lo && seq[t] != seq[t - 1]) break;  // a document starts in (s, t]
            acc += w[k] * g_at(t);
        }
        if (s >= 0) dx[(size_t)row * len + s] = acc;
        else if (dinitial_state) dinitial_state[(size_t)row * (K - 1) + s + K - 1] = acc;
    }
    // As an output: contributions to ∂w and ∂bias.
    float gs = 0.f;
    if (active && s >= 0) gs = g_at(s);
    for (int k = 0; k < K; ++k) {
        float v = 0.f;
        if (active && s >= 0) {
            // Input of tap k for output s, if it feeds s.
            const int src = s - (K - 1) + k;
            bool alive = true;
            if (seq) {
                const int lo = src < 0 ? 0 : src;
                for (int q = lo + 1; q <= s && alive; ++q) alive = seq[q] == seq[q - 1];
            }
            if (alive) {
                if (src >= 0) v = xr[src];
                else if (init) v = init[src + K - 1];
            }
        }
        const float c = warp_sum(gs * v);
        if ((threadIdx.x & 31) == 0) atomicAdd(&s_dw[k], c);
    }
    const float cb = warp_sum(gs);
    if ((threadIdx.x & 31) == 0) atomicAdd(&s_dw[K], cb);
    __syncthreads();
    for (int k = threadIdx.x; k <= K; k += blockDim.x) {
        if (k < K) atomicAdd(&dweight[(size_t)d * K + k], s_dw[k]);
        else if (dbias) atomicAdd(&dbias[d], s_dw[K]);
    }
}

// One-token update (step mode): one thread per (batch, channel) row, tokens in order.
// Grid: (ceil(batch·dim / CC_THREADS)) blocks of CC_THREADS threads.
template <typename T>
__device__ void conv_update(const T* __restrict__ x, float* __restrict__ conv_state,
                            const T* __restrict__ weight, const T* __restrict__ bias,
                            T* __restrict__ out, int batch, int dim, int len, int K, int S,
                            int silu) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= batch * dim) return;
    const int d = row % dim;
    float* st = conv_state + (size_t)row * S;
    const T* w = weight + (size_t)d * K;
    for (int t = 0; t < len; ++t) {
        const float xt = to_f32(x[(size_t)row * len + t]);
        float acc = bias ? to_f32(bias[d]) : 0.f;
        for (int k = 0; k < K - 1; ++k) acc += to_f32(w[k]) * st[S - (K - 1) + k];
        acc += to_f32(w[K - 1]) * xt;
        store_f32(&out[(size_t)row * len + t], silu ? silu_f(acc) : acc);
        if (S > 0) {
            for (int j = 0; j + 1 < S; ++j) st[j] = st[j + 1];
            st[S - 1] = xt;
        }
    }
}

// conv_state is f32 for every input type (the recurrent state stays in full precision).
extern "C" __global__ void __launch_bounds__(CC_THREADS)
causal_conv1d_update_f32(const float* x, float* conv_state, const float* weight, const float* bias,
                         float* out, int batch, int dim, int len, int K, int S, int silu) {
    conv_update(x, conv_state, weight, bias, out, batch, dim, len, K, S, silu);
}
extern "C" __global__ void __launch_bounds__(CC_THREADS)
causal_conv1d_update_f16(const f16_t* x, float* conv_state, const f16_t* weight, const f16_t* bias,
                         f16_t* out, int batch, int dim, int len, int K, int S, int silu) {
    conv_update(x, conv_state, weight, bias, out, batch, dim, len, K, S, silu);
}
extern "C" __global__ void __launch_bounds__(CC_THREADS)
causal_conv1d_update_bf16(const bf16_t* x, float* conv_state, const bf16_t* weight, const bf16_t* bias,
                          bf16_t* out, int batch, int dim, int len, int K, int S, int silu) {
    conv_update(x, conv_state, weight, bias, out, batch, dim, len, K, S, silu);
}
