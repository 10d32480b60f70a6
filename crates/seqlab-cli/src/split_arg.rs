//! `--split train|val`: which split of a prepared dataset a command scores (`seqlab eval ppl`,
//! `seqlab diffusion nelbo`).

use seqlab_data::Split;

/// A dataset split as a command-line choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    /// The training split.
    Train,
    /// The validation split.
    Val,
}

impl SplitArg {
    /// The dataset's split.
    pub fn split(self) -> Split {
        match self {
            SplitArg::Train => Split::Train,
            SplitArg::Val => Split::Val,
        }
    }

    /// `"train"` or `"val"`, as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SplitArg::Train => "train",
            SplitArg::Val => "val",
        }
    }
}
