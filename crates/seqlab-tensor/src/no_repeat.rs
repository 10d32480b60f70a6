//! The no-repeat n-gram rule (Hugging Face `no_repeat_ngram_size`): a token is banned when,
//! appended to the history, it would complete an n-gram that already occurs in the history.
//! With it, greedy decoding cannot fall into the loops it is prone to ("repetition-free greedy").

/// The tokens banned as the next token of `history` under the no-repeat-`n`-gram rule, sorted
/// and without duplicates.
///
/// Token `t` is banned iff there is a position `i` with
/// `history[i .. i+n-1] == history[len-(n-1) ..]` and `history[i+n-1] == t`; for `n = 1` every
/// token already in the history is banned. Nothing is banned while `len < n` (as in HF, where
/// no n-gram can repeat before one is complete), and `n = 0` bans nothing. O(len · n).
pub fn banned_ngram_tokens(history: &[u32], n: usize) -> Vec<u32> {
    let len = history.len();
    if n == 0 || len < n {
        return Vec::new();
    }
    let prefix = &history[len - (n - 1)..];
    let mut banned: Vec<u32> = history
        .windows(n)
        .filter(|w| &w[..n - 1] == prefix)
        .map(|w| w[n - 1])
        .collect();
    banned.sort_unstable();
    banned.dedup();
    banned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigram_rule_matches_hf() {
        // History "a b c a": the last token is `a`; the bigram (a, b) occurred, so `b` is banned.
        let h = [1, 2, 3, 1];
        assert_eq!(banned_ngram_tokens(&h, 2), vec![2]);
        // Trigram: prefix (3, 1) never occurred before the end -> nothing banned.
        assert_eq!(banned_ngram_tokens(&h, 3), Vec::<u32>::new());
        // "a b a b a": (b, a) and (a, b)... last token a -> ban b; trigram prefix (b, a) -> ban b.
        let h = [1, 2, 1, 2, 1];
        assert_eq!(banned_ngram_tokens(&h, 2), vec![2]);
        assert_eq!(banned_ngram_tokens(&h, 3), vec![2]);
        // Several continuations of the same prefix.
        let h = [5, 6, 5, 7, 5];
        assert_eq!(banned_ngram_tokens(&h, 2), vec![6, 7]);
    }

    #[test]
    fn unigram_bans_everything_seen_and_short_history_bans_nothing() {
        assert_eq!(banned_ngram_tokens(&[4, 2, 4, 9], 1), vec![2, 4, 9]);
        assert!(banned_ngram_tokens(&[1, 1], 3).is_empty());
        assert!(banned_ngram_tokens(&[], 1).is_empty());
        assert!(banned_ngram_tokens(&[1, 2, 1], 0).is_empty());
    }
}
