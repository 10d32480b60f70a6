// Selective scan backward (Mamba, Gu & Dao 2023).
// CPU twin: crates/seqlab-ssm/src/selective_scan.rs, `selective_scan_bwd`.
//
// Forward (see selective_scan_fwd.cu): x_t = a_t ⊙ x_{t−1} + Δ_t u_t B_t with a_t = exp(Δ_t A)
// (a_t := 0 where seq_idx changes at t), y_t = Re Σ_n C_t x_t (×2 complex), out_t = (y_t + D u_t)·SiLU(z_t).
// With g_t = ∂ℒ/∂out_t, go_t = g_t·SiLU(z_t), gy_t = go_t·(1 or 2), the state gradient runs backwards:
//   h_t = conj(a_{t+1}) ⊙ h_{t+1} + conj(C_t)·gy_t,   h_{len} := ∂ℒ/∂x_{len−1} (dlast), conj(a_{len}) := 1
// and, per position and state index n,
//   ∂C_t += gy_t·conj(x_t)          ∂B_t += Δ_t u_t·h_t          ∂A += Δ_t·conj(a_t)·h_t·conj(x_{t−1})
//   ∂Δ_t = u_t·Re Σ conj(B_t) h_t + Re Σ conj(A)·conj(a_t)·h_t·conj(x_{t−1})     (2nd term 0 at resets)
//   ∂u_t = go_t·D + Δ_t·Re Σ conj(B_t) h_t,   ∂δ_t = ∂Δ_t·softplus′,   ∂z_t = g_t·(y_t + D u_t)·SiLU′(z_t)
//   ∂x_{−1} = conj(a_0) ⊙ h_0.
//
// Layouts are the CPU function's (see selective_scan_fwd.cu); gradients have their input's layout.
// `tile_states` (batch, dim, n_tiles, dstate[, 2]) are the states entering each SS_TILE-long tile,
// as selective_scan_fwd writes them with chunk_len = SS_TILE (the backward pass recomputes the
// states inside a tile from them, tile by tile, last tile first).
//
// Design: one block per (batch, channel) row, tiles of SS_THREADS × SS_ITEMS positions walked in
// reverse, loop over n inside. Per (tile, n): a forward block scan recomputes x_t, then a reverse
// block scan (__shfl_down_sync, warp totals in shared memory) gives h_t; the state gradient
// carried across tiles lives in shared memory. With a z gate, y_t is needed before the first n,
// so a tile first runs the forward recomputation over all n (two passes; the reference instead
// saves `out`). Reductions: ∂A, constant ∂B/∂C, ∂D and ∂δ_bias are summed per block (warp
// shuffles, then shared-memory atomics) and added to global memory with one atomicAdd per value
// and block; input-dependent ∂B/∂C (shared by the channels of a group) take one global atomicAdd
// per (position, n, channel), staged in shared memory so that a warp's atomics are contiguous.
// Gradient buffers accumulated with atomics must be zeroed by the caller: dA, dB, dC, dD,
// ddelta_bias. f32 only.

#include "common.cuh"
#include "scan_common.cuh"

// Adds v, summed over the block, into *acc (shared memory): warp sum, then one atomic per warp.
template <typename S>
__device__ __forceinline__ void block_acc(float* acc, int i, S v) {
    v = s_xor_sum(v);
    if ((threadIdx.x & 31) == 0) {
        float2 w = s_to2(v);
        atomicAdd(acc + (sizeof(S) == 8 ? 2 * i : i), w.x);
        if (sizeof(S) == 8) atomicAdd(acc + 2 * i + 1, w.y);
    }
}

