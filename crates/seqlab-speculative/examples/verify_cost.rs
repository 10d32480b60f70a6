//! What a verifier pays to check γ drafted tokens, against one decode step: for a model
//! (default `models/mamba-big`), after a prefill of the prompt, the median time of
//! - one `CausalLm::step`;
//! - γ steps in a row (how a Mamba verifier scored a block before `MambaLm::score_block`:
//!   a loop of steps, cloning the state before each for rollback);
//! - one `CausalLm::score` of γ tokens (today's path, which keeps the same snapshots),
//!
//! each from a fresh clone of the prefill state, inside the model's decode context. A fourth
//! argument `score` runs only the score calls (to profile them) and prints nothing useful.
//!
//! ```sh
//! cargo run --release -p seqlab-speculative --example verify_cost -- [MODEL] [GAMMA] [REPS]
//! ```

use seqlab_lm::{load_lm, CausalLm};
use std::path::PathBuf;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let model: PathBuf = args.next().unwrap_or("models/mamba-big".into()).into();
    let gamma: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let reps: usize = args.next().map_or(Ok(200), |s| s.parse())?;
    // `score` as a fourth argument times only the score call (for a profiler).
    let score_only = args.next().is_some_and(|s| s == "score");
    let lm = load_lm(&model)?;
    let tok = lm.tokenizer.as_ref().ok_or("the model has no tokenizer")?;
    let ids = tok.encode("HAMLET. To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer")?;
    if ids.len() < gamma + 2 {
        return Err("the probe text is too short for this γ".into());
    }
    let (prompt, block) = ids.split_at(ids.len() - gamma);
    let m = &lm.model;
    let (_, st0) = m.prefill(prompt)?;
    let (step_s, loop_s, score_s) = m.in_decode_context(|| -> Res<(f64, f64, f64)> {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            if score_only {
                let mut st = st0.clone();
                m.score(&mut st, block)?;
                continue;
            }
            let mut st = st0.clone();
            let t = Instant::now();
            m.step(&mut st, block[0])?;
            a.push(t.elapsed().as_secs_f64());

            let mut st = st0.clone();
            let t = Instant::now();
            let mut kept = Vec::with_capacity(gamma);
            for &x in block {
                kept.push(st.clone());
                m.step(&mut st, x)?;
            }
            b.push(t.elapsed().as_secs_f64());
            drop(kept);

            let mut st = st0.clone();
            let t = Instant::now();
            m.score(&mut st, block)?;
            c.push(t.elapsed().as_secs_f64());
        }
        if score_only {
            return Ok((0.0, 0.0, 0.0));
        }
        Ok((median(a), median(b), median(c)))
    })?;
    println!(
        "{{\"model\":\"{}\",\"gamma\":{gamma},\"reps\":{reps},\"step_ms\":{:.4},\"step_loop_ms\":{:.4},\"score_ms\":{:.4},\"step_loop_over_step\":{:.2},\"score_over_step\":{:.2}}}",
        model.display(),
        step_s * 1e3,
        loop_s * 1e3,
        score_s * 1e3,
        loop_s / step_s,
        score_s / step_s
    );
    Ok(())
}
