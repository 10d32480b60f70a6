// The emulator's kernel registry and grid runner, shared by driver.cpp and the generated
// registration units (one per kernels/*.cu, written by build.sh).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

namespace seqlab_emu {

/// Calls kernel `fn` with its parameters unpacked from the driver's `kernelParams` array.
using Trampoline = void (*)(void* fn, void** params);

/// Where a kernel comes from. Ours (kernels/*.cu, and the self-test's) have their shared memory
/// filled with 0xFF bytes before each block and their accesses seen by the race checker;
/// foreign ones (candle's) neither: they have no hooks, and the fill would only cost time.
enum class KernelSource { Ours, Foreign };

/// One `extern "C" __global__` function of a kernel file.
struct KernelEntry {
    std::string name;
    void* fn;
    Trampoline call;
    KernelSource source;
};

void register_kernel(const char* name, void* fn, Trampoline call, KernelSource source);
/// The kernel called `name`, or null.
const KernelEntry* find_kernel(const std::string& name);

/// The order blocks run in, and fibers are resumed in within a block: ascending (the default)
/// or descending (also chosen by SEQLAB_EMU_SCHEDULE=descending). Code that reads what another
/// thread writes without a barrier in between sees the write in one order and not in the other.
void set_schedule(bool descending);

/// Runs `kernel` over the grid, blocks one after another, each block's threads as fibers.
/// Returns an empty string, or why the launch failed (a deadlock, a shuffle the emulator does not
/// model); the failure message names the kernel and block.
std::string run_grid(const KernelEntry& kernel, const unsigned grid[3], const unsigned block[3],
                     void** params);

// ---- For the race checker (racecheck.cpp) ----------------------------------------------------

/// Where the running thread is: its block's and its own number in the launch, and how many
/// block barriers (__syncthreads) and warp barriers (shuffles) of its warp have passed.
struct AccessPoint {
    std::size_t block = 0;
    unsigned thread = 0, block_gen = 0, warp_gen = 0;
};
/// The running thread's point, or null outside a launch and in foreign kernels.
const AccessPoint* access_point();
/// Whether `p` is on a fiber's stack (a thread's own locals).
bool on_fiber_stack(const void* p);
/// Whether `p` is in a registered shared-memory range (emulator.h).
bool is_shared_memory(const void* p);
/// Ends the launch from inside a fiber, which fails with `why` (never returns to the kernel).
[[noreturn]] void fail_launch(const std::string& why);
/// Turns the race checker on or off (initially on when SEQLAB_EMU_RACECHECK=1).
void set_racecheck(bool on);
/// Forgets the accesses of the previous launch.
void racecheck_new_launch();
/// Records an atomic read-modify-write of `bytes` at `p` (emulator.h's atomics).
void atomic_access(const void* p, std::size_t bytes);

/// `kernelParams[i]` points at parameter i, as cuLaunchKernel passes them.
template <typename... A, std::size_t... I>
void call_unpacked(void (*k)(A...), void** params, std::index_sequence<I...>) {
    k(*static_cast<A*>(params[I])...);
}
template <typename... A>
void trampoline(void* fn, void** params) {
    call_unpacked(reinterpret_cast<void (*)(A...)>(fn), params, std::index_sequence_for<A...>{});
}
template <typename... A>
void register_typed(const char* name, void (*k)(A...), KernelSource source = KernelSource::Ours) {
    register_kernel(name, reinterpret_cast<void*>(k), &trampoline<A...>, source);
}

}  // namespace seqlab_emu
