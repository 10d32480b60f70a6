// cuRAND on the CPU, as far as candle uses it: pseudo-random generators that fill device (here:
// host) buffers with uniform or normal numbers. The numbers differ from cuRAND's XORWOW stream;
// only their distribution is the same. Every other function returns
// CURAND_STATUS_INITIALIZATION_FAILED (build.sh generates those stubs).
#include <cstddef>
#include <cstdint>
#include <random>

namespace {

using Status = int;
constexpr Status kSuccess = 0, kNotInitialized = 101, kLengthNotMultiple = 105;

struct Generator {
    std::mt19937_64 engine{0};
    void* stream = nullptr;
};

Generator* gen(void* g) { return static_cast<Generator*>(g); }

/// Uniform in (0, 1], as cuRAND's curandGenerateUniform.
template <typename T>
Status uniform(void* g, T* out, std::size_t n) {
    if (!g) return kNotInitialized;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (std::size_t i = 0; i < n; ++i) {
        T v = (T)(1.0 - u(gen(g)->engine));
        out[i] = v > (T)0 ? v : (T)1;
    }
    return kSuccess;
}

/// Normal(mean, std); like cuRAND, n must be even (its Box-Muller makes pairs).
template <typename T>
Status normal(void* g, T* out, std::size_t n, T mean, T std) {
    if (!g) return kNotInitialized;
    if (n % 2 != 0) return kLengthNotMultiple;
    std::normal_distribution<double> d((double)mean, (double)std);
    for (std::size_t i = 0; i < n; ++i) out[i] = (T)d(gen(g)->engine);
    return kSuccess;
}

}  // namespace

extern "C" {

Status curandCreateGenerator(void** g, int) {
    *g = new Generator;
    return kSuccess;
}
Status curandDestroyGenerator(void* g) {
    if (!g) return kNotInitialized;
    delete gen(g);
    return kSuccess;
}
Status curandSetPseudoRandomGeneratorSeed(void* g, unsigned long long seed) {
    if (!g) return kNotInitialized;
    gen(g)->engine.seed(seed);
    return kSuccess;
}
Status curandSetGeneratorOffset(void* g, unsigned long long offset) {
    if (!g) return kNotInitialized;
    gen(g)->engine.discard(offset);
    return kSuccess;
}
Status curandSetStream(void* g, void* stream) {
    if (!g) return kNotInitialized;
    gen(g)->stream = stream;
    return kSuccess;
}
Status curandGenerateUniform(void* g, float* out, std::size_t n) { return uniform(g, out, n); }
Status curandGenerateUniformDouble(void* g, double* out, std::size_t n) {
    return uniform(g, out, n);
}
Status curandGenerateNormal(void* g, float* out, std::size_t n, float mean, float std) {
    return normal(g, out, n, mean, std);
}
Status curandGenerateNormalDouble(void* g, double* out, std::size_t n, double mean, double std) {
    return normal(g, out, n, mean, std);
}

}  // extern "C"
