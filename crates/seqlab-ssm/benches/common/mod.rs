//! What the CUDA benchmarks (`cuda_scan`, `cuda_s4_conv`) share: the shape list they read from
//! the environment, and the agreement measure between two implementations.

/// The shapes to time: `var` as a comma-separated list of `N` sizes ≥ 1 joined by `x` (`form`
/// names them, e.g. "BxHxL"), else `default`.
pub fn shapes_from_env<const N: usize>(
    var: &str,
    form: &str,
    default: Vec<[usize; N]>,
) -> Result<Vec<[usize; N]>, String> {
    let Ok(list) = std::env::var(var) else {
        return Ok(default);
    };
    list.split(',')
        .map(|shape| {
            let v: Vec<usize> = shape
                .split('x')
                .map(|x| x.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("{var}: {shape:?} is not {form}"))?;
            match <[usize; N]>::try_from(v) {
                Ok(dims) if dims.iter().all(|&x| x > 0) => Ok(dims),
                _ => Err(format!("{var}: {shape:?} is not {form} (all ≥ 1)")),
            }
        })
        .collect()
}

/// Max |got − want| / max |want|; infinite when the lengths differ or either holds a NaN.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut diff, mut scale) = (0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        let d = (g as f64 - w as f64).abs();
        if d.is_nan() {
            return f64::INFINITY;
        }
        diff = diff.max(d);
        scale = scale.max((w as f64).abs());
    }
    diff / scale.max(f64::MIN_POSITIVE)
}
