//! Diagnoses a lossless-greedy mismatch: the next-token logits after `PROMPT + IDS` computed
//! three ways — prefill(PROMPT) then one `step` per id (how big-only decodes), prefill(PROMPT)
//! then one `score` of the ids (how a verifier sees them), and one prefill of everything — with
//! the top-2 ids and their logit gap, and the largest relative difference between the ways.
//!
//! ```sh
//! cargo run --release -p seqlab-speculative --example score_vs_step -- MODEL "PROMPT" 1,2,3
//! ```

use seqlab_lm::{load_lm, CausalLm};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn top2(v: &[f32]) -> (u32, f32, u32, f32) {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    (idx[0] as u32, v[idx[0]], idx[1] as u32, v[idx[1]])
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, prompt, ids] = args.as_slice() else {
        return Err("usage: score_vs_step MODEL PROMPT IDS(comma-separated)".into());
    };
    let lm = load_lm(model.as_ref())?;
    let tok = lm.tokenizer.as_ref().ok_or("the model has no tokenizer")?;
    let p = tok.encode(prompt)?;
    let ids: Vec<u32> = ids
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let m = &lm.model;
    let v = m.vocab_size();
    let (_, st) = m.prefill(&p)?;
    let mut stepped = st.clone();
    let mut last = Vec::new();
    for &t in &ids {
        last = m.step(&mut stepped, t)?;
    }
    let mut scored = st;
    let rows = m.score(&mut scored, &ids)?;
    let score_last = &rows[(ids.len() - 1) * v..];
    let all: Vec<u32> = p.iter().chain(&ids).copied().collect();
    let (pre, _) = m.prefill(&all)?;
    for (name, l) in [
        ("steps", &last[..]),
        ("score", score_last),
        ("prefill", &pre[..]),
    ] {
        let (a, la, b, lb) = top2(l);
        println!(
            "{name:8} top {a} ({la:.5}) second {b} ({lb:.5}) gap {:.2e}",
            la - lb
        );
    }
    let d = |a: &[f32], b: &[f32]| seqlab_lm::conformance::max_rel_diff(a, b);
    println!(
        "max rel diff: steps vs score {:.2e}, steps vs prefill {:.2e}",
        d(&last, score_last),
        d(&last, &pre)
    );
    Ok(())
}
