// The CUDA device language for third-party kernel sources (candle's), on top of emulator.h.
//
// Such sources include the toolkit's own headers (cuda_fp16.h, cuda_bf16.h, cuda_fp8.h,
// <cuda/std/limits>), whose host-compiler branches give the half, bfloat16 and fp8 types with
// their arithmetic. They are included first, with the toolkit's own meaning of __device__ and
// friends, and emulator.h then redefines those for the kernels. build.sh compiles each file
// inside a namespace of its own, so helpers of the same name in two files do not clash.
#pragma once

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <cmath>
#include <cuda.h>
#include <vector_types.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda/std/limits>

#define SEQLAB_EMU_FOREIGN 1
#include "emulator.h"

// The architecture the emulator reports (driver.cpp): sm_90.
#define __CUDA_ARCH__ 900

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float normcdff(float x) { return 0.5f * erfcf(-x * (float)M_SQRT1_2); }
static inline double normcdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }
template <typename T>
static inline T atomicCAS(T* p, T compare, T value) {
    T old = *p;
    if (old == compare) *p = value;
    return old;
}
template <typename T, typename V>
static inline T atomicMax(T* p, V v) {
    T old = *p;
    if (old < (T)v) *p = (T)v;
    return old;
}
template <typename T, typename V>
static inline T atomicMin(T* p, V v) {
    T old = *p;
    if ((T)v < old) *p = (T)v;
    return old;
}

// The half and bfloat16 math the toolkit headers declare for the device only, through f32.
#define SEQLAB_EMU_HALF_MATH(T, to_f32, from_f32)                    \
    static inline T hsqrt(T a) { return from_f32(sqrtf(to_f32(a))); } \
    static inline T hsin(T a) { return from_f32(sinf(to_f32(a))); }   \
    static inline T hcos(T a) { return from_f32(cosf(to_f32(a))); }   \
    static inline T hlog(T a) { return from_f32(logf(to_f32(a))); }   \
    static inline T hexp(T a) { return from_f32(expf(to_f32(a))); }
SEQLAB_EMU_HALF_MATH(__half, __half2float, __float2half)
SEQLAB_EMU_HALF_MATH(__nv_bfloat16, __bfloat162float, __float2bfloat16)
#undef SEQLAB_EMU_HALF_MATH
