//! Rolling back both sides of a big-little decode: after a drafter returns to a snapshot, or a
//! verifier truncates into its scored block (Mamba per-position snapshots, KV-cache cut), the
//! next logits equal those of a fresh run over the committed sequence — for a Mamba LM and a
//! Transformer LM in both roles. Also runs seqlab-lm's `CausalLm` conformance suite on the tiny
//! models the other tests use.

use crate::support;

use seqlab_lm::conformance::{check_causal_lm, max_rel_diff};
use seqlab_lm::CausalLm;
use seqlab_speculative::harness::perplexity_of;
use seqlab_speculative::Cursor;

const TOL: f32 = 1e-4;
const PROMPT: &[u32] = &[5, 3, 9, 1];
const DRAFTS: [u32; 4] = [2, 7, 4, 6];

fn fresh<M: CausalLm>(m: &M, seq: &[u32]) -> Vec<f32> {
    m.prefill(seq).unwrap().0
}

fn seq(parts: &[&[u32]]) -> Vec<u32> {
    parts.concat()
}

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    let d = max_rel_diff(a, b);
    assert!(d <= TOL, "{what}: logits differ by {d:e}");
}

/// Drafter side: draft 4 tokens (3 stepped), keep `kept`, commit 0; then the next logits.
fn drafter_rolls_back<M: CausalLm>(name: &str, m: &M) {
    for kept in 0..=DRAFTS.len() {
        let mut c = Cursor::new(m, PROMPT).unwrap();
        c.next_logits().unwrap();
        for &d in &DRAFTS[..3] {
            c.draft_step(d).unwrap();
        }
        c.settle_draft(&DRAFTS, kept, 0).unwrap();
        let got = c.next_logits().unwrap();
        let want = fresh(m, &seq(&[PROMPT, &DRAFTS[..kept], &[0]]));
        assert_close(&format!("{name}: drafter kept {kept}"), &got, &want);
        assert_eq!(m.state_len(c.state()), PROMPT.len() + kept + 1);
        // And it keeps drafting correctly from there.
        let got = c.draft_step(8).unwrap();
        let want = fresh(m, &seq(&[PROMPT, &DRAFTS[..kept], &[0, 8]]));
        assert_close(
            &format!("{name}: drafter kept {kept}, one more step"),
            &got,
            &want,
        );
    }
}

/// Verifier side: score the drafts in one call (after a first round, so with a lag token),
/// keep `kept`, commit 0; then the next logits.
fn verifier_rolls_back<M: CausalLm>(name: &str, m: &M) {
    for kept in 0..=DRAFTS.len() {
        let mut c = Cursor::new(m, PROMPT).unwrap();
        // Round 1: nothing drafted, the verifier's own token 11 is committed (lag = [11]).
        let rows = c.score_block(&[]).unwrap();
        assert_close(
            "no-draft block = prefill logits",
            &rows[0],
            &fresh(m, PROMPT),
        );
        c.settle_block(0, 11).unwrap();
        // Round 2: lag [11] + 4 drafts in one score call.
        let rows = c.score_block(&DRAFTS).unwrap();
        assert_eq!(rows.len(), DRAFTS.len() + 1);
        for (i, r) in rows.iter().enumerate() {
            let want = fresh(m, &seq(&[PROMPT, &[11], &DRAFTS[..i]]));
            assert_close(&format!("{name}: scored row {i}"), r, &want);
        }
        c.settle_block(kept, 0).unwrap();
        assert_eq!(m.state_len(c.state()), PROMPT.len() + 1 + kept);
        let got = c.next_logits().unwrap();
        let want = fresh(m, &seq(&[PROMPT, &[11], &DRAFTS[..kept], &[0]]));
        assert_close(&format!("{name}: verifier kept {kept}"), &got, &want);
    }
}

#[test]
fn mamba_state_rolls_back_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let m = support::mamba(dir.path(), 16, 16, 2, 41, 1.0);
    check_causal_lm(&m, &[1, 4, 9, 2, 7, 3, 5], 3, TOL).unwrap();
    drafter_rolls_back("mamba", &m);
    verifier_rolls_back("mamba", &m);
    let g = support::golden_mamba();
    drafter_rolls_back("golden mamba", &g);
    verifier_rolls_back("golden mamba", &g);
}

#[test]
fn kv_cache_rolls_back_on_both_sides() {
    let m = support::transformer(16, 16, 2, 42, 1.0);
    check_causal_lm(&m, &[1, 4, 9, 2, 7, 3, 5], 3, TOL).unwrap();
    drafter_rolls_back("transformer", &m);
    verifier_rolls_back("transformer", &m);
}

#[test]
fn perplexity_of_matches_step_by_step_scoring() {
    let m = support::transformer(16, 16, 2, 43, 1.0);
    let toks = [3u32, 8, 1, 12];
    let (ppl, n) = perplexity_of(&m, PROMPT, &toks).unwrap();
    assert_eq!(n, 4);
    let mut nll = 0.0;
    for i in 0..toks.len() {
        let l = fresh(&m, &seq(&[PROMPT, &toks[..i]]));
        nll -= seqlab_tensor::log_softmax(&l)[toks[i] as usize];
    }
    assert!(
        (ppl - (nll / 4.0).exp()).abs() < 1e-3 * ppl,
        "{ppl} vs {}",
        (nll / 4.0f64).exp()
    );
}
