//! The errors of the run commands (`train`, `eval`, `simulate`, `analyze`): each says what
//! happened and what to do.

use std::path::PathBuf;

use crate::io::IoError;
use crate::train::TrainError;

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Files.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The run's config.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The model kind cannot do what was asked, or its own export failed.
    #[error(transparent)]
    Kind(#[from] crate::network::KindError),
    /// A simulation or analysis whose states left the bound of sane values.
    #[error("{what} diverged: {blowup}. Check the parameters (huge weights), or use a smaller solver.dt or larger time constants")]
    Diverged {
        /// What was run.
        what: &'static str,
        /// Where it first blew up.
        blowup: crate::train::Blowup,
    },
    /// The work would not fit in this machine's memory.
    #[error(transparent)]
    TooLarge(#[from] crate::memory::TooLarge),
    /// A plot could not be drawn.
    #[error("{0}")]
    Plot(String),
    /// A command-line option out of range.
    #[error("{option} {message}")]
    Option {
        /// The option (`--trials`).
        option: &'static str,
        /// What it must be (`must be at least 1`), with the value given.
        message: String,
    },
    /// The path is not a run directory (its `config.toml` does not load).
    #[error("{source} ({} is not a run directory written by `neurode train`)", .path.display())]
    NotARun {
        /// The path given.
        path: PathBuf,
        /// Why its config does not load.
        source: crate::config::ConfigError,
    },
    /// `--resume` on a directory without a checkpoint.
    #[error("nothing to resume in {}: it has no checkpoint.safetensors. Run without --resume to start this run", .path.display())]
    NothingToResume {
        /// The run directory.
        path: PathBuf,
    },
    /// A fresh run into a directory that holds one.
    #[error("{} already holds a run; pass --resume to continue it, --out DIR for a new run, or delete the directory", .path.display())]
    Occupied {
        /// The run directory.
        path: PathBuf,
    },
    /// A fresh run into an existing directory that holds other files and no run.
    #[error("{} is not empty and holds no neurode run ({entries}); pass --out with a new or empty directory, or move those files away", .path.display())]
    NotEmpty {
        /// The directory.
        path: PathBuf,
        /// Some of what it holds.
        entries: String,
    },
    /// The config cannot be saved as the run's `config.toml`.
    #[error("the config cannot be saved as config.toml: {message}; check the config's values (a NaN or inf value cannot be saved)")]
    ConfigText {
        /// The serialiser's message.
        message: String,
    },
    /// `eval` computed its result but could not write its files.
    #[error("{source} (the result is printed above; pass --out DIR to write eval.json and the eval plots into another directory than {})", .dir.display())]
    EvalOutput {
        /// Where eval tried to write.
        dir: PathBuf,
        /// What failed.
        source: Box<RunError>,
    },
    /// The task's trials do not fit the network.
    #[error("the task's inputs do not fit the network: {0}")]
    Inputs(Box<TrainError>),
    /// Binding inputs to the network failed.
    #[error("binding the inputs failed: {0}")]
    Bind(#[from] neurode_models::ModelError),
    /// A solve of `simulate` or `analyze` failed.
    #[error("{what} failed: {message}")]
    Solve {
        /// What was solved.
        what: &'static str,
        /// The solver's message.
        message: String,
    },
    /// A step of the analysis failed.
    #[error("{step}: {source}")]
    Analysis {
        /// The step (`fixed-point search, group 2`).
        step: String,
        /// What went wrong.
        source: crate::analysis::AnalysisError,
    },
}

impl RunError {
    /// The error of an option out of range.
    pub(crate) fn option(option: &'static str, message: impl Into<String>) -> Self {
        RunError::Option {
            option,
            message: message.into(),
        }
    }
}
