//! The latency harness reports quality next to speed: BiLD with the paper's defaults and with
//! α_RB = 0, and lossless speculative sampling, measured against big-only decoding on tiny
//! models; plus the BiLD decision rules on hand-made logits.

use crate::support;

use seqlab_speculative::bild::{little_choice, rollback_to};
use seqlab_speculative::harness::{
    agreement, baseline, markdown_table, measure, sweep_grid, sweep_row,
};
use seqlab_speculative::{BildConfig, DecodeConfig, Policy, SpecConfig};

#[test]
fn bild_rules_follow_the_paper() {
    // Fallback: top probability below α_FB.
    let l = [2.0f32, 0.0, 0.0, 0.0];
    let p_top = (2f64.exp()) / (2f64.exp() + 3.0);
    assert_eq!(little_choice(&l, p_top - 1e-6).unwrap(), (0, true));
    assert_eq!(little_choice(&l, p_top + 1e-6).unwrap(), (0, false));
    // Rollback: cross-entropy above α_RB, unless the little token is the big argmax.
    let big = [0.0f32, 3.0, 1.0, -2.0];
    let ce = |y: usize| {
        let z: f64 = big.iter().map(|&x| (x as f64).exp()).sum();
        -((big[y] as f64).exp() / z).ln()
    };
    assert_eq!(
        rollback_to(&big, 1, 0.0).unwrap(),
        None,
        "the argmax stands"
    );
    assert_eq!(rollback_to(&big, 2, ce(2) - 1e-6).unwrap(), Some(1));
    assert_eq!(rollback_to(&big, 2, ce(2) + 1e-6).unwrap(), None);
    assert_eq!(rollback_to(&big, 3, 0.0).unwrap(), Some(1));
}

#[test]
fn reports_put_quality_next_to_speed() {
    // A trained verifier (random tied-embedding models tend to repeat their last token, so two
    // of them agree too easily) and a random drafter.
    let big = support::golden_mamba();
    let little = support::transformer(256, 16, 1, 52, 1.5);
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![40], vec![7, 7, 7, 7, 9]];
    let greedy = |policy| DecodeConfig::greedy(policy, 20);
    let base = baseline(&big, &little, &prompts, &greedy(Policy::BigOnly)).unwrap();

    let exact = [
        Policy::Bild(BildConfig {
            alpha_rb: 0.0,
            ..BildConfig::default()
        }),
        Policy::Speculative(SpecConfig::default()),
        Policy::BigOnly,
    ];
    for policy in exact {
        let e = measure(&big, &little, &prompts, &greedy(policy), &base).unwrap();
        assert_eq!(e.overall.agreement, 1.0, "{policy:?}");
        assert_eq!(e.prompts.len(), 3);
        // The same tokens, so the same perplexity as big-only greedy output.
        let b = measure(&big, &little, &prompts, &greedy(Policy::BigOnly), &base).unwrap();
        assert!((e.overall.big_ppl - b.overall.big_ppl).abs() < 1e-9 * b.overall.big_ppl);
    }

    // The defaults and a loose setting: numbers are reported, consistent and in range.
    let loose = Policy::Bild(BildConfig {
        alpha_fb: 0.0,
        alpha_rb: 50.0,
        max_small: 5,
    });
    for policy in [
        Policy::Bild(BildConfig::default()),
        loose,
        Policy::LittleOnly,
    ] {
        let e = measure(&big, &little, &prompts, &greedy(policy), &base).unwrap();
        let o = &e.overall;
        assert!((0.0..=1.0).contains(&o.agreement), "{policy:?}");
        assert!(o.big_ppl.is_finite() && o.big_ppl >= 1.0);
        assert!(o.speedup > 0.0 && o.tokens_per_s > 0.0);
        assert!(o.accepted <= o.drafted);
        assert_eq!(o.new_tokens, 60);
        for p in &e.prompts {
            let (a, prefix) = agreement(&p.tokens, &base.greedy[p.index].tokens);
            assert_eq!((a, prefix), (p.agreement, p.common_prefix));
        }
    }
    // Never rolling back and never falling back keeps every little token: most output is the
    // little model's, so it disagrees with the big model somewhere.
    let e = measure(&big, &little, &prompts, &greedy(loose), &base).unwrap();
    assert_eq!(e.overall.rollbacks, 0);
    assert_eq!(e.overall.fallbacks, 0);
    assert!(e.overall.agreement < 1.0);

    let grid = sweep_grid(Policy::Speculative(SpecConfig::default()));
    assert_eq!(grid.len(), 7);
    let rows: Vec<_> = grid[..2]
        .iter()
        .map(|p| {
            sweep_row(
                p,
                &measure(&big, &little, &prompts, &greedy(*p), &base).unwrap(),
            )
        })
        .collect();
    let md = markdown_table("spec", &rows);
    assert_eq!(md.lines().count(), 4);
    assert!(md.contains("| gamma=1 |"));
    let png = seqlab_speculative::frontier::frontier_png(&rows).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
}
