// The few PyTorch (c10 / ATen) names mamba_ssm's selective-scan kernels use, without PyTorch:
// half and bfloat16 as CUDA's own types, a small complex<T>, gpuAtomicAdd, and the launch checks
// (which record the first CUDA error for the C entry points in ../scan_capi.cu to return).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace c10 {
using Half = __half;
using BFloat16 = __nv_bfloat16;

template <typename T>
struct alignas(2 * sizeof(T)) complex {
    T real_, imag_;
    __host__ __device__ constexpr complex(T re = T(), T im = T()) : real_(re), imag_(im) {}
    __host__ __device__ constexpr T real() const { return real_; }
    __host__ __device__ constexpr T imag() const { return imag_; }
    __host__ __device__ complex &operator+=(const complex &o) {
        real_ += o.real_;
        imag_ += o.imag_;
        return *this;
    }
};
template <typename T>
__host__ __device__ complex<T> operator+(complex<T> a, complex<T> b) {
    return {a.real_ + b.real_, a.imag_ + b.imag_};
}
template <typename T>
__host__ __device__ complex<T> operator-(complex<T> a, complex<T> b) {
    return {a.real_ - b.real_, a.imag_ - b.imag_};
}
template <typename T>
__host__ __device__ complex<T> operator*(complex<T> a, complex<T> b) {
    return {a.real_ * b.real_ - a.imag_ * b.imag_, a.real_ * b.imag_ + a.imag_ * b.real_};
}
template <typename T>
__host__ __device__ complex<T> operator*(T a, complex<T> b) {
    return {a * b.real_, a * b.imag_};
}
template <typename T>
__host__ __device__ complex<T> operator*(complex<T> a, T b) {
    return {a.real_ * b, a.imag_ * b};
}
}  // namespace c10

namespace std {
template <typename T>
__host__ __device__ c10::complex<T> conj(const c10::complex<T> &z) {
    return {z.real_, -z.imag_};
}
}  // namespace std

namespace at {
using c10::BFloat16;
using c10::Half;
}  // namespace at

__device__ inline void gpuAtomicAdd(float *p, float v) { atomicAdd(p, v); }
__device__ inline void gpuAtomicAdd(c10::complex<float> *p, c10::complex<float> v) {
    atomicAdd(&p->real_, v.real_);
    atomicAdd(&p->imag_, v.imag_);
}

/// The first CUDA error since the last `seqlab_shim_take_error` (host side, one thread).
inline cudaError_t &seqlab_shim_error() {
    static thread_local cudaError_t e = cudaSuccess;
    return e;
}
inline void seqlab_shim_check(cudaError_t e) {
    if (e != cudaSuccess && seqlab_shim_error() == cudaSuccess) seqlab_shim_error() = e;
}
#define C10_CUDA_CHECK(EXPR) seqlab_shim_check(EXPR)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() seqlab_shim_check(cudaGetLastError())
