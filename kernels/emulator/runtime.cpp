// Runs a grid on the CPU: one block at a time, every thread of the block a ucontext fiber on the
// calling OS thread. A fiber runs until it must wait: at `__syncthreads`, or in either half of a
// warp shuffle. The scheduler then resumes the first fiber, in thread order, that can go on, so
// one warp runs as far as it can before the next starts. The order is ascending thread (and
// block) index, or descending with SEQLAB_EMU_SCHEDULE=descending. Between two barriers the
// threads therefore run one after another, and warps drift as far apart as the barriers allow.
// Code that reads another thread's write without a barrier in between is right in at most one
// of the two orders. When no unfinished fiber can go on, the launch fails with a deadlock
// message naming the kernel and block.
#include "emulator.h"
#include "runtime.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

namespace seqlab_emu {
namespace {

constexpr std::size_t kStackBytes = 256 * 1024;
constexpr int kWarp = 32;

std::map<std::string, KernelEntry>& registry() {
    static std::map<std::string, KernelEntry> kernels;
    return kernels;
}

enum class Wait { None, Block, Warp };

struct Fiber {
    ucontext_t ctx;
    ThreadIndex idx;
    bool done = false;
    Wait wait = Wait::None;
    unsigned wait_gen = 0;  // the barrier generation it waits to see pass
};

/// The block being run, with its barrier state.
struct BlockRun {
    const KernelEntry* kernel = nullptr;
    void** params = nullptr;
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    int current = 0;
    int live = 0;
    // __syncthreads: arrivals and generation (a waiting fiber leaves when the generation moves).
    int block_arrived = 0;
    unsigned block_gen = 0;
    // Warp barriers, per warp.
    std::vector<int> warp_size, warp_live, warp_arrived;
    std::vector<unsigned> warp_gen;
    std::vector<uint64_t> exchange;  // one word per thread, for shuffles
    std::string error;

    bool runnable(int t) const {
        const Fiber& f = fibers[t];
        switch (f.wait) {
            case Wait::None: return !f.done;
            case Wait::Block: return block_gen != f.wait_gen;
            case Wait::Warp: return warp_gen[t / kWarp] != f.wait_gen;
        }
        return false;
    }
};

BlockRun* g_run = nullptr;
bool descending_from_env() {
    const char* v = std::getenv("SEQLAB_EMU_SCHEDULE");
    return v != nullptr && std::string(v) == "descending";
}
bool g_descending = descending_from_env();
std::unique_ptr<char[]> g_stacks;
std::size_t g_stack_threads = 0;

void yield_to_scheduler() {
    BlockRun& r = *g_run;
    swapcontext(&r.fibers[r.current].ctx, &r.scheduler);
}

/// Ends the launch from inside a fiber: records why and never returns to the kernel.
[[noreturn]] void fail(const std::string& why) {
    BlockRun& r = *g_run;
    if (r.error.empty()) r.error = why;
    for (;;) yield_to_scheduler();
}

/// Parks the running fiber until generation `gen` of its barrier has passed.
void wait_for(Wait kind, unsigned gen) {
    BlockRun& r = *g_run;
    Fiber& me = r.fibers[r.current];
    me.wait = kind;
    me.wait_gen = gen;
    yield_to_scheduler();  // resumed only once the barrier has opened
    me.wait = Wait::None;
}

void warp_barrier(int warp) {
    BlockRun& r = *g_run;
    const unsigned gen = r.warp_gen[warp];
    if (++r.warp_arrived[warp] == r.warp_live[warp]) {
        r.warp_arrived[warp] = 0;
        ++r.warp_gen[warp];
        return;
    }
    wait_for(Wait::Warp, gen);
}

void fiber_main() {
    BlockRun& r = *g_run;
    r.kernel->call(r.kernel->fn, r.params);
    r.fibers[r.current].done = true;
    --r.live;
    const int warp = r.current / kWarp;
    --r.warp_live[warp];
    if (r.warp_arrived[warp] > 0)
        fail("a thread exited while lanes of its warp wait in a shuffle (undefined on a GPU)");
    // Exited threads no longer count at __syncthreads (as on the GPU).
    if (r.block_arrived > 0 && r.block_arrived == r.live) {
        r.block_arrived = 0;
        ++r.block_gen;
    }
    // Returning resumes uc_link, the scheduler.
}

std::string where(const BlockRun& r, const unsigned b[3]) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s, block (%u, %u, %u)", r.kernel->name.c_str(), b[0], b[1],
                  b[2]);
    return buf;
}

}  // namespace

void set_schedule(bool descending) { g_descending = descending; }

void register_kernel(const char* name, void* fn, Trampoline call) {
    registry()[name] = KernelEntry{name, fn, call};
}

const KernelEntry* find_kernel(const std::string& name) {
    auto it = registry().find(name);
    return it == registry().end() ? nullptr : &it->second;
}

const ThreadIndex& current() { return g_run->fibers[g_run->current].idx; }