template <typename S>
__device__ void scan_bwd(const float* __restrict__ u, const float* __restrict__ delta,
                         const float* __restrict__ A, const float* __restrict__ Bm,
                         const float* __restrict__ Cm, const float* __restrict__ Dv,
                         const float* __restrict__ z, const float* __restrict__ delta_bias,
                         const int* __restrict__ seq_idx, const float* __restrict__ tile_states,
                         const float* __restrict__ dout, const float* __restrict__ dlast,
                         float* __restrict__ du, float* __restrict__ ddelta,
                         float* __restrict__ dA, float* __restrict__ dB, float* __restrict__ dC,
                         float* __restrict__ dD, float* __restrict__ dz,
                         float* __restrict__ ddelta_bias, float* __restrict__ dinit, int batch,
                         int dim, int len, int dstate, int b_groups, int c_groups,
                         int delta_softplus) {
    constexpr int W = sizeof(S) / sizeof(float);
    __shared__ float2 sh_a[SS_WARPS], sh_b[SS_WARPS];
    __shared__ float2 s_run[SS_MAX_DSTATE];     // h at the first position of the later tile
    __shared__ float s_dA[SS_MAX_DSTATE * 2];   // per-row sums, flushed with global atomics
    __shared__ float s_dBc[SS_MAX_DSTATE * 2];  // constant B
    __shared__ float s_dCc[SS_MAX_DSTATE * 2];  // constant C
    __shared__ float s_scalars[2];              // dD, dδ_bias
    __shared__ float2 s_xb[SS_TILE], s_xc[SS_TILE];  // a tile's input-dependent ∂B, ∂C (one n)
    const int row = blockIdx.x;
    if (row >= batch * dim) return;
    const int bi = row / dim, d = row % dim;
    const size_t rbase = (size_t)row * len;
    const int n_tiles = (len + SS_TILE - 1) / SS_TILE;
    const float bias = delta_bias ? delta_bias[d] : 0.f;
    const float Dd = Dv ? Dv[d] : 0.f;
    const float yscale = W == 2 ? 2.f : 1.f;
    const size_t b_base = b_groups > 0
        ? ((size_t)bi * b_groups + d / (dim / b_groups)) * dstate * len : (size_t)d * dstate;
    const size_t c_base = c_groups > 0
        ? ((size_t)bi * c_groups + d / (dim / c_groups)) * dstate * len : (size_t)d * dstate;
    for (int n = threadIdx.x; n < dstate; n += SS_THREADS) {
        S h;
        if (dlast) s_load(dlast, (size_t)row * dstate + n, h);
        else s_set(h, 0.f);
        s_run[n] = s_to2(h);
    }
    for (int i = threadIdx.x; i < dstate * 2; i += SS_THREADS) s_dA[i] = s_dBc[i] = s_dCc[i] = 0.f;
    if (threadIdx.x < 2) s_scalars[threadIdx.x] = 0.f;
    __syncthreads();
    float acc_dD = 0.f, acc_dbias = 0.f;

    for (int tile_i = n_tiles - 1; tile_i >= 0; --tile_i) {
        const int tile = tile_i * SS_TILE;
        const int t0 = tile + threadIdx.x * SS_ITEMS;
        // Items 0..SS_ITEMS−1 are this thread's positions; item SS_ITEMS is the next position,
        // whose a_{t+1} carries h backwards into this thread's last item.
        float dt[SS_ITEMS + 1], dsp[SS_ITEMS], uu[SS_ITEMS], go[SS_ITEMS], y[SS_ITEMS];
        bool valid[SS_ITEMS + 1], reset[SS_ITEMS + 1];
#pragma unroll
        for (int i = 0; i <= SS_ITEMS; ++i) {
            const int t = t0 + i;
            valid[i] = t < len;
            float raw = valid[i] ? delta[rbase + t] + bias : 0.f;
            if (delta_softplus) {
                dt[i] = softplus_f(raw);
                if (i < SS_ITEMS) dsp[i] = raw > 20.f ? 1.f : sigmoid_f(raw);
            } else {
                dt[i] = raw;
                if (i < SS_ITEMS) dsp[i] = 1.f;
            }
            reset[i] = seq_idx && valid[i] && t > 0 &&
                       seq_idx[(size_t)bi * len + t] != seq_idx[(size_t)bi * len + t - 1];
            if (i < SS_ITEMS) {
                uu[i] = valid[i] ? u[rbase + t] : 0.f;
                go[i] = valid[i] ? dout[rbase + t] : 0.f;
                y[i] = 0.f;
            }
        }
        // Pass 1 (z gate only): y_t over all n, for ∂z and go = g·SiLU(z).
        for (int n = 0; z && n < dstate; ++n) {
            S a_raw, a2, bconst, cconst, xrun, ea, eb;
            s_load(A, (size_t)d * dstate + n, a_raw);
            s_prescale(a_raw, a2);
            if (b_groups == 0) s_load(Bm, b_base + n, bconst);
            if (c_groups == 0) s_load(Cm, c_base + n, cconst);
            S pa[SS_ITEMS], pb[SS_ITEMS];
#pragma unroll
            for (int i = 0; i < SS_ITEMS; ++i) {
                if (valid[i]) {
                    S bt = bconst;
                    if (b_groups > 0) s_load(Bm, b_base + (size_t)n * len + t0 + i, bt);
                    pa[i] = s_exp_dA(dt[i], a2);
                    if (reset[i]) s_set(pa[i], 0.f);
                    pb[i] = s_scale(bt, dt[i] * uu[i]);
                } else {
                    s_set(pa[i], 1.f);
                    s_set(pb[i], 0.f);
                }
            }
            S ta = pa[0], tb = pb[0];
#pragma unroll
            for (int i = 1; i < SS_ITEMS; ++i) {
                tb = s_add(s_mul(pa[i], tb), pb[i]);
                ta = s_mul(pa[i], ta);
            }
            s_load(tile_states, ((size_t)row * n_tiles + tile_i) * dstate + n, xrun);
            block_scan_excl<false>(ta, tb, ea, eb, sh_a, sh_b);
            S x = s_add(s_mul(ea, xrun), eb);
#pragma unroll
            for (int i = 0; i < SS_ITEMS; ++i) {
                x = s_add(s_mul(pa[i], x), pb[i]);
                if (valid[i]) {
                    S ct = cconst;
                    if (c_groups > 0) s_load(Cm, c_base + (size_t)n * len + t0 + i, ct);
                    y[i] += s_dot_conj_re(s_conj(ct), x);
                }
            }
        }
        float hb[SS_ITEMS], gdt[SS_ITEMS], gy[SS_ITEMS];
#pragma unroll
        for (int i = 0; i < SS_ITEMS; ++i) {
            hb[i] = 0.f;
            gdt[i] = 0.f;
            if (valid[i] && z) {
                const float zt = z[rbase + t0 + i];
                const float o = y[i] * yscale + Dd * uu[i];
                dz[rbase + t0 + i] = go[i] * o * silu_grad_f(zt);
                go[i] *= silu_f(zt);
            }
            gy[i] = go[i] * yscale;
            acc_dD += go[i] * uu[i];
        }
        // Pass 2: per n, recompute x_t, run h_t backwards, accumulate the gradients.
        for (int n = 0; n < dstate; ++n) {
            S a_raw, a2, bconst, cconst, xrun, ea, eb;
            s_load(A, (size_t)d * dstate + n, a_raw);
            s_prescale(a_raw, a2);
            if (b_groups == 0) s_load(Bm, b_base + n, bconst);
            if (c_groups == 0) s_load(Cm, c_base + n, cconst);
            S pa[SS_ITEMS + 1], pb[SS_ITEMS], bt[SS_ITEMS], ct[SS_ITEMS];
#pragma unroll
            for (int i = 0; i <= SS_ITEMS; ++i) {
                if (valid[i]) {
                    pa[i] = s_exp_dA(dt[i], a2);
                    if (reset[i]) s_set(pa[i], 0.f);
                } else {
                    s_set(pa[i], 1.f);
                }
                if (i == SS_ITEMS) break;
                bt[i] = bconst;
                ct[i] = cconst;
                if (valid[i]) {
                    if (b_groups > 0) s_load(Bm, b_base + (size_t)n * len + t0 + i, bt[i]);
                    if (c_groups > 0) s_load(Cm, c_base + (size_t)n * len + t0 + i, ct[i]);
                    pb[i] = s_scale(bt[i], dt[i] * uu[i]);
                } else {
                    s_set(pb[i], 0.f);
                }
            }
            // Forward recomputation of x over the tile.
            S ta = pa[0], tb = pb[0];
#pragma unroll
            for (int i = 1; i < SS_ITEMS; ++i) {
                tb = s_add(s_mul(pa[i], tb), pb[i]);
                ta = s_mul(pa[i], ta);
            }
            s_load(tile_states, ((size_t)row * n_tiles + tile_i) * dstate + n, xrun);
            block_scan_excl<false>(ta, tb, ea, eb, sh_a, sh_b);
            S xs[SS_ITEMS + 1];  // xs[i] = x_{t0+i−1}
            xs[0] = s_add(s_mul(ea, xrun), eb);
#pragma unroll
            for (int i = 0; i < SS_ITEMS; ++i) xs[i + 1] = s_add(s_mul(pa[i], xs[i]), pb[i]);
            // Reverse scan: h_t = α_t h_{t+1} + β_t with α_t = conj(a_{t+1}), β_t = conj(C_t) gy_t.
            S al[SS_ITEMS], be[SS_ITEMS];
#pragma unroll
            for (int i = 0; i < SS_ITEMS; ++i) {
                al[i] = s_conj(pa[i + 1]);
                if (valid[i]) be[i] = s_scale(s_conj(ct[i]), gy[i]);
                else s_set(be[i], 0.f);
            }
            S ra = al[SS_ITEMS - 1], rb = be[SS_ITEMS - 1];
#pragma unroll
            for (int i = SS_ITEMS - 2; i >= 0; --i) {
                rb = s_add(s_mul(al[i], rb), be[i]);
                ra = s_mul(al[i], ra);
            }
            S hrun;
            s_from2(s_run[n], hrun);
            block_scan_excl<true>(ra, rb, ea, eb, sh_a, sh_b);
            S h = s_add(s_mul(ea, hrun), eb);  // h at this thread's last position + 1
            S ga, gbc, gcc;
            s_set(ga, 0.f);
            s_set(gbc, 0.f);
            s_set(gcc, 0.f);
#pragma unroll
            for (int i = SS_ITEMS - 1; i >= 0; --i) {
                h = s_add(s_mul(al[i], h), be[i]);  // h_t
                if (!valid[i]) continue;  // past len: never staged, never read below
                const int j = threadIdx.x * SS_ITEMS + i;  // position within the tile
                const S xt = xs[i + 1], xp = xs[i];
                const S gc = s_scale(s_conj(xt), gy[i]);
                const S gb = s_scale(h, dt[i] * uu[i]);
                if (c_groups > 0) s_xc[j] = s_to2(gc);
                else gcc = s_add(gcc, gc);
                if (b_groups > 0) s_xb[j] = s_to2(gb);
                else gbc = s_add(gbc, gb);
                hb[i] += s_dot_conj_re(bt[i], h);
                if (!reset[i]) {
                    const S gda = s_mul(s_mul(s_conj(pa[i]), h), s_conj(xp));
                    ga = s_add(ga, s_scale(gda, dt[i]));
                    gdt[i] += s_dot_conj_re(a_raw, gda);
                }
            }
            // h now holds h_{t0}: the carry for the earlier tile, or ∂x_{−1} = conj(a_0) h_0.
            if (threadIdx.x == 0) {
                s_run[n] = s_to2(h);
                if (tile_i == 0 && dinit) s_store(dinit, (size_t)row * dstate + n, s_mul(s_conj(pa[0]), h));
            }
            block_acc(s_dA, n, ga);
            if (b_groups == 0) block_acc(s_dBc, n, gbc);
            if (c_groups == 0) block_acc(s_dCc, n, gcc);
            // Input-dependent ∂B / ∂C: consecutive threads add consecutive positions, so a
            // warp's atomics hit one contiguous run of addresses (the items above are strided).
            if (b_groups > 0 || c_groups > 0) {
                __syncthreads();
#pragma unroll
                for (int k = 0; k < SS_ITEMS; ++k) {
                    const int j = k * SS_THREADS + threadIdx.x;
                    if (tile + j >= len) break;
                    const size_t off = (size_t)n * len + tile + j;
                    S v;
                    if (c_groups > 0) {
                        s_from2(s_xc[j], v);
                        s_atomic_add(dC, c_base + off, v);
                    }
                    if (b_groups > 0) {
                        s_from2(s_xb[j], v);
                        s_atomic_add(dB, b_base + off, v);
                    }
                }
                __syncthreads();  // the next n overwrites s_xb / s_xc
            }
        }
#pragma unroll
        for (int i = 0; i < SS_ITEMS; ++i) {
            if (!valid[i]) continue;
            const size_t t = rbase + t0 + i;
            const float g_dt = gdt[i] + uu[i] * hb[i];
            du[t] = (Dv ? go[i] * Dd : 0.f) + dt[i] * hb[i];
            const float g_raw = g_dt * dsp[i];
            ddelta[t] = g_raw;
            acc_dbias += g_raw;
        }
        __syncthreads();  // s_run written by thread 0 before the earlier tile reads it
    }
    acc_dD = s_xor_sum(acc_dD);
    acc_dbias = s_xor_sum(acc_dbias);
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(&s_scalars[0], acc_dD);
        atomicAdd(&s_scalars[1], acc_dbias);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < dstate * W; i += SS_THREADS) {
        atomicAdd(dA + (size_t)d * dstate * W + i, s_dA[i]);
        if (b_groups == 0) atomicAdd(dB + (size_t)d * dstate * W + i, s_dBc[i]);
        if (c_groups == 0) atomicAdd(dC + (size_t)d * dstate * W + i, s_dCc[i]);
    }
    if (threadIdx.x == 0) {
        if (dD) atomicAdd(dD + d, s_scalars[0]);
        if (ddelta_bias) atomicAdd(ddelta_bias + d, s_scalars[1]);
    }
}

#define SS_BWD_PARAMS                                                                         \
    const float *u, const float *delta, const float *A, const float *B, const float *C,       \
        const float *D, const float *z, const float *delta_bias, const int *seq_idx,          \
        const float *tile_states, const float *dout, const float *dlast, float *du,           \
        float *ddelta, float *dA, float *dB, float *dC, float *dD, float *dz,                 \
        float *ddelta_bias, float *dinit, int batch, int dim, int len, int dstate,            \
        int b_groups, int c_groups, int delta_softplus
#define SS_BWD_ARGS                                                                          \
    u, delta, A, B, C, D, z, delta_bias, seq_idx, tile_states, dout, dlast, du, ddelta, dA,   \
        dB, dC, dD, dz, ddelta_bias, dinit, batch, dim, len, dstate, b_groups, c_groups,      \
        delta_softplus

// Grid: (batch·dim) blocks of SS_THREADS threads. Null pointers for absent options.
extern "C" __global__ void __launch_bounds__(SS_THREADS)
selective_scan_bwd_f32(SS_BWD_PARAMS) { scan_bwd<float>(SS_BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(SS_THREADS)
selective_scan_bwd_complex_f32(SS_BWD_PARAMS) { scan_bwd<float2>(SS_BWD_ARGS); }
