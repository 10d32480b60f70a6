// Self-test of the CUDA CPU emulator, run by build.sh: small kernels through the emulated driver
// API, each checked against values worked out by hand. It shows that the emulator gives CUDA's
// answers for shuffles and barriers, and that the bugs it exists to catch are caught: a missing
// __syncthreads gives wrong numbers, a barrier some threads never reach is reported as a deadlock,
// a shuffle with an exited lane is an error, shared memory read before it is written is NaN, and
// the race checker reports unordered conflicting accesses.
#include "runtime.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// ---- kernels ------------------------------------------------------------------------------

extern "C" __global__ void shuffles(int* up, int* down, int* xr, float* wide) {
    const int t = threadIdx.x;
    up[t] = __shfl_up_sync(0xffffffffu, t, 3);
    down[t] = __shfl_down_sync(0xffffffffu, t, 5);
    xr[t] = __shfl_xor_sync(0xffffffffu, t, 6);
    // A 64-bit value and a width of 8 lanes.
    const double d = __shfl_down_sync(0xffffffffu, (double)t + 0.5, 2, 8);
    wide[t] = (float)d;
}

// Block sum through shared memory: correct only because of the barriers.
extern "C" __global__ void block_sum(const float* x, float* out, int with_barriers) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = x[blockIdx.x * blockDim.x + t];
    if (with_barriers) __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) s[t] += s[t + stride];
        if (with_barriers) __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// Each thread reads what its left neighbour wrote: needs the barrier.
extern "C" __global__ void shift_right(const float* x, float* out, int with_barrier) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = x[t];
    if (with_barrier) __syncthreads();
    out[t] = t > 0 ? s[t - 1] : 0.f;
}

// Thread 0 clears a shared total that every warp then adds to: needs the first barrier.
extern "C" __global__ void clear_then_add(int* out, int with_barrier) {
    __shared__ int total;
    if (threadIdx.x == 0) total = 0;
    if (with_barrier) __syncthreads();
    const int one = __shfl_xor_sync(0xffffffffu, 1, 1);  // warp-level work before the add
    if ((threadIdx.x & 31) == 0) atomicAdd(&total, one);
    __syncthreads();
    if (threadIdx.x == 0) *out = total;
}

// Lanes 0..15 wait in a shuffle for lanes 16..31, which wait at __syncthreads: hangs on a GPU.
extern "C" __global__ void divergent_barrier(int* out) {
    const int t = threadIdx.x;
    if ((t & 31) < 16) out[t] = __shfl_xor_sync(0xffffffffu, t, 1);
    else __syncthreads();
}

// Half of each warp returns, the other half shuffles with a full mask.
extern "C" __global__ void shuffle_after_exit(int* out) {
    const int t = threadIdx.x;
    if (t & 1) return;
    out[t] = __shfl_down_sync(0xffffffffu, t, 1);
}

// Reads shared memory before any thread of its block wrote it: garbage on a GPU.
extern "C" __global__ void read_before_write(float* out) {
    __shared__ float s[64];
    const int t = threadIdx.x;
    out[blockIdx.x * blockDim.x + t] = s[t];
    s[t] = 1.f;
}

// Every thread adds 1 to one global total: right on a GPU only with atomicAdd.
extern "C" __global__ void count_threads(int* total, int atomic) {
    if (atomic) atomicAdd(total, 1);
    else *total += 1;
}

// ---- driver API (driver.cpp) ----------------------------------------------------------------

extern "C" {
int cuModuleLoadData(void** module, const void* image);
int cuModuleGetFunction(void** function, void* module, const char* name);
int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned shared_bytes, void* stream, void** params, void** extra);
}

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("  %-70s %s\n", what.c_str(), ok ? "ok" : "FAILED");
    std::fflush(stdout);
    failures += !ok;
}

void* function(void* module, const char* name) {
    void* f = nullptr;
    if (cuModuleGetFunction(&f, module, name) != 0) {
        std::printf("  cannot find %s\n", name);
        ++failures;
    }
    return f;
}

