//! The [`CausalLm`] conformance suite: the contract every model behind the seam must keep, as
//! one function every model's tests call (Mamba on the CPU and as device tensor ops, the
//! Transformer, GGUF Llama, the S4 LM and SaShiMi), so a decoder written against the trait can
//! rely on it.
//!
//! For a token sequence `x₁…x_T` and a split point `p` it checks, within a relative tolerance:
//! 1. **prefill = score**: `prefill(x₁…x_T)` gives the same last logits as `prefill(x₁…x_p)`
//!    followed by `score(x_{p+1}…x_T)` (whose rows are the logits after each scored token);
//! 2. **step = score**: feeding `x_{p+1}…x_T` one [`CausalLm::step`] at a time from a clone of
//!    the prefill state gives every row of that `score` call;
//! 3. **lengths**: [`CausalLm::state_len`] counts the tokens consumed;
//! 4. **truncate, then re-step = a fresh run**: after the score, truncating to any length
//!    `p ≤ k < T` and stepping `x_{k+1}` gives the logits a fresh `prefill(x₁…x_{k+1})` gives;
//!    truncating to 0 then stepping gives a fresh `prefill(x₁)`;
//! 5. **snapshots are independent**: stepping a clone leaves the original state untouched;
//! 6. **bad lengths are errors**: truncating past the end fails.
//!
//! A recurrent model rolls back only inside a short scored block (Mamba: at most
//! [`crate::mamba::MAMBA_SCORE_STEP_MAX`] tokens), so give it `len − split` within that.

use crate::causal_lm::CausalLm;

/// Largest `|a − b| / max(1, |b|)` over two logit vectors (∞ when the lengths differ).
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = (x - y).abs() / y.abs().max(1.0);
            if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f32::max)
}

/// Runs the suite on `model` with `tokens` (at least 3) split at `split` (1 ≤ split < len − 1);
/// returns the first violated property, with the largest difference seen, as an error.
pub fn check_causal_lm<M: CausalLm>(
    model: &M,
    tokens: &[u32],
    split: usize,
    tol: f32,
) -> Result<(), String> {
    let t = tokens.len();
    if t < 3 || split == 0 || split >= t - 1 {
        return Err(format!(
            "conformance needs ≥ 3 tokens and 1 ≤ split < len − 1 (len {t}, split {split})"
        ));
    }
    let v = model.vocab_size();
    let e = |what: &str, err: crate::LmError| format!("{what}: {err}");
    let close = |what: String, a: &[f32], b: &[f32]| -> Result<(), String> {
        let d = max_rel_diff(a, b);
        if d <= tol {
            Ok(())
        } else {
            Err(format!(
                "{what}: logits differ by {d:e} (relative, tolerance {tol:e})"
            ))
        }
    };

    // 1. prefill(all) = prefill(prefix) + score(rest).
    let (full_last, full_state) = model.prefill(tokens).map_err(|x| e("prefill", x))?;
    if full_last.len() != v {
        return Err(format!(
            "prefill returned {} logits, vocab is {v}",
            full_last.len()
        ));
    }
    if model.state_len(&full_state) != t {
        return Err(format!(
            "state_len after prefill of {t} tokens is {}",
            model.state_len(&full_state)
        ));
    }
    let (_, prefix_state) = model
        .prefill(&tokens[..split])
        .map_err(|x| e("prefill prefix", x))?;
    let mut scored = prefix_state.clone();
    let rows = model
        .score(&mut scored, &tokens[split..])
        .map_err(|x| e("score", x))?;
    if rows.len() != (t - split) * v {
        return Err(format!(
            "score of {} tokens returned {} logits, want {}",
            t - split,
            rows.len(),
            (t - split) * v
        ));
    }
    close(
        "prefill(all) vs prefill(prefix)+score(rest), last row".into(),
        &rows[(t - split - 1) * v..],
        &full_last,
    )?;
    if model.state_len(&scored) != t {
        return Err(format!(
            "state_len after score is {}, want {t}",
            model.state_len(&scored)
        ));
    }

    // 2 + 5. Steps from a clone reproduce every scored row; the original is untouched.
    let mut stepped = prefix_state.clone();
    for (i, &tok) in tokens[split..].iter().enumerate() {
        let l = model.step(&mut stepped, tok).map_err(|x| e("step", x))?;
        close(
            format!("step {} vs score row {i}", split + i + 1),
            &l,
            &rows[i * v..(i + 1) * v],
        )?;
    }
    if model.state_len(&prefix_state) != split {
        return Err("stepping a clone changed the original state".into());
    }
    let mut again = prefix_state.clone();
    let l = model
        .step(&mut again, tokens[split])
        .map_err(|x| e("step", x))?;
    close(
        "a snapshot stepped after its clone was advanced".into(),
        &l,
        &rows[..v],
    )?;

    // 4. Truncate into the scored block, re-step = fresh prefill.
    for k in split..t {
        let mut st = scored.clone();
        model
            .truncate(&mut st, k)
            .map_err(|x| e(&format!("truncate to {k}"), x))?;
        if model.state_len(&st) != k {
            return Err(format!(
                "state_len after truncate to {k} is {}",
                model.state_len(&st)
            ));
        }
        let l = model.step(&mut st, tokens[k]).map_err(|x| e("step", x))?;
        let (fresh, _) = model
            .prefill(&tokens[..=k])
            .map_err(|x| e("fresh prefill", x))?;
        close(
            format!("truncate to {k} then step vs fresh prefill of {}", k + 1),
            &l,
            &fresh,
        )?;
    }
    let mut st = scored.clone();
    model
        .truncate(&mut st, 0)
        .map_err(|x| e("truncate to 0", x))?;
    let l = model.step(&mut st, tokens[0]).map_err(|x| e("step", x))?;
    let (fresh, _) = model
        .prefill(&tokens[..1])
        .map_err(|x| e("fresh prefill", x))?;
    close("truncate to 0 then step".into(), &l, &fresh)?;

    // 6. Past the end is an error.
    let mut st = scored.clone();
    if model.truncate(&mut st, t + 1).is_ok() {
        return Err(format!(
            "truncate to {} succeeded on a state of length {t}",
            t + 1
        ));
    }
    Ok(())
}
