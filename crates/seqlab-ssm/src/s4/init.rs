//! Initialisations of diagonal / DPLR SSMs (S4D paper, Gu et al. 2022, "On the
//! Parameterization and Initialization of Diagonal State Space Models", §4 and Table 1), the
//! log-uniform timescale init (S4 paper App. D.2 / S4D §4.1) and SaShiMi's Hurwitz-stable
//! parameterisation (Goel et al. 2022, §3.2: Re(Λ) = −exp(·) and tied P = Q).
//!
//! Sign convention: as in state-spaces/s4, A = −½ − i·(…) has a non-positive imaginary part
//! (conjugating A, B, C leaves the kernel unchanged).

use rand::Rng;
use rustfft::num_complex::Complex64 as C64;

use super::hippo::{nplr, Measure};
use crate::error::{Result, SsmError};

/// Diagonal initialisation of A (S4D paper §4, Table 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S4dInit {
    /// S4D-Lin: A_n = −½ − iπn (S4D eq. (9)).
    Lin,
    /// S4D-Inv: A_n = −½ − i(N/π)(N/(2n+1) − 1) (S4D eq. (8)).
    Inv,
    /// S4D-Real: A_n = −(n+1) (real, the eigenvalues of HiPPO-LegS).
    Real,
    /// S4D-LegS: the diagonal Λ of the NPLR form of HiPPO-LegS (S4D §4.1), Re = −½.
    Legs,
}

/// The N/2 diagonal entries A_n (one per conjugate pair) of `init` for state size `n_state`
/// (even), n = 0..N/2−1 (S4D paper eqs. (8)–(9)).
pub fn s4d_init_a(init: S4dInit, n_state: usize) -> Result<Vec<C64>> {
    if n_state < 2 || !n_state.is_multiple_of(2) {
        return Err(SsmError::Invalid(format!(
            "s4d_init_a: state size must be even and >= 2, got {n_state}"
        )));
    }
    let m = n_state / 2;
    let nf = n_state as f64;
    let pi = std::f64::consts::PI;
    Ok(match init {
        S4dInit::Lin => (0..m).map(|k| C64::new(-0.5, -pi * k as f64)).collect(),
        S4dInit::Inv => (0..m)
            .map(|k| C64::new(-0.5, -(nf / pi) * (nf / (2.0 * k as f64 + 1.0) - 1.0)))
            .collect(),
        S4dInit::Real => (0..m).map(|k| C64::new(-(k as f64 + 1.0), 0.0)).collect(),
        S4dInit::Legs => {
            let d = nplr(Measure::LegS, n_state, 1, Some(2.0))?;
            d.lambda
                .iter()
                .map(|l| C64::new(-0.5, -l.im.abs()))
                .collect()
        }
    })
}

/// The B of an S4D init (per conjugate pair, N/2): ones, except S4D-LegS which takes V*B of the
/// NPLR form with Im clipped to ±2 (state-spaces/s4 `dplr(init='legs')`).
pub fn s4d_init_b(init: S4dInit, n_state: usize) -> Result<Vec<C64>> {
    match init {
        S4dInit::Legs => Ok(nplr(Measure::LegS, n_state, 1, Some(2.0))?.b),
        _ => {
            if n_state < 2 || !n_state.is_multiple_of(2) {
                return Err(SsmError::Invalid(format!(
                    "s4d_init_b: state size must be even and >= 2, got {n_state}"
                )));
            }
            Ok(vec![C64::new(1.0, 0.0); n_state / 2])
        }
    }
}

/// `h` timescales Δ log-uniform in [dt_min, dt_max] (S4 paper App. D.2: log Δ ~
/// U[log Δ_min, log Δ_max]); returns log Δ (the trained parameter).
pub fn log_uniform_log_dt<R: Rng + ?Sized>(
    rng: &mut R,
    h: usize,
    dt_min: f64,
    dt_max: f64,
) -> Result<Vec<f64>> {
    if !(dt_min > 0.0 && dt_max >= dt_min && dt_max.is_finite()) {
        return Err(SsmError::Invalid(format!(
            "log_uniform_log_dt: need 0 < dt_min <= dt_max, got [{dt_min}, {dt_max}]"
        )));
    }
    let (lo, hi) = (dt_min.ln(), dt_max.ln());
    Ok((0..h)
        .map(|_| lo + rng.random::<f64>() * (hi - lo))
        .collect())
}

/// SaShiMi's Hurwitz parameterisation of Re(Λ) (Goel et al. 2022, §3.2, "Λ with negative real
/// part via Re(Λ) = −exp(θ)"): θ = ln(−Re Λ) for Re Λ < 0 (clamped at 1e-4 from 0, as
/// upstream's `inv_transform`).
pub fn hurwitz_log_neg_re(re: f64) -> f64 {
    (-re).max(1e-4).ln()
}

/// Inverse of [`hurwitz_log_neg_re`]: Re(Λ) = −exp(θ) < 0 for every real θ, so the
/// continuous A = Λ − PP* (tied P = Q) has spectrum in the open left half-plane.
pub fn hurwitz_re(theta: f64) -> f64 {
    -theta.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s4d_inits_shapes_and_signs() {
        for init in [S4dInit::Lin, S4dInit::Inv, S4dInit::Real, S4dInit::Legs] {
            let a = s4d_init_a(init, 16).unwrap();
            assert_eq!(a.len(), 8);
            assert!(a.iter().all(|z| z.re < 0.0 && z.im <= 0.0), "{init:?}");
        }
        assert!(s4d_init_a(S4dInit::Lin, 7).is_err());
        let mut rng = rand::rng();
        let ld = log_uniform_log_dt(&mut rng, 100, 1e-3, 1e-1).unwrap();
        assert!(ld
            .iter()
            .all(|&x| (1e-3f64.ln()..=1e-1f64.ln()).contains(&x)));
        assert!((hurwitz_re(hurwitz_log_neg_re(-0.5)) + 0.5).abs() < 1e-15);
    }
}