int launch(void* f, unsigned blocks, unsigned threads, std::vector<void*> params) {
    return cuLaunchKernel(f, blocks, 1, 1, threads, 1, 1, 0, nullptr, params.data(), nullptr);
}

}  // namespace

int main() {
    seqlab_emu::register_typed("shuffles", &shuffles);
    seqlab_emu::register_typed("block_sum", &block_sum);
    seqlab_emu::register_typed("shift_right", &shift_right);
    seqlab_emu::register_typed("clear_then_add", &clear_then_add);
    seqlab_emu::register_typed("divergent_barrier", &divergent_barrier);
    seqlab_emu::register_typed("shuffle_after_exit", &shuffle_after_exit);
    seqlab_emu::register_typed("read_before_write", &read_before_write);
    seqlab_emu::register_typed("count_threads", &count_threads);
    const char* ptx =
        ".visible .entry shuffles(\n.visible .entry block_sum(\n.visible .entry shift_right(\n"
        ".visible .entry clear_then_add(\n"
        ".visible .entry divergent_barrier(\n.visible .entry shuffle_after_exit(\n"
        ".visible .entry read_before_write(\n.visible .entry count_threads(\n";
    void* module = nullptr;
    if (cuModuleLoadData(&module, ptx) != 0) return 1;
    std::printf("CUDA emulator self-test\n");

    {  // shuffles over two warps of 64 threads
        const int n = 64;
        std::vector<int> up(n, -1), down(n, -1), xr(n, -1);
        std::vector<float> wide(n, -1.f);
        int *pu = up.data(), *pd = down.data(), *px = xr.data();
        float* pw = wide.data();
        const int rc = launch(function(module, "shuffles"), 1, n, {&pu, &pd, &px, &pw});
        bool ok_up = true, ok_down = true, ok_xor = true, ok_wide = true;
        for (int t = 0; t < n; ++t) {
            const int lane = t % 32;
            ok_up &= up[t] == (lane >= 3 ? t - 3 : t);
            ok_down &= down[t] == (lane + 5 < 32 ? t + 5 : t);
            ok_xor &= xr[t] == (t ^ 6);
            ok_wide &= wide[t] == (float)((lane % 8) + 2 < 8 ? t + 2 : t) + 0.5f;
        }
        check(rc == 0 && ok_up, "__shfl_up_sync: lane - 3, own value below lane 3");
        check(rc == 0 && ok_down, "__shfl_down_sync: lane + 5, own value past lane 31");
        check(rc == 0 && ok_xor, "__shfl_xor_sync: lane ^ 6");
        check(rc == 0 && ok_wide, "64-bit __shfl_down_sync with width 8");
    }
    {  // block sums, 3 blocks of 256
        const int blocks = 3, n = 256;
        std::vector<float> x(blocks * n), out(blocks, -1.f);
        for (int i = 0; i < blocks * n; ++i) x[i] = (float)(i % 7) - 2.f;
        std::vector<float> want(blocks, 0.f);
        for (int i = 0; i < blocks * n; ++i) want[i / n] += x[i];
        const float* px = x.data();
        float* po = out.data();
        int with = 1;
        void* f = function(module, "block_sum");
        int rc = launch(f, blocks, n, {&px, &po, &with});
        check(rc == 0 && out == want, "shared-memory block sum with __syncthreads is exact");
        with = 0;
        rc = launch(f, blocks, n, {&px, &po, &with});
        check(rc == 0 && out != want, "the same sum without __syncthreads is wrong");
    }
    {  // a neighbour read without a barrier: right in ascending order only, by luck
        const int n = 200;
        void* f = function(module, "shift_right");
        bool right[2][2];  // [descending][with barrier]
        int rc = 0, launch_no = 0;
        for (int desc = 0; desc < 2; ++desc)
            for (int with = 0; with < 2; ++with) {
                seqlab_emu::set_schedule(desc == 1);
                // Fresh values each launch, so a stale shared value cannot pass for a new one.
                std::vector<float> x(n), out(n, -1.f);
                for (int i = 0; i < n; ++i) x[i] = (float)(1000 * ++launch_no + i);
                const float* px = x.data();
                float* po = out.data();
                rc |= launch(f, 1, n, {&px, &po, &with});
                bool ok = out[0] == 0.f;
                for (int i = 1; i < n; ++i) ok &= out[i] == x[i - 1];
                right[desc][with] = ok;
            }
        seqlab_emu::set_schedule(false);
        check(rc == 0 && right[0][1] && right[1][1], "neighbour read with __syncthreads: exact in both orders");
        check(rc == 0 && right[0][0] && !right[1][0],
              "neighbour read without it: hidden ascending, wrong descending");
    }
    {  // warps drift apart: without the barrier, later warps add before warp 0 clears
        void* f = function(module, "clear_then_add");
        bool right[2][2];  // [descending][with barrier]
        int rc = 0;
        for (int desc = 0; desc < 2; ++desc)
            for (int with = 0; with < 2; ++with) {
                seqlab_emu::set_schedule(desc == 1);
                int out = -1;
                int* po = &out;
                rc |= launch(f, 1, 128, {&po, &with});
                right[desc][with] = out == 4;
            }
        seqlab_emu::set_schedule(false);
        check(rc == 0 && right[0][1] && right[1][1], "clear, barrier, add from 4 warps: exact in both orders");
        check(rc == 0 && right[0][0] && !right[1][0],
              "clear then add without it: hidden ascending, wrong descending");
    }
    {  // shared memory is poisoned before every block, the first one included
        std::vector<float> out(2 * 64, 0.f);
        float* po = out.data();
        const int rc = launch(function(module, "read_before_write"), 2, 64, {&po});
        bool all_nan = true;
        for (float v : out) all_nan &= v != v;
        check(rc == 0 && all_nan, "shared memory read before it is written: NaN in every block");
    }
    {  // the race checker: conflicting accesses with nothing ordering them fail the launch
        seqlab_emu::set_racecheck(true);
        std::printf("  (race checker on; the launches meant to fail print why)\n");
        std::fflush(stdout);
        int total = 0, atomic = 1;
        int* pt = &total;
        int rc = launch(function(module, "count_threads"), 2, 64, {&pt, &atomic});
        check(rc == 0 && total == 128, "racecheck: 128 atomicAdds to one word pass");
        atomic = 0;
        rc = launch(function(module, "count_threads"), 2, 64, {&pt, &atomic});
        check(rc == 719, "racecheck: the same with a plain += is a race (sums right here)");
        std::vector<float> x(256, 1.f), sums(2, 0.f);
        const float* px = x.data();
        float* ps = sums.data();
        int with = 1;
        rc = launch(function(module, "block_sum"), 2, 128, {&px, &ps, &with});
        check(rc == 0 && sums[0] == 128.f, "racecheck: tree sum with barriers passes");
        std::vector<float> out(200);
        float* po = out.data();
        rc = launch(function(module, "shift_right"), 1, 200, {&px, &po, &with});
        check(rc == 0, "racecheck: neighbour read after a barrier passes");
        with = 0;
        bool both = true;
        for (int desc = 0; desc < 2; ++desc) {
            seqlab_emu::set_schedule(desc == 1);
            both &= launch(function(module, "shift_right"), 1, 200, {&px, &po, &with}) == 719;
        }
        seqlab_emu::set_schedule(false);
        check(both, "racecheck: neighbour read without it is a race, in either order");
        seqlab_emu::set_racecheck(false);
    }
    {
        std::vector<int> out(64, 0);
        int* po = out.data();
        std::printf("  (the next two launches are meant to fail; their messages follow)\n");
        std::fflush(stdout);
        int rc = launch(function(module, "divergent_barrier"), 1, 64, {&po});
        check(rc == 719, "a barrier that half a warp never reaches: launch failure (deadlock)");
        rc = launch(function(module, "shuffle_after_exit"), 1, 64, {&po});
        check(rc == 719, "a shuffle whose source lanes exited: launch failure");
    }
    std::printf("%s\n", failures == 0 ? "self-test passed" : "self-test FAILED");
    return failures == 0 ? 0 : 1;
}
