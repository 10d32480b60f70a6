// The part of the CUDA driver API that seqlab's launchers (through cudarc) use, on the CPU: one
// device, "device memory" is host memory, every stream operation runs at once on the calling
// thread, and cuLaunchKernel runs the kernel's C++ build (runtime.cpp) instead of the PTX.
//
// cuModuleLoadData still receives the PTX that NVRTC compiled from the same source; its `.entry`
// names are the module's functions, so a launcher asking for a kernel the PTX lacks fails here as
// on a GPU. With SEQLAB_EMU_MAX_PTX_ISA=X.Y it also refuses PTX whose `.version` is newer than
// X.Y, as a driver older than the NVRTC that wrote the PTX does. Launches are serialised (shared
// memory is one static per kernel function).
// Every other driver function is a stub from stubs.c that returns CUDA_ERROR_NOT_SUPPORTED.
#include "runtime.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>

namespace {

using CUresult = int;
// kNotSupported is also what build.sh's generated stubs return.
constexpr CUresult kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2, kInvalidDevice = 101,
                   kInvalidImage = 200, kInvalidHandle = 400, kNotFound = 500,
                   kUnsupportedPtx = 222, kLaunchFailed = 719, kNotSupported = 801;

/// Name and description of every result the emulator returns (cuGetErrorName / String).
struct ResultText {
    CUresult code;
    const char* name;
    const char* text;
};
constexpr ResultText kResults[] = {
    {kSuccess, "CUDA_SUCCESS", "no error"},
    {kInvalidValue, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {kOutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {kInvalidDevice, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {kInvalidImage, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {kUnsupportedPtx, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "the provided PTX was compiled with an unsupported toolchain."},
    {kInvalidHandle, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {kNotFound, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {kLaunchFailed, "CUDA_ERROR_LAUNCH_FAILED",
     "unspecified launch failure (see the emulator's message above)"},
    {kNotSupported, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported (not emulated)"},
};

const ResultText& result_text(CUresult e) {
    static constexpr ResultText unknown{-1, "CUDA_ERROR_UNKNOWN", "CUDA emulator error"};
    for (const ResultText& r : kResults)
        if (r.code == e) return r;
    return unknown;
}

constexpr int kComputeMajor = 9, kComputeMinor = 0;
constexpr std::size_t kMemory = std::size_t(16) << 30;
const char* const kName = "seqlab CPU emulator (kernels/emulator)";

struct Module {
    std::set<std::string> entries;
};
struct Event {
    std::chrono::steady_clock::time_point at;
};

int g_context_tag;  // the one context is the address of this
thread_local void* t_current = nullptr;
std::mutex g_launch;

/// `.entry NAME(` declarations of a PTX text.
std::set<std::string> ptx_entries(const char* ptx) {
    std::set<std::string> names;
    const std::string text(ptx);
    for (std::size_t at = text.find(".entry"); at != std::string::npos;
         at = text.find(".entry", at + 6)) {
        std::size_t b = at + 6;
        while (b < text.size() && (text[b] == ' ' || text[b] == '\t')) ++b;
        std::size_t e = b;
        while (e < text.size() && (std::isalnum((unsigned char)text[e]) || text[e] == '_')) ++e;
        if (e > b) names.insert(text.substr(b, e - b));
    }
    return names;
}

/// A PTX ISA version "X.Y" as X * 100 + Y (-1 when there is none).
int isa_number(const char* text) {
    int major = 0, minor = 0;
    if (!text || std::sscanf(text, "%d.%d", &major, &minor) != 2) return -1;
    return major * 100 + minor;
}

/// Whether the emulated driver takes the PTX's `.version` (SEQLAB_EMU_MAX_PTX_ISA, if set).
bool ptx_isa_supported(const char* ptx) {
    const int max = isa_number(std::getenv("SEQLAB_EMU_MAX_PTX_ISA"));
    const char* v = std::strstr(ptx, ".version");
    return max < 0 || !v || isa_number(v + 8) <= max;
}

}  // namespace

extern "C" {

CUresult cuInit(unsigned) { return kSuccess; }
CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return kSuccess;
}
CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return kSuccess;
}
CUresult cuDeviceGet(int* dev, int ordinal) {
    if (ordinal != 0) return kInvalidDevice;
    *dev = 0;
    return kSuccess;
}
CUresult cuDeviceGetName(char* name, int len, int) {
    if (len <= 0) return kInvalidValue;
    std::snprintf(name, (std::size_t)len, "%s", kName);
    return kSuccess;
}
CUresult cuDeviceGetAttribute(int* v, int attribute, int) {
    switch (attribute) {
        case 1: *v = 1024; break;                 // max threads per block
        case 2: case 3: *v = 1024; break;         // max block dim x, y
        case 4: *v = 64; break;                   // max block dim z
        case 5: *v = 2147483647; break;           // max grid dim x
        case 6: case 7: *v = 65535; break;        // max grid dim y, z
        case 8: case 97: *v = 48 * 1024; break;   // shared memory per block (static, opt-in)
        case 10: *v = 32; break;                  // warp size
        case 16: *v = 1; break;                   // multiprocessors
        case 75: *v = kComputeMajor; break;
        case 76: *v = kComputeMinor; break;
        case 115: *v = 1; break;                  // memory pools (cuMemAllocAsync)
        default: *v = 0;
    }
    return kSuccess;
}
CUresult cuDeviceTotalMem_v2(std::size_t* bytes, int) {
    *bytes = kMemory;
    return kSuccess;
}
CUresult cuDeviceGetUuid(unsigned char* uuid, int) {
    std::memset(uuid, 0x5e, 16);
    return kSuccess;
}
CUresult cuDeviceGetUuid_v2(unsigned char* uuid, int dev) { return cuDeviceGetUuid(uuid, dev); }
CUresult cuMemGetInfo_v2(std::size_t* free_bytes, std::size_t* total) {
    *free_bytes = kMemory;
    *total = kMemory;
    return kSuccess;
}

CUresult cuDevicePrimaryCtxRetain(void** ctx, int) {
    *ctx = &g_context_tag;
    return kSuccess;
}
CUresult cuDevicePrimaryCtxRelease_v2(int) { return kSuccess; }
CUresult cuCtxSetCurrent(void* ctx) {
    t_current = ctx;
    return kSuccess;
}
CUresult cuCtxGetCurrent(void** ctx) {
    *ctx = t_current;
    return kSuccess;
}
CUresult cuCtxPushCurrent_v2(void* ctx) { return cuCtxSetCurrent(ctx); }
CUresult cuCtxPopCurrent_v2(void** ctx) {
    if (ctx) *ctx = t_current;
    return kSuccess;
}
CUresult cuCtxGetDevice(int* dev) {
    *dev = 0;
    return kSuccess;
}
CUresult cuCtxSynchronize() { return kSuccess; }

CUresult cuStreamCreate(void** stream, unsigned) {
    *stream = new int(0);
    return kSuccess;
}
CUresult cuStreamCreateWithPriority(void** stream, unsigned flags, int) {
    return cuStreamCreate(stream, flags);
}
CUresult cuStreamGetPriority(void*, int* priority) {
    *priority = 0;
    return kSuccess;
}
CUresult cuCtxGetStreamPriorityRange(int* least, int* greatest) {
    *least = 0;
    *greatest = 0;
    return kSuccess;
}
CUresult cuStreamDestroy_v2(void* stream) {
    delete static_cast<int*>(stream);
    return kSuccess;
}
CUresult cuStreamSynchronize(void*) { return kSuccess; }
CUresult cuStreamQuery(void*) { return kSuccess; }
CUresult cuStreamWaitEvent(void*, void*, unsigned) { return kSuccess; }

CUresult cuEventCreate(void** event, unsigned) {
    *event = new Event{std::chrono::steady_clock::now()};
    return kSuccess;
}
CUresult cuEventDestroy_v2(void* event) {
    delete static_cast<Event*>(event);
    return kSuccess;
}
CUresult cuEventRecord(void* event, void*) {
    if (!event) return kInvalidHandle;
    static_cast<Event*>(event)->at = std::chrono::steady_clock::now();
    return kSuccess;
}
CUresult cuEventRecordWithFlags(void* event, void* stream, unsigned) {
    return cuEventRecord(event, stream);
}
CUresult cuEventSynchronize(void*) { return kSuccess; }
CUresult cuEventQuery(void*) { return kSuccess; }
CUresult cuEventElapsedTime(float* ms, void* start, void* end) {
    if (!start || !end) return kInvalidHandle;
    *ms = std::chrono::duration<float, std::milli>(static_cast<Event*>(end)->at -
                                                   static_cast<Event*>(start)->at)
              .count();
    return kSuccess;
}
CUresult cuEventElapsedTime_v2(float* ms, void* start, void* end) {
    return cuEventElapsedTime(ms, start, end);
}

CUresult cuMemAlloc_v2(unsigned long long* ptr, std::size_t bytes) {
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!p) return kOutOfMemory;
    *ptr = (unsigned long long)p;
    return kSuccess;
}
CUresult cuMemAllocAsync(unsigned long long* ptr, std::size_t bytes, void*) {
    return cuMemAlloc_v2(ptr, bytes);
}
CUresult cuMemFree_v2(unsigned long long ptr) {
    std::free((void*)ptr);
    return kSuccess;
}
CUresult cuMemFreeAsync(unsigned long long ptr, void*) { return cuMemFree_v2(ptr); }
CUresult cuMemcpyHtoD_v2(unsigned long long dst, const void* src, std::size_t n) {
    std::memcpy((void*)dst, src, n);
    return kSuccess;
}
CUresult cuMemcpyHtoDAsync_v2(unsigned long long dst, const void* src, std::size_t n, void*) {
    return cuMemcpyHtoD_v2(dst, src, n);
}
CUresult cuMemcpyDtoH_v2(void* dst, unsigned long long src, std::size_t n) {
    std::memcpy(dst, (const void*)src, n);
    return kSuccess;
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, unsigned long long src, std::size_t n, void*) {
    return cuMemcpyDtoH_v2(dst, src, n);
}
CUresult cuMemcpyDtoD_v2(unsigned long long dst, unsigned long long src, std::size_t n) {
    std::memmove((void*)dst, (const void*)src, n);
    return kSuccess;
}
CUresult cuMemcpyDtoDAsync_v2(unsigned long long dst, unsigned long long src, std::size_t n,
                              void*) {
    return cuMemcpyDtoD_v2(dst, src, n);
}
CUresult cuMemsetD8_v2(unsigned long long dst, unsigned char v, std::size_t n) {
    std::memset((void*)dst, v, n);
    return kSuccess;
}
CUresult cuMemsetD8Async(unsigned long long dst, unsigned char v, std::size_t n, void*) {
    return cuMemsetD8_v2(dst, v, n);
}
CUresult cuMemsetD32_v2(unsigned long long dst, unsigned v, std::size_t n) {
    unsigned* p = (unsigned*)dst;
    for (std::size_t i = 0; i < n; ++i) p[i] = v;
    return kSuccess;
}
CUresult cuMemsetD32Async(unsigned long long dst, unsigned v, std::size_t n, void*) {
    return cuMemsetD32_v2(dst, v, n);
}

CUresult cuModuleLoadData(void** module, const void* image) {
    if (!image) return kInvalidValue;
    if (!ptx_isa_supported(static_cast<const char*>(image))) return kUnsupportedPtx;
    auto* m = new Module{ptx_entries(static_cast<const char*>(image))};
    if (m->entries.empty()) {
        delete m;
        return kInvalidImage;
    }
    *module = m;
    return kSuccess;
}
CUresult cuModuleUnload(void* module) {
    delete static_cast<Module*>(module);
    return kSuccess;
}
CUresult cuModuleGetFunction(void** function, void* module, const char* name) {
    if (!module || !name) return kInvalidHandle;
    if (!static_cast<Module*>(module)->entries.count(name)) return kNotFound;
    const seqlab_emu::KernelEntry* k = seqlab_emu::find_kernel(name);
    if (!k) {
        std::fprintf(stderr, "CUDA emulator: kernel %s is in the PTX but was not built into %s\n",
                     name, kName);
        return kNotFound;
    }
    *function = const_cast<seqlab_emu::KernelEntry*>(k);
    return kSuccess;
}
CUresult cuFuncGetAttribute(int* v, int, void*) {
    *v = 0;
    return kSuccess;
}
CUresult cuFuncSetAttribute(void*, int, int) { return kSuccess; }

CUresult cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shared_bytes, void*, void** params,
                        void** extra) {
    if (!function) return kInvalidHandle;
    const auto& k = *static_cast<const seqlab_emu::KernelEntry*>(function);
    if (shared_bytes != 0 || extra != nullptr) {
        std::fprintf(stderr, "CUDA emulator: %s: dynamic shared memory and `extra` are not emulated\n",
                     k.name.c_str());
        return kInvalidValue;
    }
    const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    std::lock_guard<std::mutex> lock(g_launch);
    const std::string error = seqlab_emu::run_grid(k, grid, block, params);
    if (!error.empty()) {
        std::fprintf(stderr, "CUDA emulator: %s\n", error.c_str());
        return kLaunchFailed;
    }
    return kSuccess;
}

CUresult cuGetErrorString(CUresult e, const char** s) {
    *s = result_text(e).text;
    return kSuccess;
}
CUresult cuGetErrorName(CUresult e, const char** s) {
    *s = result_text(e).name;
    return kSuccess;
}

}  // extern "C"
