//! Noise schedules: α and α′ against closed forms and central finite differences of α, the NELBO
//! weight (exactly −1/t for log-linear), the inverse t(α), and bad parameters.

use seqlab_diffusion::loss::antithetic_times;
use seqlab_diffusion::schedule::SCHEDULE_NAMES;
use seqlab_diffusion::NoiseSchedule;
use std::f64::consts::PI;

fn all() -> Vec<NoiseSchedule> {
    SCHEDULE_NAMES
        .iter()
        .map(|n| NoiseSchedule::from_name(n).unwrap())
        .chain([
            NoiseSchedule::LogLinear { eps: 0.0 },
            NoiseSchedule::LogLinear { eps: 0.1 },
            NoiseSchedule::Cosine { eps: 0.05 },
            NoiseSchedule::Linear {
                sigma_min: 0.5,
                sigma_max: 4.0,
            },
        ])
        .collect()
}

#[test]
fn closed_forms() {
    let ll = NoiseSchedule::LogLinear { eps: 1e-3 };
    assert_eq!(ll, NoiseSchedule::default());
    for t in [0.0, 0.1, 0.5, 0.9, 1.0] {
        assert!((ll.alpha(t) - (1.0 - 0.999 * t)).abs() < 1e-15);
        assert_eq!(ll.alpha_prime(t), -0.999);
    }
    assert!((ll.alpha(1.0) - 1e-3).abs() < 1e-15, "α_1 = ε");
    let lin = NoiseSchedule::from_name("linear").unwrap();
    assert!((lin.alpha(0.5) - (-5.0f64).exp()).abs() < 1e-15);
    assert!((lin.alpha_prime(0.5) + 10.0 * (-5.0f64).exp()).abs() < 1e-14);
    assert_eq!(lin.alpha(0.0), 1.0);
    let geo = NoiseSchedule::from_name("geometric").unwrap();
    let s = (1e-3f64 * 1.0).sqrt();
    assert!((geo.sigma(0.5) - s).abs() < 1e-15);
    assert!((geo.alpha(0.5) - (-s).exp()).abs() < 1e-15);
    assert!((geo.alpha_prime(0.5) + s * 1e3f64.ln() * (-s).exp()).abs() < 1e-14);
    let cos = NoiseSchedule::from_name("cosine").unwrap();
    let want = 1e-3 + 0.999 * (PI / 4.0).cos();
    assert!((cos.alpha(0.5) - want).abs() < 1e-15);
    assert!((cos.alpha_prime(0.5) + 0.999 * PI / 2.0 * (PI / 4.0).sin()).abs() < 1e-14);
    assert!((cos.alpha(0.0) - 1.0).abs() < 1e-15 && (cos.alpha(1.0) - 1e-3).abs() < 1e-15);
}

#[test]
fn derivative_matches_finite_differences_and_weight_is_its_ratio() {
    let h = 1e-5;
    for s in all() {
        for i in 1..20 {
            let t = i as f64 / 20.0;
            let fd = (s.alpha(t + h) - s.alpha(t - h)) / (2.0 * h);
            let a = s.alpha_prime(t);
            assert!(
                (fd - a).abs() <= 1e-8 * (1.0 + a.abs()),
                "{s:?} t={t}: α′ {a} vs finite difference {fd}"
            );
            assert!(a <= 0.0, "{s:?}: α must decrease");
            let m = s.mask_prob(t);
            assert!((m - (1.0 - s.alpha(t))).abs() < 1e-14, "{s:?}: 1 − α");
            let w = s.weight(t);
            assert!(
                (w - a / m).abs() <= 1e-12 * w.abs(),
                "{s:?}: w = α′/(1 − α)"
            );
            assert!(
                (s.sigma(t) + s.alpha(t).ln()).abs() < 1e-12,
                "{s:?}: σ = −ln α"
            );
        }
    }
}

#[test]
fn loglinear_weight_is_exactly_minus_one_over_t_for_any_eps() {
    for eps in [0.0, 1e-3, 0.1, 0.5] {
        let s = NoiseSchedule::LogLinear { eps };
        for t in [1e-4, 0.01, 0.25, 0.5, 0.999, 1.0] {
            assert_eq!(s.weight(t), -1.0 / t);
            // and the generic ratio agrees to rounding
            let ratio = s.alpha_prime(t) / s.mask_prob(t);
            assert!((ratio + 1.0 / t).abs() <= 1e-12 / t);
        }
    }
}

#[test]
fn time_at_alpha_inverts_alpha() {
    for s in all() {
        for i in 1..20 {
            let t = i as f64 / 20.0;
            let back = s.time_at_alpha(s.alpha(t));
            assert!((back - t).abs() < 1e-9, "{s:?}: t {t} -> {back}");
        }
    }
    let ll = NoiseSchedule::default();
    assert_eq!(ll.time_at_alpha(1.5), 0.0);
    assert_eq!(ll.time_at_alpha(-1.0), 1.0);
}

#[test]
fn antithetic_times_cover_the_interval_evenly() {
    let t = antithetic_times(4, 0.6, 1e-3);
    let want = [0.6, 0.85, 0.1, 0.35].map(|s| 1e-3 + 0.999 * s);
    for (a, b) in t.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{t:?}");
    }
    let t = antithetic_times(8, 0.0, 0.0);
    assert_eq!(t[0], 0.0);
    assert!(t.iter().all(|&x| (0.0..1.0).contains(&x)));
}

#[test]
fn bad_parameters_are_errors() {
    assert!(NoiseSchedule::from_name("quadratic")
        .unwrap_err()
        .to_string()
        .contains("quadratic"));
    for s in [
        NoiseSchedule::LogLinear { eps: 1.0 },
        NoiseSchedule::Cosine { eps: -0.1 },
        NoiseSchedule::Linear {
            sigma_min: 2.0,
            sigma_max: 1.0,
        },
        NoiseSchedule::Geometric {
            sigma_min: 0.0,
            sigma_max: 1.0,
        },
        NoiseSchedule::LogLinear { eps: f64::NAN },
    ] {
        assert!(s.validate().is_err(), "{s:?}");
    }
    for s in all() {
        s.validate().unwrap();
    }
}
