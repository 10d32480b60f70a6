// cuBLAS on the CPU, as far as candle's f32 matmul uses it: handles, and C = α op(A) op(B) + β C
// in cuBLAS's column-major convention, single or batched with strides (candle calls
// cublasGemmStridedBatchedEx with CUDA_R_32F). Products are summed in double, so the result is
// at least as exact as the GPU's f32 sums; other types and every other function return
// CUBLAS_STATUS_NOT_SUPPORTED (build.sh generates those stubs).
#include <cstddef>
#include <cstdio>

namespace {

using Status = int;
constexpr Status kSuccess = 0, kNotInitialized = 1, kInvalidValue = 7, kNotSupported = 15;
constexpr int kOpN = 0, kOpT = 1, kOpC = 2;  // cublasOperation_t
constexpr int kR32F = 0;                      // cudaDataType CUDA_R_32F
constexpr int kCompute32F = 68, kCompute32FFastTf32 = 77;

struct Handle {
    void* stream = nullptr;
    int pointer_mode = 0;  // host or device: both are host memory here
    int math_mode = 0;
};

/// Element (row, col) of op(M) for a column-major M with leading dimension ld.
inline float at(const float* m, int op, long long ld, int row, int col) {
    return op == kOpN ? m[row + col * ld] : m[col + row * ld];
}

Status gemm_batched(int transa, int transb, int m, int n, int k, const float* alpha,
                    const float* a, int lda, long long stride_a, const float* b, int ldb,
                    long long stride_b, const float* beta, float* c, int ldc, long long stride_c,
                    int batch) {
    if (m < 0 || n < 0 || k < 0 || batch < 0 || ldc < (m > 1 ? m : 1)) return kInvalidValue;
    if ((transa != kOpN && transa != kOpT && transa != kOpC) ||
        (transb != kOpN && transb != kOpT && transb != kOpC))
        return kInvalidValue;
    if (lda < ((transa == kOpN ? m : k) > 1 ? (transa == kOpN ? m : k) : 1) ||
        ldb < ((transb == kOpN ? k : n) > 1 ? (transb == kOpN ? k : n) : 1))
        return kInvalidValue;
    const float al = *alpha, be = *beta;
    for (int p = 0; p < batch; ++p) {
        const float* ap = a + p * stride_a;
        const float* bp = b + p * stride_b;
        float* cp = c + p * stride_c;
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                double sum = 0.0;
                for (int l = 0; l < k; ++l)
                    sum += (double)at(ap, transa, lda, i, l) * at(bp, transb, ldb, l, j);
                float& out = cp[i + (long long)j * ldc];
                // β = 0 ignores C, which may hold NaN (cuBLAS's rule).
                out = (float)(al * sum + (be == 0.0f ? 0.0 : (double)be * out));
            }
    }
    return kSuccess;
}

}  // namespace

extern "C" {

Status cublasCreate_v2(void** handle) {
    if (!handle) return kInvalidValue;
    *handle = new Handle;
    return kSuccess;
}
Status cublasDestroy_v2(void* handle) {
    if (!handle) return kNotInitialized;
    delete static_cast<Handle*>(handle);
    return kSuccess;
}
Status cublasSetStream_v2(void* handle, void* stream) {
    if (!handle) return kNotInitialized;
    static_cast<Handle*>(handle)->stream = stream;
    return kSuccess;
}
Status cublasGetStream_v2(void* handle, void** stream) {
    if (!handle) return kNotInitialized;
    *stream = static_cast<Handle*>(handle)->stream;
    return kSuccess;
}
Status cublasSetPointerMode_v2(void* handle, int mode) {
    if (!handle) return kNotInitialized;
    static_cast<Handle*>(handle)->pointer_mode = mode;
    return kSuccess;
}
Status cublasGetPointerMode_v2(void* handle, int* mode) {
    if (!handle) return kNotInitialized;
    *mode = static_cast<Handle*>(handle)->pointer_mode;
    return kSuccess;
}
Status cublasSetMathMode(void* handle, int mode) {
    if (!handle) return kNotInitialized;
    static_cast<Handle*>(handle)->math_mode = mode;
    return kSuccess;
}
Status cublasGetMathMode(void* handle, int* mode) {
    if (!handle) return kNotInitialized;
    *mode = static_cast<Handle*>(handle)->math_mode;
    return kSuccess;
}
Status cublasSetWorkspace_v2(void* handle, void*, std::size_t) {
    return handle ? kSuccess : kNotInitialized;
}

Status cublasSgemm_v2(void* handle, int transa, int transb, int m, int n, int k,
                      const float* alpha, const float* a, int lda, const float* b, int ldb,
                      const float* beta, float* c, int ldc) {
    if (!handle) return kNotInitialized;
    return gemm_batched(transa, transb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}
Status cublasSgemmStridedBatched(void* handle, int transa, int transb, int m, int n, int k,
                                 const float* alpha, const float* a, int lda, long long stride_a,
                                 const float* b, int ldb, long long stride_b, const float* beta,
                                 float* c, int ldc, long long stride_c, int batch) {
    if (!handle) return kNotInitialized;
    return gemm_batched(transa, transb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                        c, ldc, stride_c, batch);
}
Status cublasGemmStridedBatchedEx(void* handle, int transa, int transb, int m, int n, int k,
                                  const void* alpha, const void* a, int a_type, int lda,
                                  long long stride_a, const void* b, int b_type, int ldb,
                                  long long stride_b, const void* beta, void* c, int c_type,
                                  int ldc, long long stride_c, int batch, int compute_type, int) {
    if (!handle) return kNotInitialized;
    if (a_type != kR32F || b_type != kR32F || c_type != kR32F ||
        (compute_type != kCompute32F && compute_type != kCompute32FFastTf32)) {
        std::fprintf(stderr, "cuBLAS emulator: only f32 GEMMs are emulated\n");
        return kNotSupported;
    }
    return gemm_batched(transa, transb, m, n, k, static_cast<const float*>(alpha),
                        static_cast<const float*>(a), lda, stride_a,
                        static_cast<const float*>(b), ldb, stride_b,
                        static_cast<const float*>(beta), static_cast<float*>(c), ldc, stride_c,
                        batch);
}
Status cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                    const void* a, int a_type, int lda, const void* b, int b_type, int ldb,
                    const void* beta, void* c, int c_type, int ldc, int compute_type, int algo) {
    return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, a, a_type, lda, 0,
                                      b, b_type, ldb, 0, beta, c, c_type, ldc, 0, 1, compute_type,
                                      algo);
}

}  // extern "C"
