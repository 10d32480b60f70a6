// Data-race checker of the CUDA CPU emulator (SEQLAB_EMU_RACECHECK=1), in the spirit of
// compute-sanitizer's racecheck.
//
// build.sh compiles kernels/*.cu with `-fsanitize=thread`, which makes g++ call a hook before
// every load and store the kernels make (`__tsan_read4(addr)`, …). No ThreadSanitizer runtime is
// linked: the hooks below are ours. With the checker on, every access to shared or global memory
// is recorded per 2-byte unit, and two accesses to one unit conflict when
// - they come from different threads of the launch, at least one writes, and not both are atomic;
// - and nothing orders them: threads of different blocks are never ordered within a launch;
//   threads of one block are ordered by a __syncthreads between the accesses, and lanes of one
//   warp also by a shuffle between them.
// The first conflict fails the launch with a message naming both threads. Fibers switch only at
// barriers, so a plain `+=` where an atomicAdd is needed sums correctly in the emulator; this is
// what finds it. Each unit keeps its last plain write, last atomic access and last plain read
// (as FastTrack keeps the last write), so a conflict with an earlier read that a later read
// replaced can go unseen. Fiber stacks (a thread's locals) are not checked; shared memory is
// per block, so an access from another block than the unit's last one starts it afresh.
#include "runtime.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

namespace seqlab_emu {
namespace {

bool racecheck_from_env() {
    const char* v = std::getenv("SEQLAB_EMU_RACECHECK");
    return v != nullptr && std::string(v) == "1";
}
bool g_racecheck = racecheck_from_env();

/// One access: by which thread, after how many block and warp barriers.
struct Access {
    AccessPoint at;
    bool valid = false;
};

/// The last plain write, atomic access and plain read of one 2-byte unit. Atomics are kept
/// apart, so that one cannot hide a plain write another thread's atomic conflicts with.
struct Unit {
    Access write, atomic, read;
};

enum class Kind { Read, Write, Atomic };

std::unordered_map<uintptr_t, Unit>& units() {
    static std::unordered_map<uintptr_t, Unit> shadow;
    return shadow;
}

/// Whether `a` happened before `b` (b is the later access in emulation order), or both are the
/// same thread's.
bool ordered(const AccessPoint& a, const AccessPoint& b) {
    if (a.block == b.block && a.thread == b.thread) return true;
    if (a.block != b.block) return false;
    if (a.block_gen != b.block_gen) return true;
    return a.thread / 32 == b.thread / 32 && a.warp_gen != b.warp_gen;
}

const char* verb(Kind k) {
    return k == Kind::Read ? "read" : k == Kind::Write ? "wrote" : "atomically updated";
}

[[noreturn]] void report(uintptr_t addr, const AccessPoint& earlier, Kind earlier_kind,
                         const AccessPoint& now, Kind now_kind) {
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "data race on %s memory at %p: thread %u of block %zu %s it and thread %u of "
                  "block %zu %s it with no __syncthreads (or, in one warp, shuffle) in between",
                  is_shared_memory(reinterpret_cast<const void*>(addr)) ? "shared" : "global",
                  reinterpret_cast<void*>(addr), earlier.thread, earlier.block, verb(earlier_kind),
                  now.thread, now.block, verb(now_kind));
    fail_launch(buf);
}

void check(const void* p, std::size_t bytes, Kind kind) {
    if (!g_racecheck || bytes == 0) return;
    const AccessPoint* at = access_point();
    if (at == nullptr || on_fiber_stack(p)) return;
    const Access now{*at, true};
    const bool shared = is_shared_memory(p);
    const uintptr_t first = reinterpret_cast<uintptr_t>(p) >> 1;
    const uintptr_t last = (reinterpret_cast<uintptr_t>(p) + bytes - 1) >> 1;
    for (uintptr_t key = first; key <= last; ++key) {
        Unit& u = units()[key];
        if (shared) {  // shared memory is the block's own: another block's accesses are gone
            for (Access* a : {&u.write, &u.atomic, &u.read})
                if (a->valid && a->at.block != now.at.block) *a = Access{};
        }
        const auto against = [&](const Access& a, Kind a_kind) {
            if (a.valid && !ordered(a.at, now.at)) report(key << 1, a.at, a_kind, now.at, kind);
        };
        against(u.write, Kind::Write);
        if (kind != Kind::Atomic) against(u.atomic, Kind::Atomic);
        if (kind != Kind::Read) against(u.read, Kind::Read);
        (kind == Kind::Read ? u.read : kind == Kind::Write ? u.write : u.atomic) = now;
    }
}

}  // namespace

void set_racecheck(bool on) { g_racecheck = on; }

void racecheck_new_launch() {
    // clear() costs the bucket array even when empty, and most launches are candle's.
    if (g_racecheck && !units().empty()) units().clear();
}

void atomic_access(const void* p, size_t bytes) { check(p, bytes, Kind::Atomic); }

}  // namespace seqlab_emu

// The hooks g++ calls from code compiled with -fsanitize=thread.
extern "C" {
using seqlab_emu::check;
using seqlab_emu::Kind;
void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
#define SEQLAB_EMU_TSAN_HOOKS(N)                                              \
    void __tsan_read##N(void* p) { check(p, N, Kind::Read); }                \
    void __tsan_write##N(void* p) { check(p, N, Kind::Write); }              \
    void __tsan_unaligned_read##N(void* p) { check(p, N, Kind::Read); }      \
    void __tsan_unaligned_write##N(void* p) { check(p, N, Kind::Write); }
SEQLAB_EMU_TSAN_HOOKS(1)
SEQLAB_EMU_TSAN_HOOKS(2)
SEQLAB_EMU_TSAN_HOOKS(4)
SEQLAB_EMU_TSAN_HOOKS(8)
SEQLAB_EMU_TSAN_HOOKS(16)
#undef SEQLAB_EMU_TSAN_HOOKS
void __tsan_read_range(void* p, unsigned long n) { check(p, n, Kind::Read); }
void __tsan_write_range(void* p, unsigned long n) { check(p, n, Kind::Write); }
}
