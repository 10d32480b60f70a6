// Shared by selective_scan_fwd.cu and selective_scan_bwd.cu (after common.cuh): the tiling, the
// state-element operations for real (float) and complex (float2) A, and the block scan.
// Spliced in by the loaders like common.cuh.

#define SS_THREADS 128
#define SS_ITEMS 4
#define SS_TILE (SS_THREADS * SS_ITEMS)
#define SS_MAX_DSTATE 256
#define SS_WARPS (SS_THREADS / 32)

// ---- state elements: float (real A) or float2 (complex A) ------------------------------------
__device__ __forceinline__ float s_mul(float a, float b) { return a * b; }
__device__ __forceinline__ float2 s_mul(float2 a, float2 b) {
    return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
__device__ __forceinline__ float s_add(float a, float b) { return a + b; }
__device__ __forceinline__ float2 s_add(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ float s_scale(float a, float s) { return a * s; }
__device__ __forceinline__ float2 s_scale(float2 a, float s) { return make_float2(a.x * s, a.y * s); }
__device__ __forceinline__ float s_conj(float a) { return a; }
__device__ __forceinline__ float2 s_conj(float2 a) { return make_float2(a.x, -a.y); }
// Re(conj(a)·b).
__device__ __forceinline__ float s_dot_conj_re(float a, float b) { return a * b; }
__device__ __forceinline__ float s_dot_conj_re(float2 a, float2 b) { return a.x * b.x + a.y * b.y; }
__device__ __forceinline__ void s_set(float& v, float re) { v = re; }
__device__ __forceinline__ void s_set(float2& v, float re) { v = make_float2(re, 0.f); }
__device__ __forceinline__ float s_re(float v) { return v; }
__device__ __forceinline__ float s_re(float2 v) { return v.x; }
__device__ __forceinline__ float s_shfl_up(float v, int o) { return __shfl_up_sync(0xffffffffu, v, o); }
__device__ __forceinline__ float2 s_shfl_up(float2 v, int o) {
    return make_float2(__shfl_up_sync(0xffffffffu, v.x, o), __shfl_up_sync(0xffffffffu, v.y, o));
}
__device__ __forceinline__ float s_shfl_down(float v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }
__device__ __forceinline__ float2 s_shfl_down(float2 v, int o) {
    return make_float2(__shfl_down_sync(0xffffffffu, v.x, o), __shfl_down_sync(0xffffffffu, v.y, o));
}
__device__ __forceinline__ float s_xor_sum(float v) { return warp_sum(v); }
__device__ __forceinline__ float2 s_xor_sum(float2 v) { return make_float2(warp_sum(v.x), warp_sum(v.y)); }
__device__ __forceinline__ float2 s_to2(float v) { return make_float2(v, 0.f); }
__device__ __forceinline__ float2 s_to2(float2 v) { return v; }
__device__ __forceinline__ void s_from2(float2 v, float& o) { o = v.x; }
__device__ __forceinline__ void s_from2(float2 v, float2& o) { o = v; }
// Element i of a state-shaped buffer (real: p[i], any storage type; complex: the (re, im) pair
// at 2i).
template <typename In> __device__ __forceinline__ void s_load(const In* p, size_t i, float& o) { o = to_f32(p[i]); }
__device__ __forceinline__ void s_load(const float* p, size_t i, float2& o) { o = make_float2(p[2 * i], p[2 * i + 1]); }
__device__ __forceinline__ void s_store(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void s_store(float* p, size_t i, float2 v) { p[2 * i] = v.x; p[2 * i + 1] = v.y; }
__device__ __forceinline__ void s_atomic_add(float* p, size_t i, float v) { atomicAdd(p + i, v); }
__device__ __forceinline__ void s_atomic_add(float* p, size_t i, float2 v) {
    atomicAdd(p + 2 * i, v.x);
    atomicAdd(p + 2 * i + 1, v.y);
}
// exp(Δ·A) from A pre-scaled: real a2 = A·log2 e; complex a2 = (Re A·log2 e, Im A).
__device__ __forceinline__ float s_exp_dA(float dt, float a2) { return exp2f(dt * a2); }
__device__ __forceinline__ float2 s_exp_dA(float dt, float2 a2) {
    float m = exp2f(dt * a2.x), s, c;
    sincosf(dt * a2.y, &s, &c);
    return make_float2(m * c, m * s);
}
__device__ __forceinline__ void s_prescale(float a, float& o) { o = a * LOG2E_F; }
__device__ __forceinline__ void s_prescale(float2 a, float2& o) { o = make_float2(a.x * LOG2E_F, a.y); }

// Exclusive scan of (a, b) pairs under (a0,b0)∘(a1,b1) = (a1·a0, a1·b0 + b1). REVERSE = false:
// in thread order (composition of all lower threads); REVERSE = true: in reverse thread order
// (composition of all higher threads, the highest applied first). `sh_a`, `sh_b` hold SS_WARPS
// entries; the call ends with a barrier so they may be reused.
template <bool REVERSE, typename S>
__device__ __forceinline__ void block_scan_excl(S a, S b, S& ea, S& eb, float2* sh_a, float2* sh_b) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        S pa = REVERSE ? s_shfl_down(a, o) : s_shfl_up(a, o);
        S pb = REVERSE ? s_shfl_down(b, o) : s_shfl_up(b, o);
        if (REVERSE ? lane + o < 32 : lane >= o) {
            b = s_add(s_mul(a, pb), b);
            a = s_mul(a, pa);
        }
    }
    S xa = REVERSE ? s_shfl_down(a, 1) : s_shfl_up(a, 1);
    S xb = REVERSE ? s_shfl_down(b, 1) : s_shfl_up(b, 1);
    if (lane == (REVERSE ? 31 : 0)) {
        s_set(xa, 1.f);
        s_set(xb, 0.f);
    }
    if (lane == (REVERSE ? 0 : 31)) {
        sh_a[warp] = s_to2(a);
        sh_b[warp] = s_to2(b);
    }
    __syncthreads();
    S wa, wb;
    s_set(wa, 1.f);
    s_set(wb, 0.f);
    if (REVERSE) {
        for (int w = SS_WARPS - 1; w > warp; --w) {
            S ta, tb;
            s_from2(sh_a[w], ta);
            s_from2(sh_b[w], tb);
            wb = s_add(s_mul(ta, wb), tb);
            wa = s_mul(ta, wa);
        }
    } else {
        for (int w = 0; w < warp; ++w) {
            S ta, tb;
            s_from2(sh_a[w], ta);
            s_from2(sh_b[w], tb);
            wb = s_add(s_mul(ta, wb), tb);
            wa = s_mul(ta, wa);
        }
    }
    ea = s_mul(xa, wa);
    eb = s_add(s_mul(xa, wb), xb);
    __syncthreads();
}
