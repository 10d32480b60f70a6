// The emulator's kernel registry and grid runner, shared by driver.cpp and the generated
// registration units (one per kernels/*.cu, written by build.sh).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

namespace seqlab_emu {

/// Calls kernel `fn` with its parameters unpacked from the driver's `kernelParams` array.
using Trampoline = void (*)(void* fn, void** params);

/// One `extern "C" __global__` function of a kernel file.
struct KernelEntry {
    std::string name;
    void* fn;
    Trampoline call;
};

void register_kernel(const char* name, void* fn, Trampoline call);
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
void register_typed(const char* name, void (*k)(A...)) {
    register_kernel(name, reinterpret_cast<void*>(k), &trampoline<A...>);
}

}  // namespace seqlab_emu
