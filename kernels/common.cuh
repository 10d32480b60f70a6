// Shared by the kernel files that #include it: half-precision storage types and their f32
// conversions, and the activations. NVRTC gets no include path at run time, so the loader
// (crates/seqlab-ssm/src/cuda/compile.rs, `KernelFile::source`) and .ci/cuda-kernels-check splice
// this file in where a kernel file includes it; g++ (kernels/emulator) reads it from here.
// No CUDA headers are needed: halves are converted with PTX `cvt` and bit operations.

#define LOG2E_F 1.4426950408889634f

// ---- element types (storage): f16 / bf16 as 16-bit structs; all arithmetic is f32 ------------
struct f16_t { unsigned short x; };
struct bf16_t { unsigned short x; };

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16_t v) { return __uint_as_float(((unsigned)v.x) << 16); }
__device__ __forceinline__ float to_f32(f16_t v) {
#ifdef SEQLAB_CUDA_EMULATOR  // kernels/emulator: the same conversion on the CPU
    return seqlab_emu::f16_bits_to_f32(v.x);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.x));
    return f;
#endif
}
__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(bf16_t* p, float v) {
    unsigned u = __float_as_uint(v);
    unsigned short r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r = 0x7fc0;  // NaN
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
        r = (unsigned short)(u >> 16);
    }
    p->x = r;
}
__device__ __forceinline__ void store_f32(f16_t* p, float v) {
#ifdef SEQLAB_CUDA_EMULATOR
    p->x = seqlab_emu::f32_to_f16_bits(v);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p->x = h;
#endif
}

// ---- activations (torch's softplus threshold) -------------------------------------------------
__device__ __forceinline__ float softplus_f(float x) { return x > 20.f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float sigmoid_f(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float silu_f(float x) { return x / (1.f + expf(-x)); }
// d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
__device__ __forceinline__ float silu_grad_f(float x) {
    float s = sigmoid_f(x);
    return s * (1.f + x * (1.f - s));
}

// Sum of v over the 32 lanes of a warp (every lane gets the sum).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
