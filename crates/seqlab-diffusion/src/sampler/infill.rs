//! Conditional generation by infilling (mdlm#21): fixed tokens at any positions — a prefix, a
//! suffix, anything in between — stay as they are and the samplers generate the rest. A
//! template is a row with `[MASK]` at the positions to generate; the samplers only ever write
//! masked positions, and SUBS carry-over keeps the denoiser's output at fixed positions a point
//! mass on the fixed token.

use crate::error::{DiffusionError, Result};

/// One row of fixed tokens and gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfillTemplate {
    /// `Some(id)` fixed, `None` generated.
    pub slots: Vec<Option<u32>>,
}

/// `batch` rows of `len` `[MASK]` tokens (unconditional generation).
pub fn all_masked(len: usize, batch: usize, mask_id: u32) -> Vec<u32> {
    vec![mask_id; len * batch]
}

/// `encode(text)` with its error as a [`DiffusionError`].
fn enc(
    encode: &mut impl FnMut(&str) -> std::result::Result<Vec<u32>, String>,
    text: &str,
) -> Result<Vec<u32>> {
    encode(text)
        .map_err(|e| DiffusionError::Input(format!("infill template: encoding {text:?}: {e}")))
}

/// Most tokens a template may hold, gaps included
/// ([`seqlab_tensor::limits::MAX_GENERATED_TOKENS`]): a gap `{1000000000}` is refused before
/// a slot is allocated.
pub const MAX_TEMPLATE_TOKENS: usize = seqlab_tensor::limits::MAX_GENERATED_TOKENS;

/// The error for a template (or a gap, or a length) of `n` tokens beyond
/// [`MAX_TEMPLATE_TOKENS`]; `None` for a number too large to parse.
fn template_too_long(n: Option<usize>) -> DiffusionError {
    let shown = n.map_or_else(
        || "a number too large to hold".to_string(),
        |n| n.to_string(),
    );
    DiffusionError::Input(format!(
        "infill template: {shown} tokens is more than the {MAX_TEMPLATE_TOKENS} a sample may hold"
    ))
}

impl InfillTemplate {
    /// A template from explicit slots.
    pub fn new(slots: Vec<Option<u32>>) -> Self {
        Self { slots }
    }

    /// Parses text with gaps written `{N}` (N ≥ 1 tokens to generate there), e.g.
    /// `"To be, or not to be{12}the question"`; the text between gaps is encoded with
    /// `encode` (its error message is passed on). Then `len` pads with generated tokens at the end (a prefix-only template is
    /// a continuation prompt); `len` shorter than the template is an error.
    pub fn parse(
        text: &str,
        len: Option<usize>,
        mut encode: impl FnMut(&str) -> std::result::Result<Vec<u32>, String>,
    ) -> Result<Self> {
        let mut slots = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                DiffusionError::Input(format!(
                    "infill template: `{{` at byte {} has no closing `}}` (gaps are written {{N}})",
                    text.len() - rest.len() + open
                ))
            })?;
            let n: usize =
                after[..close]
                    .trim()
                    .parse()
                    .map_err(|e: std::num::ParseIntError| {
                        if *e.kind() == std::num::IntErrorKind::PosOverflow {
                            return template_too_long(None);
                        }
                        DiffusionError::Input(format!(
                            "infill template: `{{{}}}` is not a gap; write {{N}} with N ≥ 1 tokens",
                            &after[..close]
                        ))
                    })?;
            if n == 0 {
                return Err(DiffusionError::Input(
                    "infill template: a gap {0} generates nothing; use N ≥ 1".into(),
                ));
            }
            if n > MAX_TEMPLATE_TOKENS - slots.len().min(MAX_TEMPLATE_TOKENS) {
                return Err(template_too_long(Some(n)));
            }
            if open > 0 {
                slots.extend(enc(&mut encode, &rest[..open])?.into_iter().map(Some));
            }
            slots.extend(std::iter::repeat_n(None, n));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            slots.extend(enc(&mut encode, rest)?.into_iter().map(Some));
        }
        if let Some(len) = len {
            if len > MAX_TEMPLATE_TOKENS {
                return Err(template_too_long(Some(len)));
            }
            if len < slots.len() {
                return Err(DiffusionError::Input(format!(
                    "infill template is {} tokens long, more than the length {len}",
                    slots.len()
                )));
            }
            slots.resize(len, None);
        }
        if slots.is_empty() {
            return Err(DiffusionError::Input("infill template is empty".into()));
        }
        Ok(Self { slots })
    }

    /// Tokens in the template.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the template has no slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Positions to generate.
    pub fn gaps(&self) -> usize {
        self.slots.iter().filter(|s| s.is_none()).count()
    }

    /// `batch` copies of the template as sampler input (`[MASK]` = `mask_id` in the gaps).
    pub fn rows(&self, batch: usize, mask_id: u32) -> Vec<u32> {
        let row: Vec<u32> = self.slots.iter().map(|s| s.unwrap_or(mask_id)).collect();
        row.repeat(batch)
    }

    /// Whether `row` keeps every fixed token of the template.
    pub fn is_kept_by(&self, row: &[u32]) -> bool {
        row.len() == self.slots.len()
            && self
                .slots
                .iter()
                .zip(row)
                .all(|(s, &t)| s.is_none_or(|f| f == t))
    }
}
