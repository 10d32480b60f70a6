#!/usr/bin/env bash
# Builds the CUDA CPU emulator into one library folder, so a `--features cuda` executable links and
# runs on a machine without a GPU (LIBRARY_PATH and LD_LIBRARY_PATH = that folder):
#   libcuda.so.1       the driver API subset (driver.cpp) with kernels built in as C++
#                      (emulator.h, runtime.cpp): every kernels/*.cu, and candle's own kernel files
#                      (foreign.h) that its f32 tensor ops use; all other driver functions return
#                      CUDA_ERROR_NOT_SUPPORTED; a race checker for ours (racecheck.cpp)
#   libcublas.so.13    the f32 GEMMs candle's matmul calls (cublas.cpp)
#   libcurand.so.10    uniform and normal generators (curand.cpp)
#   libcublasLt.so.13  a link stub (every function returns an error status)
#   links to the real libcudart / libnvrtc found in LIB_DIRS (NVRTC still compiles the kernels);
#   the toolkit headers candle's kernels include are read from LIB_DIR/../include
#
#   bash kernels/emulator/build.sh OUT_DIR LIB_DIR...
#
# The lists of functions to stub come from cudarc's declarations, and candle's kernel sources
# from the candle-kernels crate (the versions in Cargo.lock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
crate_sources() { # NAME: the crate's source folder in the cargo registry, fetched if missing
    local version dir
    version=$(grep -A1 "^name = \"$1\"" "$here/../../Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')
    dir=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$version" 2>/dev/null | head -1)
    if [ -z "$dir" ]; then
        (cd "$here/../.." && cargo fetch --locked >/dev/null)
        dir=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$version" 2>/dev/null | head -1)
    fi
    [ -n "$dir" ] || { echo "build.sh: $1 $version sources not found" >&2; exit 1; }
    echo "$dir"
}
cudarc=$(crate_sources cudarc)
candle_kernels=$(crate_sources candle-kernels)/src
include=""
for dir in "$@"; do
    [ -e "$dir/../include/cuda_fp16.h" ] && include=$(cd "$dir/../include" && pwd) && break
done
[ -n "$include" ] || { echo "build.sh: no CUDA headers (LIB_DIR/../include/cuda_fp16.h)" >&2; exit 1; }

CXX=${CXX:-g++}
CC=${CC:-gcc}
flags=(-std=c++17 -O2 -g -fPIC -Wall -Wno-unused-function -Wno-unknown-pragmas -Wno-maybe-uninitialized)
obj="$out/obj"
rm -rf "$obj" && mkdir -p "$obj"

# One translation unit per kernel file: the source as NVRTC sees it, then a static registrar
# for each `extern "C" __global__` function. The kernels are listed from the preprocessed source
# (emulator.h marks them under SEQLAB_EMU_LIST_KERNELS), so macro-made ones are found too.
objs=()
build_kernel_file() { # NAME UNIT_HEAD UNIT_TAIL NAMESPACE_PREFIX Ours|Foreign FLAGS...
    local name=$1 head=$2 tail=$3 ns=$4 source=$5 unit="$obj/$1.reg.cpp" kernels
    shift 5
    printf '%s\n' "$head" "$tail" >"$obj/$name.list.cpp"
    kernels=$("$CXX" "$@" -E -P -DSEQLAB_EMU_LIST_KERNELS "$obj/$name.list.cpp" |
        perl -0777 -ne 'print "$1\n" while /extern\s+"C"\s+__seqlab_emu_kernel__\s+void\s+(\w+)\s*\(/g')
    [ -n "$kernels" ] || { echo "build.sh: no __global__ function in $name" >&2; exit 1; }
    {
        printf '%s\n' "$head" "$tail" '#include "runtime.h"' 'namespace {' 'struct Registrar {' \
            '    Registrar() {'
        for k in $kernels; do
            echo "        seqlab_emu::register_typed(\"$k\", &$ns$k, seqlab_emu::KernelSource::$source);"
        done
        printf '%s\n' '    }' '} registrar;' '}  // namespace'
    } >"$unit"
    "$CXX" "$@" -c "$unit" -o "$obj/$name.o"
    objs+=("$obj/$name.o")
}
# Our kernels are compiled with -fsanitize=thread: g++ then calls a hook before each of their
# loads and stores, which racecheck.cpp implements (no ThreadSanitizer runtime is linked).
# Our kernels' __shared__ variables (function-local statics, each in a `.bss._ZZ…` section of its
# own with -fdata-sections) are gathered into one output section, which the runtime fills with
# 0xFF bytes before each block (emulator.h), so a read of shared memory the block has not written
# yet gives NaN, not an earlier block's value.
shared_ld="$obj/shared.ld"
own_objects=()
for cu in "$here"/../*.cu; do
    build_kernel_file "$(basename "$cu" .cu)" "#include \"$cu\"" "" "" Ours "${flags[@]}" \
        -fdata-sections -fsanitize=thread -include "$here/emulator.h" -I"$here"
    own_objects+=("$(basename "$cu" .cu).o")
done
shared_section() { # OBJECT_FILE_NAMES...
    printf '%s\n' 'SECTIONS {' '  seqlab_emu_shared : {' \
        '    PROVIDE_HIDDEN(__start_seqlab_emu_shared = .);'
    printf '    */%s(.bss._ZZ*)\n' "$@"
    printf '%s\n' '    PROVIDE_HIDDEN(__stop_seqlab_emu_shared = .);' '  }' '} INSERT AFTER .bss;'
}
shared_section "${own_objects[@]}" >"$shared_ld"
# candle's kernel files behind its tensor ops, each in a namespace of its own (foreign.h). Left
# out: sort.cu (dynamic shared memory) and the quantized kernels, which seqlab does not use; a
# launch of one of their kernels fails with a message naming it.
for name in affine binary cast conv fill indexing reduce ternary unary; do
    build_kernel_file "candle_$name" "#include \"foreign.h\"
