//! S4 and S4D: structured state-space sequence layers (Gu et al. 2022, "Efficiently Modeling
//! Long Sequences with Structured State Spaces"; Gu et al. 2022, "On the Parameterization and
//! Initialization of Diagonal State Space Models"; Goel et al. 2022, "It's Raw! Audio
//! Generation with State-Space Models" for the stable parameterisation). One file per idea:
//!
//! - [`hippo`]: HiPPO LegS / LegT / FouT matrices and their NPLR form (f64 diagonalisation by
//!   the Jacobi eigensolver of [`linalg`]).
//! - [`init`]: S4D-Lin / Inv / Real / LegS, log-uniform Δ, the Hurwitz parameterisation.
//! - [`s4d_kernel`]: the diagonal kernel by a Vandermonde product (ZOH / bilinear), backward,
//!   and the diagonal recurrence (step mode).
//! - [`s4_kernel`]: the DPLR kernel by Cauchy sums + Woodbury + inverse FFT with C̃,
//!   backward, and the O(N) DPLR recurrence (step mode).
//! - [`dplr_diag`]: the diagonalised DPLR recurrence (eigenvalues of Λ − pp* by the secular
//!   equation), S4's diagonal step mode.
//! - [`fft_conv`]: convolution mode by real FFTs of size 2L, the direct reference, backward.
//! - [`tensor`]: all of the above as differentiable candle ops.
//! - [`block`]: the S4/S4D block (kernel + D + GELU + GLU projection, pre-norm residual).
//!
//! Complex parameters are (H, N/2) arrays, one per conjugate pair, passed as separate re / im
//! slices; Im(A) ≤ 0 as upstream state-spaces/s4.

pub mod block;
pub mod dplr_diag;
pub mod fft_conv;
pub mod hippo;
pub mod init;
pub mod linalg;
pub mod s4_kernel;
pub mod s4d_kernel;
pub mod tensor;

pub use block::{S4Block, S4BlockConfig, S4BlockState, SsmKind};
pub use dplr_diag::s4_diagonal_recurrence;
pub use fft_conv::{direct_conv, fft_conv, fft_conv_bwd, ConvFloat, ConvGrads, FftConvPlan};
pub use hippo::{nplr, rank_correction, transition, Measure, Nplr};
pub use init::{
    hurwitz_log_neg_re, hurwitz_re, log_uniform_log_dt, s4d_init_a, s4d_init_b, S4dInit,
};
/// The complex scalar of the S4 set-up code (num-complex's, as re-exported by rustfft).
pub use rustfft::num_complex::Complex64 as C64;
pub use s4_kernel::{
    cauchy, s4_c_tilde, s4_kernel, s4_kernel_bwd, s4_true_c, DplrGrads, DplrParams, S4Recurrence,
};
pub use s4d_kernel::{
    s4d_kernel, s4d_kernel_bwd, s4d_vandermonde_kernel, s4d_vandermonde_kernel_bwd, Disc, S4dGrads,
    S4dParams, S4dRecurrence,
};
pub use tensor::{fft_conv_tensor, s4_kernel_tensor, s4d_kernel_tensor, toeplitz_conv_tensor};