int lane_id() { return g_run->current % kWarp; }

void sync_block() {
    BlockRun& r = *g_run;
    const unsigned gen = r.block_gen;
    if (++r.block_arrived == r.live) {
        r.block_arrived = 0;
        ++r.block_gen;
        return;
    }
    wait_for(Wait::Block, gen);
}

uint64_t warp_exchange(uint64_t mine, int src_lane, unsigned mask, const char* what) {
    BlockRun& r = *g_run;
    const int tid = r.current, warp = tid / kWarp, size = r.warp_size[warp];
    const unsigned full = size == kWarp ? 0xffffffffu : ((1u << size) - 1u);
    if ((mask & full) != full)
        fail(std::string(what) + " with a partial mask (not emulated)");
    if (r.warp_live[warp] != size)
        fail(std::string(what) + " after a lane of the warp exited (undefined on a GPU)");
    r.exchange[tid] = mine;
    warp_barrier(warp);  // every lane has published
    const int src = warp * kWarp + src_lane % kWarp;
    const uint64_t got = (src_lane < size && src < (int)r.exchange.size()) ? r.exchange[src] : mine;
    warp_barrier(warp);  // every lane has read before any lane publishes again
    return got;
}

float f16_bits_to_f32(unsigned short h) {
    _Float16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}

unsigned short f32_to_f16_bits(float f) {
    _Float16 v = (_Float16)f;  // round to nearest even, as cvt.rn.f16.f32
    unsigned short h;
    memcpy(&h, &v, 2);
    return h;
}

namespace {

/// Runs one block to completion; returns "" or why it failed.
std::string run_block(const KernelEntry& kernel, void** params, const unsigned grid[3],
                      const unsigned block[3], const unsigned b[3]) {
    const std::size_t threads = (std::size_t)block[0] * block[1] * block[2];
    const int warps = (int)((threads + kWarp - 1) / kWarp);
    BlockRun r;
    r.kernel = &kernel;
    r.params = params;
    r.fibers.resize(threads);
    r.live = (int)threads;
    r.warp_size.assign(warps, kWarp);
    r.warp_size[warps - 1] = (int)(threads - (std::size_t)(warps - 1) * kWarp);
    r.warp_live = r.warp_size;
    r.warp_arrived.assign(warps, 0);
    r.warp_gen.assign(warps, 0);
    r.exchange.assign(threads, 0);
    for (std::size_t t = 0; t < threads; ++t) {
        Fiber& f = r.fibers[t];
        f.idx.thread_idx = {(unsigned)(t % block[0]), (unsigned)(t / block[0] % block[1]),
                            (unsigned)(t / ((std::size_t)block[0] * block[1]))};
        f.idx.block_idx = {b[0], b[1], b[2]};
        f.idx.block_dim = {block[0], block[1], block[2]};
        f.idx.grid_dim = {grid[0], grid[1], grid[2]};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = g_stacks.get() + t * kStackBytes;
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = &r.scheduler;
        makecontext(&f.ctx, fiber_main, 0);
    }
    g_run = &r;
    std::string error;
    while (r.live > 0) {
        int next = -1;
        for (std::size_t i = 0; i < threads && next < 0; ++i) {
            const int t = (int)(g_descending ? threads - 1 - i : i);
            if (r.runnable(t)) next = t;
        }
        if (next < 0) {
            char buf[200];
            std::snprintf(buf, sizeof buf,
                          ": deadlock: %d of %zu threads unfinished, %d of them waiting at "
                          "__syncthreads, the rest in warp shuffles",
                          r.live, threads, r.block_arrived);
            error = where(r, b) + buf;
            break;
        }
        r.current = next;
        swapcontext(&r.scheduler, &r.fibers[next].ctx);
        if (!r.error.empty()) {
            error = where(r, b) + ": " + r.error;
            break;
        }
    }
    g_run = nullptr;
    return error;
}

}  // namespace

std::string run_grid(const KernelEntry& kernel, const unsigned grid[3], const unsigned block[3],
                     void** params) {
    const std::size_t threads = (std::size_t)block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024 || grid[0] == 0 || grid[1] == 0 || grid[2] == 0)
        return kernel.name + ": invalid launch dimensions";
    if (threads > g_stack_threads) {
        g_stacks.reset(new char[threads * kStackBytes]);  // untouched until a fiber uses it
        g_stack_threads = threads;
    }
    const std::size_t blocks = (std::size_t)grid[0] * grid[1] * grid[2];
    for (std::size_t i = 0; i < blocks; ++i) {
        const std::size_t lb = g_descending ? blocks - 1 - i : i;
        const unsigned b[3] = {(unsigned)(lb % grid[0]), (unsigned)(lb / grid[0] % grid[1]),
                               (unsigned)(lb / ((std::size_t)grid[0] * grid[1]))};
        std::string error = run_block(kernel, params, grid, block, b);
        if (!error.empty()) return error;
    }
    return "";
}

}  // namespace seqlab_emu
