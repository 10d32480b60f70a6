// The CUDA device language, as far as kernels/*.cu use it, for a CPU.
//
// Each kernel file is compiled as C++ with this header force-included (`g++ -include`), so the
// very source NVRTC compiles for the GPU runs on the CPU through the driver emulator
// (`driver.cpp`, `runtime.cpp`). Every CUDA thread of a block is a fiber; `__syncthreads` and the
// warp shuffles are real barriers between those fibers, so a kernel that reads shared memory
// before another thread wrote it, shuffles in divergent code or forgets a barrier computes wrong
// numbers (or is reported as a deadlock) here as it would on a GPU. Blocks run one after another.
//
// Not modelled: timing, memory coalescing, register or shared-memory limits, the GPU's own
// rounding of exp2f/expf/sincosf (glibc's are used; the GPU tests' tolerances cover both).
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SEQLAB_CUDA_EMULATOR 1

// Third-party kernel sources (foreign.h) come after the real CUDA headers, which define some of
// these for a host compiler.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __restrict__
#undef __shared__
#ifdef SEQLAB_EMU_LIST_KERNELS  // build.sh's listing pass finds the kernels by this marker
#define __global__ __seqlab_emu_kernel__
#else
#define __global__
#endif
#ifdef SEQLAB_EMU_FOREIGN
// Each foreign file is wrapped in its own namespace (build.sh): its helpers cannot clash.
#define __device__
#else
#define __device__ static
#endif
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
// One block runs at a time, so a function-local static is exactly one block's shared memory.
// Ours are poisoned before each block (below), as a GPU leaves shared memory undefined.
#define __shared__ static

#ifndef SEQLAB_EMU_FOREIGN  // foreign.h includes the toolkit's vector_types.h
struct uint3 {
    unsigned x, y, z;
};
typedef uint3 dim3;

struct alignas(8) float2 {
    float x, y;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
#endif

namespace seqlab_emu {

/// Indices of the running fiber's thread and block, and the launch's sizes.
struct ThreadIndex {
    uint3 thread_idx, block_idx, block_dim, grid_dim;
};
/// The thread now running (set by the scheduler before it resumes a fiber).
const ThreadIndex& current();

void sync_block();
/// Exchanges one 64-bit word per lane among the threads of the caller's warp: every lane
/// publishes `mine`; the result is the word lane `src_lane(lane)` published (src < 0: own).
uint64_t warp_exchange(uint64_t mine, int src_lane, unsigned mask, const char* what);
int lane_id();
float f16_bits_to_f32(unsigned short h);
unsigned short f32_to_f16_bits(float f);

template <typename T>
inline T shuffle(T v, int src, unsigned mask, const char* what) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 64 bits");
    uint64_t bits = 0;
    memcpy(&bits, (const void*)&v, sizeof(T));
    uint64_t got = warp_exchange(bits, src, mask, what);
    T out;
    memcpy((void*)&out, &got, sizeof(T));
    return out;
}

/// Registers [begin, end) as shared memory, which the runtime fills with 0xFF bytes (NaN as f32
/// or f64, -1 as an integer) before each block; a null or empty range is ignored.
void register_shared_memory(char* begin, char* end);

}  // namespace seqlab_emu

#ifndef SEQLAB_EMU_FOREIGN
// Shared memory a block reads before any of its threads wrote it holds garbage on a GPU; here
// it holds NaN, not the previous block's values or zeros. build.sh links every function-local
// static of kernels/*.cu (compiled with -fdata-sections: `.bss._ZZ…`, which in CUDA device code
// is only ever a __shared__ variable) between these two symbols; each module that includes this
// header registers its own range once per translation unit (the runtime keeps one copy).
extern "C" char __start_seqlab_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_seqlab_emu_shared[] __attribute__((weak, visibility("hidden")));
namespace {
struct SeqlabEmuSharedMemory {
    SeqlabEmuSharedMemory() {
        seqlab_emu::register_shared_memory(__start_seqlab_emu_shared, __stop_seqlab_emu_shared);
    }
} seqlab_emu_shared_memory;
}  // namespace
#endif

#define threadIdx (seqlab_emu::current().thread_idx)
#define blockIdx (seqlab_emu::current().block_idx)
#define blockDim (seqlab_emu::current().block_dim)
#define gridDim (seqlab_emu::current().grid_dim)
#define warpSize 32

static inline void __syncthreads() { seqlab_emu::sync_block(); }

template <typename T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = seqlab_emu::lane_id(), in_seg = lane % width;
    const int src = in_seg >= (int)delta ? lane - (int)delta : lane;
    return seqlab_emu::shuffle(v, src, mask, "__shfl_up_sync");
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = seqlab_emu::lane_id(), in_seg = lane % width;
    const int src = in_seg + (int)delta < width ? lane + (int)delta : lane;
    return seqlab_emu::shuffle(v, src, mask, "__shfl_down_sync");
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const int lane = seqlab_emu::lane_id();
    const int src = lane ^ lane_mask;
    const bool same_segment = src / width == lane / width;
    return seqlab_emu::shuffle(v, same_segment ? src : lane, mask, "__shfl_xor_sync");
}

// Atomics: the fibers of a launch share one OS thread and switch only at barriers, so a
// read-modify-write cannot be interleaved. The body is not instrumented for the race checker
// (racecheck.cpp), which is told of one atomic access instead; not inlined, so the caller's
// loads (of `v`, say) stay before it.
namespace seqlab_emu {
void atomic_access(const void* p, size_t bytes);
}
template <typename T>
__attribute__((no_sanitize_thread, noinline)) static T atomicAdd(T* p, T v) {
    seqlab_emu::atomic_access(p, sizeof(T));
    T old = *p;
    *p = old + v;
    return old;
}

// CUDA's overloaded min / max.
#define SEQLAB_EMU_MINMAX(T)                                 \
    static inline T min(T a, T b) { return a < b ? a : b; } \
    static inline T max(T a, T b) { return a < b ? b : a; }
SEQLAB_EMU_MINMAX(int)
SEQLAB_EMU_MINMAX(unsigned)
SEQLAB_EMU_MINMAX(long)
SEQLAB_EMU_MINMAX(unsigned long)
SEQLAB_EMU_MINMAX(long long)
SEQLAB_EMU_MINMAX(unsigned long long)
SEQLAB_EMU_MINMAX(float)
SEQLAB_EMU_MINMAX(double)
#undef SEQLAB_EMU_MINMAX

// CUDA's bit casts (the same bits read as another type of the same size).
namespace seqlab_emu {
template <typename To, typename From>
inline To bits_as(From v) {
    static_assert(sizeof(To) == sizeof(From), "a bit cast keeps the size");
    To out;
    memcpy(&out, &v, sizeof(To));
    return out;
}
}  // namespace seqlab_emu
static inline float __uint_as_float(unsigned u) { return seqlab_emu::bits_as<float>(u); }
static inline unsigned __float_as_uint(float f) { return seqlab_emu::bits_as<unsigned>(f); }
static inline float __int_as_float(int i) { return seqlab_emu::bits_as<float>(i); }
static inline int __float_as_int(float f) { return seqlab_emu::bits_as<int>(f); }
static inline double __longlong_as_double(long long v) { return seqlab_emu::bits_as<double>(v); }
static inline long long __double_as_longlong(double d) { return seqlab_emu::bits_as<long long>(d); }
