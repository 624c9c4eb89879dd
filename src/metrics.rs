//! The metrics of a training run: one row per iteration, as `metrics.csv` holds them.

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Iterations done.
    pub iteration: usize,
    /// Loss of the last training batch.
    pub train_loss: f64,
    /// Accuracy of the last training batch.
    pub train_accuracy: f64,
    /// Validation loss (at validation iterations).
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Validation accuracy per condition.
    pub val_condition_accuracy: Option<Vec<f64>>,
    /// Learning rate used at this iteration.
    pub learning_rate: f64,
    /// Mean accepted solver steps per trial of the training batch.
    pub steps_per_trial: f64,
}