namespace candle_$name {
#include \"$candle_kernels/$name.cu\"" "}" "candle_$name::" Foreign "${flags[@]}" -w \
        -I"$here" -I"$include" -I"$include/cccl" -I"$candle_kernels"
done
for part in runtime racecheck; do
    "$CXX" "${flags[@]}" -I"$here" -c "$here/$part.cpp" -o "$obj/$part.o"
done

# One library: its emulated functions (SOURCE, may be empty), and a stub
# `int f(void) { return STATUS; }` for every other function cudarc declares for it.
library() { # SONAME DECLARATIONS.rs STATUS LINK_FLAGS [SOURCE.cpp] [MORE_OBJECTS...]
    local soname=$1 decls=$2 status=$3 link_flags=$4 base=${1%%.so*} emulated=()
    shift 4
    if [ $# -gt 0 ]; then
        "$CXX" "${flags[@]}" -I"$here" -c "$here/$1" -o "$obj/$base.o"
        emulated=("$obj/$base.o")
        shift
    fi
    emulated+=("$@")
    if [ ${#emulated[@]} -gt 0 ]; then
        nm --defined-only "${emulated[@]}" | awk '$2 == "T" {print $3}' | sort -u
    fi >"$obj/$base.defined.txt"
    grep -oE '^\s+(pub )?fn [a-zA-Z0-9_]+\(' "$decls" | sed -E 's/^\s+(pub )?fn ([a-zA-Z0-9_]+)\(/\2/' |
        sort -u | comm -23 - "$obj/$base.defined.txt" |
        awk -v s="$status" '{print "int "$1"(void) { return "s"; }"}' >"$obj/$base.stubs.c"
    "$CC" -O1 -fPIC -c "$obj/$base.stubs.c" -o "$obj/$base.stubs.o"
    # Symbols versioned as the real library's (libcurand's are): the loader then has no warning.
    printf '%s { global: *; };\n' "$soname" >"$obj/$base.map"
    # shellcheck disable=SC2086  # LINK_FLAGS: zero or more words
    "$CXX" -shared -o "$out/$soname" -Wl,-soname,"$soname" -Wl,--version-script,"$obj/$base.map" \
        $link_flags "${emulated[@]}" "$obj/$base.stubs.o"
    ln -sf "$soname" "$out/$base.so"
}
library libcuda.so.1 "$cudarc/src/driver/sys/mod.rs" 801 "-Wl,-T,$shared_ld" driver.cpp \
    "${objs[@]}" "$obj/runtime.o" "$obj/racecheck.o"
library libcublas.so.13 "$cudarc/src/cublas/sys/mod.rs" 15 "" cublas.cpp   # ..._NOT_SUPPORTED
library libcurand.so.10 "$cudarc/src/curand/sys/mod.rs" 203 "" curand.cpp  # ..._INITIALIZATION_FAILED
library libcublasLt.so.13 "$cudarc/src/cublaslt/sys/mod.rs" 15 ""

# The real runtime and NVRTC libraries, under the names the linker and the loader look for.
for dir in "$@"; do
    for f in "$dir"/libcudart.so.* "$dir"/libnvrtc.so.* "$dir"/libnvrtc-builtins.so.*; do
        [ -e "$f" ] || continue
        ln -sf "$f" "$out/$(basename "$f")"
        base=$(basename "$f" | sed -E 's/\.so\..*/.so/')
        [ "$base" = libnvrtc-builtins.so ] || ln -sf "$(basename "$f")" "$out/$base"
    done
done
count() { grep -c "$@" || true; }
echo "CUDA emulator in $out: $(nm --defined-only "$obj/libcuda.o" | count ' T cu') driver functions," \
    "$(cat "$obj"/*.reg.cpp | count register_typed) kernels ($(cat "$obj"/candle_*.reg.cpp |
        count register_typed) of them candle's), $(count . "$obj/libcublas.defined.txt") cuBLAS" \
    "and $(count . "$obj/libcurand.defined.txt") cuRAND functions"

# The emulator's own test (selftest.cpp), linked against the library just built.
"$CXX" "${flags[@]}" -fdata-sections -fsanitize=thread -include "$here/emulator.h" -I"$here" \
    -c "$here/selftest.cpp" -o "$obj/selftest.o"
shared_section selftest.o >"$obj/selftest.ld"
"$CXX" -o "$obj/selftest" -Wl,-T,"$obj/selftest.ld" "$obj/selftest.o" -L"$out" -l:libcuda.so.1 \
    -Wl,-rpath,"$out"
"$obj/selftest"
