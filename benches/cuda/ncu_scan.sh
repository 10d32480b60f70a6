#!/usr/bin/env bash
# On the GPU machine: Nsight Compute on the selective scan kernels, ours and mamba_ssm's, one
# launch each, on the same inputs (the cuda_scan benchmark at one shape). Needs the binaries of
# benches/cuda/package.sh; one report per kernel goes to OUT_DIR/ncu_KERNEL.txt.
#
#   bash benches/cuda/ncu_scan.sh OUT_DIR [BxDxLxN]
#
# As a device run: carry [".gpu/xz"]; about 30 s. The reports of 2026-11-27 (H200) are in
# benches/cuda/ncu/, summarised in benches/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:?usage: ncu_scan.sh OUT_DIR [BxDxLxN]}
mkdir -p "$OUT_DIR"
[ -f .gpu/xz/bin.tar.xz ] && xz -dc .gpu/xz/bin.tar.xz | tar -C .gpu -xf -
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "ncu_scan.sh: no ncu on this machine" >&2; exit 1; }
"$NCU" --version | tail -1
libdirs=$(dirname "$(find /usr/local -name libnvrtc.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH="$libdirs:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export SEQLAB_MAMBA_SSM_LIB=$PWD/.gpu/bin/libmamba_ssm_scan.so SEQLAB_SCAN_SHAPES=${2:-8x1536x2048x16}
export SEQLAB_PTX_CACHE=/tmp/seqlab-ptx
for k in selective_scan_fwd_f32 selective_scan_fwd_kernel selective_scan_bwd_f32 selective_scan_bwd_kernel; do
    timeout 100 "$NCU" -k "regex:^$k" -c 1 --section SpeedOfLight --section Occupancy \
        --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
        --section SchedulerStats .gpu/bin/cuda_scan >"$OUT_DIR/ncu_$k.txt" 2>&1
    echo "== $k: exit $?"
    grep -E "Duration|Compute \(SM\) Throughput|L1/TEX Cache Throughput|L2 Cache Throughput|DRAM Throughput|Registers Per|Achieved Occupancy|Issued Warp" "$OUT_DIR/ncu_$k.txt"
done
