#!/usr/bin/env bash
# Build the CUDA binaries on a machine without a GPU (or a Rust toolchain on the GPU machine)
# and gather what benches/cuda/device_check.sh needs into .gpu/ (git-ignored):
#   .gpu/bin/{seqlab,ssm,lm,end_to_end}       stripped, CUDA 13.0, sm_90 PTX (the test binaries)
#   .gpu/bin/{cuda_scan,cuda_s4_conv}         the benchmarks, built the same way
#   .gpu/bin/libmamba_ssm_scan.so              mamba_ssm's scan kernels (benches/cuda/mamba_ssm)
#   .gpu/xz/bin.tar.xz                         the same, compressed (what travels)
#   .gpu/data/{data-text,data-audio}.tar.xz    prepared datasets (optional)
# and checks that the run's upload (the working tree with .gpu/xz and .gpu/data) fits the
# device tool's 64 MiB.
#
#   bash benches/cuda/package.sh [TEXT_DATA_DIR] [AUDIO_DATA_DIR]
#
# Toolchain: nvcc 13.0 from the PyPI wheels (the driver on the GPU machine is CUDA 13.0, and
# PTX from a newer nvcc would not load there), CUDARC_CUDA_VERSION=13000, and link stubs for
# libcuda / libcublas / libcublasLt (generated from cudarc's declarations; the real libraries
# are found at run time on the GPU machine). See benches/RESULTS.md "CUDA on a GPU".
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${SEQLAB_CUDA130:-$HOME/.cache/seqlab/cuda130}
R=$W-root
if [ ! -e "$W/.installed" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$W" \
        nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.88 \
        nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
        nvidia-curand==10.4.0.35
    touch "$W/.installed"
fi
if [ ! -e "$R/lib/libcuda.so" ]; then
    C=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.10 | head -1)
    T=$W/nvidia/cu13
    rm -rf "$R" && mkdir -p "$R/lib" "$R/stubsrc"
    ln -s "$T/bin" "$R/bin"; ln -s "$T/include" "$R/include"; ln -s "$T/nvvm" "$R/nvvm"
    ln -s lib "$R/lib64"
    for f in "$T"/lib/*.so.*; do ln -s "$f" "$R/lib/"; done
    (cd "$R/lib" && ln -s libcudart.so.13 libcudart.so && ln -s libcurand.so.10 libcurand.so \
        && ln -s libnvrtc.so.13 libnvrtc.so)
    stub() { # name soname declarations.rs
        grep -oE '^\s+fn [a-zA-Z0-9_]+\(' "$3" | sed -E 's/^\s+fn ([a-zA-Z0-9_]+)\(/\1/' \
            | sort -u | awk '{print "void "$1"(void){}"}' >"$R/stubsrc/$1.c"
        gcc -shared -fPIC -o "$R/lib/$2" -Wl,-soname,"$2" "$R/stubsrc/$1.c"
        ln -sf "$2" "$R/lib/$1.so"
    }
    stub libcuda libcuda.so.1 "$C/src/driver/sys/mod.rs"
    stub libcublas libcublas.so.13 "$C/src/cublas/sys/mod.rs"
    stub libcublasLt libcublasLt.so.13 "$C/src/cublaslt/sys/mod.rs"
fi
export CUDA_ROOT=$R CUDA_PATH=$R PATH=$R/bin:$PATH CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=90
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/gpu}
# One cargo call builds the test binaries (one per package; the GPU tests are their modules
# cuda_kernels, cuda_models and cli_cuda), the benches and the seqlab binary that cli_cuda runs
# (CARGO_BIN_EXE_seqlab); .ci/cargo-test-executables says why one.
mkdir -p .gpu/bin
built=$(.ci/cargo-test-executables --release --workspace --features cuda --locked \
    --test ssm --test lm --test end_to_end --bench cuda_scan --bench cuda_s4_conv)
take() { # KIND NAME: copy the executable built for that target to .gpu/bin/NAME
    local f
    f=$(awk -v k="$1" -v n="$2" '$1 == k && $2 == n {print $4}' <<<"$built" | tail -1)
    if [ -z "$f" ]; then
        echo "package.sh: cargo built no $1 target $2" >&2
        exit 1
    fi
    cp "$f" ".gpu/bin/$2"
}
take test ssm
take test lm
take test end_to_end
take bench cuda_scan
take bench cuda_s4_conv
take bin seqlab
bash benches/cuda/mamba_ssm/build.sh .gpu/bin/libmamba_ssm_scan.so "$R/bin/nvcc"
strip .gpu/bin/*
# One solid archive, single-threaded, with a dictionary larger than all the binaries together:
# they share candle's PTX and most of their code, so this is about a third of the size of
# compressing each alone (11.6 MB against 32.4 MB on 2026-11-27; the working tree is 32 MB).
rm -rf .gpu/xz && mkdir -p .gpu/xz
tar -C .gpu -cf - bin | xz -T1 --lzma2=preset=9e,dict=512MiB >.gpu/xz/bin.tar.xz
mkdir -p .gpu/data
pack() { # dir name
    tar -C "$(dirname "$1")" -cf - "$(basename "$1")" --transform "s|^$(basename "$1")|$2|" \
        | xz -T0 -3 >".gpu/data/$2.tar.xz"
}
[ -n "${1:-}" ] && pack "$1" data-text
[ -n "${2:-}" ] && pack "$2" data-audio
shopt -s nullglob # no datasets packed: list the binaries only
du -sh .gpu/xz/* .gpu/data/*
# What a device run uploads: tracked and untracked-not-ignored files, and the carried paths.
python3 - .gpu/xz .gpu/data <<'PY'
import os, subprocess, sys
files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, check=True).stdout.decode().split("\0")
tree = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
carried = sum(os.path.getsize(os.path.join(d, f)) for d in sys.argv[1:] for f in os.listdir(d))
total, limit = tree + carried, 64 << 20
print(f"upload: working tree {tree / 1e6:.1f} MB + carried {carried / 1e6:.1f} MB = "
      f"{total / 1e6:.1f} MB of {limit / 1e6:.1f} MB")
if total > limit:
    sys.exit("package.sh: the upload is over the device tool's 64 MiB; carry less")
PY
