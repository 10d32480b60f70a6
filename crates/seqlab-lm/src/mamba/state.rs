//! The recurrent cache of a Mamba LM (step mode, docs/ssm.md#recurrent-step): per layer the
//! conv state (batch, d_inner, d_conv), the last d_conv conv inputs oldest first, and the SSM state
//! (batch, d_inner, d_state). Cloning it snapshots the model's position, so a caller can roll
//! back (speculative decoding) by keeping an old copy.

/// Conv and SSM state of every layer, for one batch of sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct MambaState {
    /// Batch size.
    pub batch: usize,
    /// Per layer: (batch, d_inner, d_conv), oldest input first.
    pub conv: Vec<Vec<f32>>,
    /// Per layer: (batch, d_inner, d_state).
    pub ssm: Vec<Vec<f32>>,
    /// Tokens consumed so far (per row).
    pub seqlen: usize,
}

impl MambaState {
    /// The empty state (all zeros, nothing consumed) for `batch` rows.
    pub fn zeros(
        batch: usize,
        n_layer: usize,
        d_inner: usize,
        d_conv: usize,
        d_state: usize,
    ) -> Self {
        Self {
            batch,
            conv: vec![vec![0.0; batch * d_inner * d_conv]; n_layer],
            ssm: vec![vec![0.0; batch * d_inner * d_state]; n_layer],
            seqlen: 0,
        }
    }

    /// The empty state with separate conv and SSM channel counts (Mamba-2: the conv runs over
    /// x, B and C; the SSM over heads × head channels), as [`crate::MambaConfig::conv_channels`]
    /// and [`crate::MambaConfig::ssm_channels`] give them.
    pub fn with_channels(
        batch: usize,
        n_layer: usize,
        conv_channels: usize,
        d_conv: usize,
        ssm_channels: usize,
        d_state: usize,
    ) -> Self {
        Self {
            batch,
            conv: vec![vec![0.0; batch * conv_channels * d_conv]; n_layer],
            ssm: vec![vec![0.0; batch * ssm_channels * d_state]; n_layer],
            seqlen: 0,
        }
    }
}
