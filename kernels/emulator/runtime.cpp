// Runs a grid on the CPU: one block at a time, every thread of the block a fiber on the calling
// OS thread. A fiber runs until it must wait: at `__syncthreads`, or in either half of a
// warp shuffle. The scheduler then resumes the first fiber, in thread order, that can go on, so
// one warp runs as far as it can before the next starts. The order is ascending thread (and
// block) index, or descending with SEQLAB_EMU_SCHEDULE=descending. Between two barriers the
// threads therefore run one after another, and warps drift as far apart as the barriers allow.
// Code that reads another thread's write without a barrier in between is right in at most one
// of the two orders. When no unfinished fiber can go on, the launch fails with a deadlock
// message naming the kernel and block.
#include "emulator.h"
#include "runtime.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace seqlab_emu {
namespace {

constexpr std::size_t kStackBytes = 256 * 1024;

// ---- Switching between fibers ---------------------------------------------------------------
#if defined(__x86_64__)
// The registers a System V x86-64 call preserves (rbx, rbp, r12-r15) and the stack pointer:
// all a switch made at a function call must keep. About 15 instructions and no system call,
// where swapcontext also saves and restores the signal mask with one (it made the emulator
// spend most of its time switching).
struct Context {
    void* sp = nullptr;
};
extern "C" void seqlab_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl seqlab_emu_switch
    .hidden seqlab_emu_switch
    .type seqlab_emu_switch, @function
seqlab_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size seqlab_emu_switch, .-seqlab_emu_switch
)");
void switch_context(Context& save, const Context& load) { seqlab_emu_switch(&save.sp, load.sp); }
/// A context that starts `entry` (which must never return) on the given stack.
void start_context(Context& c, char* stack, std::size_t bytes, void (*entry)()) {
    auto* top = reinterpret_cast<void**>(
        reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15));
    // From the top: a never-used return address for `entry` (so its stack is aligned as after a
    // call), `entry` for seqlab_emu_switch's ret, and six zero registers for its pops.
    top[-1] = nullptr;
    top[-2] = reinterpret_cast<void*>(entry);
    for (int i = 3; i <= 8; ++i) top[-i] = nullptr;
    c.sp = top - 8;
}
#else
struct Context {
    ucontext_t uc;
};
void switch_context(Context& save, const Context& load) { swapcontext(&save.uc, &load.uc); }
void start_context(Context& c, char* stack, std::size_t bytes, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
#endif

constexpr int kWarp = 32;

std::map<std::string, KernelEntry>& registry() {
    static std::map<std::string, KernelEntry> kernels;
    return kernels;
}

enum class Wait { None, Block, Warp };

struct Fiber {
    Context ctx;
    ThreadIndex idx;
    bool done = false;
    Wait wait = Wait::None;
    unsigned wait_gen = 0;  // the barrier generation it waits to see pass
};

/// The block being run, with its barrier state.
struct BlockRun {
    const KernelEntry* kernel = nullptr;
    void** params = nullptr;
    std::size_t block_number = 0;  // in the launch, in x-fastest order
    std::vector<Fiber> fibers;
    Context scheduler;
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
    bool descending = false;
    // The scheduler's search for the next fiber (schedule order = thread order, or its reverse):
    // fibers before `first` have finished; fibers before the one that last ran could not go on
    // when it was chosen, and only a barrier opening (recorded in `reopened`) changes that.
    std::size_t first = 0, reopened = SIZE_MAX;

    /// Position of thread `t` in schedule order.
    std::size_t pos(int t) const { return descending ? fibers.size() - 1 - t : t; }
    /// Threads lo..=hi may go on again (their barrier opened).
    void opened(int lo, int hi) { reopened = std::min({reopened, pos(lo), pos(hi)}); }

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
    switch_context(r.fibers[r.current].ctx, r.scheduler);
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
        r.opened(warp * kWarp, warp * kWarp + r.warp_size[warp] - 1);
        return;
    }
    wait_for(Wait::Warp, gen);
}

