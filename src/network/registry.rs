//! The registry of model kinds: one line per kind in [`kinds!`]'s call below, which makes
//! the config's tagged `[model]` table ([`ModelConfig`], `kind = "..."`) and its dispatch to
//! the kind's [`ModelKind`] and capabilities. Nothing else in the app matches on kinds.

use neurode_solvers::Real;
use serde::{Deserialize, Serialize};

use super::kim::KimConfig;
use super::lowrank::LowRankConfig;
use super::multiregion::MultiRegionConfig;
use crate::kind::{Capability, KindError, ModelKind, SetError, TaskModel};

/// Makes [`ModelConfig`] from `Variant(ConfigType) = "kind name"` lines.
macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident($config:ty) = $name:literal, )+) => {
        /// The `[model]` table of a config: `kind` picks the model kind, the other keys
        /// are its settings.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum ModelConfig {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($config), )+
        }

        /// The kinds' names, as written in configs.
        pub const KIND_NAMES: &[&str] = &[$($name),+];

        impl ModelConfig {
            /// The kind's name as written in configs (`kind`).
            pub fn name(&self) -> &'static str {
                match self {
                    $( ModelConfig::$variant(_) => $name, )+
                }
            }
            /// The kind's settings and what every kind can do.
            pub fn kind(&self) -> &dyn ModelKind {
                match self {
                    $( ModelConfig::$variant(c) => c, )+
                }
            }
            /// [`kind`](Self::kind), to change its settings.
            pub fn kind_mut(&mut self) -> &mut dyn ModelKind {
                match self {
                    $( ModelConfig::$variant(c) => c, )+
                }
            }
            /// The kind's [`TaskModel`] at precision `T`, if it has one.
            pub fn task_model<T: Real>(&self) -> Option<&dyn TaskModel<T>> {
                match self {
                    $( ModelConfig::$variant(c) => ModelKind::task_model::<T>(c), )+
                }
            }
            /// Reads `text` (a `[model]` table without `kind`) as the settings of kind
            /// `name`: the parser's error names the key (`None` for an unknown kind).
            pub fn parse_settings(name: &str, text: &str) -> Option<Result<(), toml::de::Error>> {
                match name {
                    $( $name => Some(toml::from_str::<$config>(text).map(|_| ())), )+
                    _ => None,
                }
            }
            /// Every kind with its default settings.
            pub fn defaults() -> Vec<ModelConfig> {
                vec![$( ModelConfig::$variant(<$config>::default()), )+]
            }
        }
    };
}

kinds! {
    /// The low-rank RNN ([`LowRankConfig`]).
    Lowrank(LowRankConfig) = "lowrank",
    /// The Kim et al. (2019) rate RNN ([`KimConfig`]).
    Kim(KimConfig) = "kim",
    /// A multi-region RNN, mRNNTorch ([`MultiRegionConfig`]).
    Multiregion(MultiRegionConfig) = "multiregion",
    /// The LIF mean field ([`Network`](crate::meanfield::Network)).
    Meanfield(crate::meanfield::Network) = "meanfield",
}

impl Default for ModelConfig {
    /// The low-rank RNN's defaults (a config without a `[model]` table).
    fn default() -> Self {
        ModelConfig::Lowrank(LowRankConfig::default())
    }
}

impl ModelConfig {
    /// Units.
    pub fn n(&self) -> usize {
        self.kind().units()
    }
    /// The kind's [`TaskModel`], or the error that it cannot do what `capability` needs.
    pub fn require<T: Real>(&self, capability: Capability) -> Result<&dyn TaskModel<T>, KindError> {
        self.task_model::<T>().ok_or(KindError::Unsupported {
            kind: self.name(),
            capability,
            instead: self.kind().own_command(),
        })
    }
}

/// The kinds (named, with their titles) that have a setting `key` (for the message of an
/// override that the config's kind does not have).
pub fn kinds_with_key(key: &str, value: &toml::Value) -> Vec<String> {
    ModelConfig::defaults()
        .into_iter()
        .filter_map(|mut d| {
            let known = !matches!(
                d.kind_mut().set(key, value.clone()),
                Err(SetError::Unknown { .. })
            );
            known.then(|| format!("`{}` ({})", d.name(), d.kind().title()))
        })
        .collect()
}
