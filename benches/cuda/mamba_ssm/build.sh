#!/usr/bin/env bash
# Build mamba_ssm's selective-scan kernels (the reference CUDA implementation) into a small
# shared library with a C entry point, for the side-by-side benchmark in
# crates/seqlab-ssm/benches/cuda_scan.rs (SEQLAB_MAMBA_SSM_LIB=path/to/the/library).
#
#   bash benches/cuda/mamba_ssm/build.sh OUT_LIB [NVCC]
#
# The source is mamba_ssm's release on the Python package index (version and sha256 pinned
# below), fetched through pip's own index; nothing of it is kept in this repository. PyTorch is
# not needed: shim/ stands in for the few c10 / ATen names the kernels use. Compiled for sm_90
# (H100 / H200) with the nvcc flags of mamba_ssm's setup.py, cudart linked statically, so the
# library needs only the driver. Takes a few minutes on 2 cores.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build.sh OUT_LIB [NVCC]}
NVCC=${2:-nvcc}
VERSION=2.3.2.post1
SHA256=104cc47e9101e5401a675fa2b784f2952b9b037f3b1dd83b5ac544394e95d028
SRC=${SEQLAB_CACHE:-$HOME/.cache/seqlab}/mamba_ssm-$VERSION
if [ ! -e "$SRC/.ok" ]; then
    mkdir -p "$SRC"
    python3 - "$VERSION" "$SHA256" "$SRC/sdist.tar.gz" <<'PY'
import hashlib, json, sys, urllib.request
from pip._internal.models.index import PyPI  # pip's own default index

version, sha, out = sys.argv[1:]
name = f"mamba_ssm-{version}.tar.gz"
req = urllib.request.Request(PyPI.simple_url + "/mamba-ssm/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = [f for f in json.load(urllib.request.urlopen(req))["files"] if f["filename"] == name]
if not files:
    sys.exit(f"{name} is not on the package index")
data = urllib.request.urlopen(files[0]["url"]).read()
if hashlib.sha256(data).hexdigest() != sha:
    sys.exit(f"{name}: sha256 mismatch")
open(out, "wb").write(data)
PY
    tar -C "$SRC" -xzf "$SRC/sdist.tar.gz" --strip-components=3 \
        "mamba_ssm-$VERSION/csrc/selective_scan"
    touch "$SRC/.ok"
fi
FLAGS=(-O3 -std=c++17 -U__CUDA_NO_HALF_OPERATORS__ -U__CUDA_NO_HALF_CONVERSIONS__
    -U__CUDA_NO_BFLOAT16_OPERATORS__ -U__CUDA_NO_BFLOAT16_CONVERSIONS__
    -U__CUDA_NO_BFLOAT162_OPERATORS__ -U__CUDA_NO_BFLOAT162_CONVERSIONS__
    --expt-relaxed-constexpr --expt-extended-lambda --use_fast_math
    -gencode arch=compute_90,code=sm_90 -Xcompiler -fPIC -I"$SRC" -I"$HERE" -I"$HERE/shim")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$NVCC" "${FLAGS[@]}" -c "$HERE/scan_fwd.cu" -o "$TMP/fwd.o" &
"$NVCC" "${FLAGS[@]}" -c "$HERE/scan_bwd.cu" -o "$TMP/bwd.o"
wait $!
# The toolkit's static libraries, beside nvcc (a PyPI-wheel toolkit has lib/, a system one lib64/).
LIBDIRS=()
for d in lib lib64; do
    L=$(dirname "$(command -v "$NVCC")")/../$d
    [ -d "$L" ] && LIBDIRS+=(-L"$L")
done
"$NVCC" -shared -cudart static -gencode arch=compute_90,code=sm_90 "${LIBDIRS[@]}" \
    "$TMP/fwd.o" "$TMP/bwd.o" -o "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "built $OUT (mamba_ssm $VERSION selective scan, sm_90)"