[[noreturn]] void fiber_main() {
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
        r.reopened = 0;
    }
    for (;;) yield_to_scheduler();  // a finished fiber is never resumed
}

std::string where(const BlockRun& r, const unsigned b[3]) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s, block (%u, %u, %u)", r.kernel->name.c_str(), b[0], b[1],
                  b[2]);
    return buf;
}

}  // namespace

void set_schedule(bool descending) { g_descending = descending; }

namespace {
/// The modules' shared-memory ranges (emulator.h registers them from static constructors, so
/// the list is built on first use).
std::vector<std::pair<char*, char*>>& shared_ranges() {
    static std::vector<std::pair<char*, char*>> ranges;
    return ranges;
}
}  // namespace

void register_shared_memory(char* begin, char* end) {
    auto& ranges = shared_ranges();
    if (begin != nullptr && begin < end &&
        std::find(ranges.begin(), ranges.end(), std::make_pair(begin, end)) == ranges.end())
        ranges.emplace_back(begin, end);
}

bool is_shared_memory(const void* p) {
    const char* c = static_cast<const char*>(p);
    for (const auto& [begin, end] : shared_ranges())
        if (c >= begin && c < end) return true;
    return false;
}

const AccessPoint* access_point() {
    if (g_run == nullptr || g_run->kernel->source != KernelSource::Ours) return nullptr;
    static AccessPoint point;
    const BlockRun& r = *g_run;
    point = {r.block_number, (unsigned)r.current, r.block_gen, r.warp_gen[r.current / kWarp]};
    return &point;
}

bool on_fiber_stack(const void* p) {
    const char *c = static_cast<const char*>(p), *lo = g_stacks.get();
    return c >= lo && c < lo + g_stack_threads * kStackBytes;
}

void fail_launch(const std::string& why) { fail(why); }

void register_kernel(const char* name, void* fn, Trampoline call, KernelSource source) {
    registry()[name] = KernelEntry{name, fn, call, source};
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
        r.reopened = 0;
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
                      const unsigned block[3], const unsigned b[3], std::size_t number) {
    const std::size_t threads = (std::size_t)block[0] * block[1] * block[2];
    const int warps = (int)((threads + kWarp - 1) / kWarp);
    BlockRun r;
    r.kernel = &kernel;
    r.params = params;
    r.block_number = number;
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
        start_context(f.ctx, g_stacks.get() + t * kStackBytes, kStackBytes, fiber_main);
    }
    if (kernel.source == KernelSource::Ours)
        for (const auto& [begin, end] : shared_ranges()) memset(begin, 0xFF, end - begin);
    g_run = &r;
    std::string error;
    // The next fiber is the first in schedule order that can go on. The search starts where it
    // can first find one (BlockRun::first, reopened), so a phase between two barriers costs one
    // pass over the threads, not one per thread.
    r.descending = g_descending;
    const auto nth = [&](std::size_t i) { return (int)(r.descending ? threads - 1 - i : i); };
    std::size_t from = 0;
    while (r.live > 0) {
        while (r.first < threads && r.fibers[nth(r.first)].done) ++r.first;
        from = std::max(r.first, std::min(from, r.reopened));
        r.reopened = SIZE_MAX;
        int next = -1;
        for (std::size_t i = from; i < threads && next < 0; ++i)
            if (r.runnable(nth(i))) next = nth(i);
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
        from = r.pos(next);
        switch_context(r.scheduler, r.fibers[next].ctx);
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
    racecheck_new_launch();
    for (std::size_t i = 0; i < blocks; ++i) {
        const std::size_t lb = g_descending ? blocks - 1 - i : i;
        const unsigned b[3] = {(unsigned)(lb % grid[0]), (unsigned)(lb / grid[0] % grid[1]),
                               (unsigned)(lb / ((std::size_t)grid[0] * grid[1]))};
        std::string error = run_block(kernel, params, grid, block, b, lb);
        if (!error.empty()) return error;
    }
    return "";
}

}  // namespace seqlab_emu
