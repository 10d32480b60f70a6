#!/usr/bin/env bash
# Builds the CUDA CPU emulator into one library folder, so a `--features cuda` executable links and
# runs on a machine without a GPU (LIBRARY_PATH and LD_LIBRARY_PATH = that folder):
#   libcuda.so.1       the driver API subset (driver.cpp) with every kernels/*.cu built in as C++
#                      (emulator.h, runtime.cpp); all other driver functions return
#                      CUDA_ERROR_NOT_SUPPORTED
#   libcublas.so.13, libcublasLt.so.13, libcurand.so.10
#                      link stubs (candle links them; every function returns an error status)
#   links to the real libcudart / libnvrtc found in LIB_DIRS (NVRTC still compiles the kernels)
#
#   bash kernels/emulator/build.sh OUT_DIR [LIB_DIR...]
#
# The lists of functions to stub come from cudarc's declarations (the version in Cargo.lock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
cudarc_version=$(grep -A1 '^name = "cudarc"' "$here/../../Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')
find_cudarc() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_version" 2>/dev/null | head -1; }
cudarc=$(find_cudarc)
if [ -z "$cudarc" ]; then
    (cd "$here/../.." && cargo fetch --locked >/dev/null)
    cudarc=$(find_cudarc)
fi
[ -n "$cudarc" ] || { echo "build.sh: cudarc $cudarc_version sources not found" >&2; exit 1; }

CXX=${CXX:-g++}
CC=${CC:-gcc}
flags=(-std=c++17 -O2 -g -fPIC -Wall -Wno-unused-function -Wno-unknown-pragmas -Wno-maybe-uninitialized)
obj="$out/obj"
rm -rf "$obj" && mkdir -p "$obj"

# One translation unit per kernel file: the source as NVRTC sees it, then a static registrar
# for each `extern "C" __global__` function.
objs=()
for cu in "$here"/../*.cu; do
    name=$(basename "$cu" .cu)
    kernels=$(perl -0777 -ne 'print "$1\n" while /__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s*)?(\w+)\s*\(/g' "$cu")
    [ -n "$kernels" ] || { echo "build.sh: no __global__ function in $cu" >&2; exit 1; }
    {
        echo "#include \"$cu\""
        echo '#include "runtime.h"'
        echo 'namespace {'
        echo 'struct Registrar {'
        echo '    Registrar() {'
        for k in $kernels; do echo "        seqlab_emu::register_typed(\"$k\", &$k);"; done
        echo '    }'
        echo '} registrar;'
        echo '}  // namespace'
    } >"$obj/$name.reg.cpp"
    "$CXX" "${flags[@]}" -include "$here/emulator.h" -I"$here" -c "$obj/$name.reg.cpp" -o "$obj/$name.o"
    objs+=("$obj/$name.o")
done
"$CXX" "${flags[@]}" -I"$here" -c "$here/runtime.cpp" -o "$obj/runtime.o"
"$CXX" "${flags[@]}" -I"$here" -c "$here/driver.cpp" -o "$obj/driver.o"

# Stubs: int f(void) { return status; } for every declared function not defined above.
declared() { grep -oE '^\s+(pub )?fn [a-zA-Z0-9_]+\(' "$1" | sed -E 's/^\s+(pub )?fn ([a-zA-Z0-9_]+)\(/\2/' | sort -u; }
stubs() { # declarations.rs status defined-names-file > stubs.c
    declared "$1" | comm -23 - "$3" | awk -v s="$2" '{print "int "$1"(void) { return "s"; }"}'
}
nm --defined-only "$obj/driver.o" | awk '$2 == "T" {print $3}' | sort -u >"$obj/defined.txt"
stubs "$cudarc/src/driver/sys/mod.rs" 801 "$obj/defined.txt" >"$obj/driver_stubs.c"
"$CC" -O1 -fPIC -c "$obj/driver_stubs.c" -o "$obj/driver_stubs.o"
"$CXX" -shared -o "$out/libcuda.so.1" -Wl,-soname,libcuda.so.1 "${objs[@]}" "$obj/runtime.o" \
    "$obj/driver.o" "$obj/driver_stubs.o"
ln -sf libcuda.so.1 "$out/libcuda.so"

: >"$obj/none.txt"
stub_lib() { # name soname declarations.rs status
    stubs "$3" "$4" "$obj/none.txt" >"$obj/$1.c"
    "$CC" -shared -fPIC -O1 -o "$out/$2" -Wl,-soname,"$2" "$obj/$1.c"
    ln -sf "$2" "$out/$1.so"
}
stub_lib libcublas libcublas.so.13 "$cudarc/src/cublas/sys/mod.rs" 15     # CUBLAS_STATUS_NOT_SUPPORTED
stub_lib libcublasLt libcublasLt.so.13 "$cudarc/src/cublaslt/sys/mod.rs" 15
stub_lib libcurand libcurand.so.10 "$cudarc/src/curand/sys/mod.rs" 203    # CURAND_STATUS_INITIALIZATION_FAILED

# The real runtime and NVRTC libraries, under the names the linker and the loader look for.
for dir in "$@"; do
    for f in "$dir"/libcudart.so.* "$dir"/libnvrtc.so.* "$dir"/libnvrtc-builtins.so.*; do
        [ -e "$f" ] || continue
        ln -sf "$f" "$out/$(basename "$f")"
        base=$(basename "$f" | sed -E 's/\.so\..*/.so/')
        [ "$base" = libnvrtc-builtins.so ] || ln -sf "$(basename "$f")" "$out/$base"
    done
done
echo "CUDA emulator: $out/libcuda.so.1 ($(wc -l <"$obj/defined.txt") driver functions emulated," \
    "$(cat "$here"/../*.cu | grep -c '__global__') kernels)"

# The emulator's own test (selftest.cpp), linked against the library just built.
"$CXX" "${flags[@]}" -include "$here/emulator.h" -I"$here" "$here/selftest.cpp" \
    -o "$obj/selftest" -L"$out" -l:libcuda.so.1 -Wl,-rpath,"$out"
"$obj/selftest"
