"""S4D layer forward in PyTorch (CPU), the reference formula of state-spaces/s4 SSMKernelDiag
(ZOH) + FFTConv: K = 2 Re(sum_n C_n B_n (exp(dt A_n) - 1)/A_n exp(dt A_n l)) by the naive
Vandermonde matrix (log_vandermonde_naive), then y = irfft(rfft(u, 2L) rfft(K, 2L))[:L] + D u.

Inputs: the closed-form formulas of crates/seqlab-ssm/benches/s4d.rs (S4D-Inv A, B = 1,
C = (cos(0.37 i) + i sin(0.53 i))/2, dt log-spaced in [1e-3, 1e-1], D = 0.5 + 0.01 h,
u = sin(0.001 t (h+1)) + 0.1 cos(0.7 (h L + t))), float32 / complex64 as upstream's default.

Usage: benches/compare/.venv/bin/python benches/compare/s4d_pytorch.py [--h 32] [--l 16384]
       [--threads 2] [--runs 5]
Prints one JSON line: median ms of the layer forward (kernel + FFT conv) and of the kernel alone.
"""
import argparse, json, math, statistics, time

import torch


def inputs(h, l, n=64):
    m = n // 2
    k = torch.arange(m, dtype=torch.float64)
    a_im = -(n / math.pi) * (n / (2 * k + 1) - 1)  # S4D-Inv, negative imaginary as upstream
    A = torch.complex(torch.full((h, m), -0.5, dtype=torch.float64), a_im.repeat(h, 1))
    i = torch.arange(h * m, dtype=torch.float64).reshape(h, m)
    C = torch.complex(torch.cos(0.37 * i) * 0.5, torch.sin(0.53 * i) * 0.5)
    B = torch.ones(h, m, dtype=torch.complex128)
    hh = torch.arange(h, dtype=torch.float64)
    dt = torch.exp(math.log(1e-3) + (math.log(1e-1) - math.log(1e-3)) * hh / (max(h, 2) - 1))
    D = (0.5 + 0.01 * hh).float()
    t = torch.arange(l, dtype=torch.float64)
    flat = torch.arange(h * l, dtype=torch.float64).reshape(h, l)
    u = (torch.sin(0.001 * t[None, :] * (hh[:, None] + 1)) + 0.1 * torch.cos(0.7 * flat)).float()
    return A.to(torch.complex64), B.to(torch.complex64), C.to(torch.complex64), dt.float(), D, u[None]


def kernel(A, B, C, dt, L):
    dtA = dt[:, None] * A  # (H M)
    Cp = C * B * (torch.exp(dtA) - 1.0) / A
    V = torch.exp(dtA.unsqueeze(-1) * torch.arange(L).to(dtA))  # (H M L)
    return 2 * torch.einsum("hn,hnl->hl", Cp, V).real


def layer(A, B, C, dt, D, u):
    L = u.size(-1)
    K = kernel(A, B, C, dt, L)
    k_f = torch.fft.rfft(K, n=2 * L)
    u_f = torch.fft.rfft(u, n=2 * L)
    y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]
    return y + u * D[:, None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--h", type=int, default=32)
    ap.add_argument("--l", type=int, default=16384)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    A, B, C, dt, D, u = inputs(a.h, a.l)
    with torch.no_grad():
        y = layer(A, B, C, dt, D, u)
        def timed(fn):
            fn()
            ts = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
            return statistics.median(ts)
        layer_ms = timed(lambda: layer(A, B, C, dt, D, u))
        kernel_ms = timed(lambda: kernel(A, B, C, dt, a.l))
    print(json.dumps({
        "torch": torch.__version__, "threads": a.threads, "H": a.h, "L": a.l,
        "layer_fwd_ms": layer_ms, "kernel_ms": kernel_ms,
        "sum_y": float(y.double().sum()), "y_0_last": float(y[0, 0, -1]),
    }))


if __name__ == "__main__":
    main()
