//! Config-friendly learner settings: which learner, and the hyperparameters
//! of each (every key has a default).
//!
//! ```toml
//! learner = "super_learner"          # glm | elastic_net | forest | super_learner
//! [forest]
//! trees = 200
//! [super_learner]
//! library = ["glm", "elastic_net", "forest"]
//! folds = 5
//! ```

use crate::elastic_net::ElasticNetSpec;
use crate::error::LearnError;
use crate::folds::DEFAULT_FOLDS;
use crate::forest::ForestSpec;
use crate::glm::GlmSpec;
use crate::learner::Learner;
use crate::super_learner::SuperLearner;

/// The learners by config name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnerKind {
    /// The main-effects GLM (the default).
    #[default]
    Glm,
    /// The elastic net.
    ElasticNet,
    /// The random forest.
    Forest,
    /// The super learner over `super_learner.library`.
    SuperLearner,
}

/// Settings of the super learner.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuperLearnerSpec {
    /// The library (each with its own settings from this config).
    pub library: Vec<LearnerKind>,
    /// Folds of the cross-validation that sets the weights.
    pub folds: usize,
}

impl Default for SuperLearnerSpec {
    fn default() -> SuperLearnerSpec {
        SuperLearnerSpec {
            library: vec![
                LearnerKind::Glm,
                LearnerKind::ElasticNet,
                LearnerKind::Forest,
            ],
            folds: DEFAULT_FOLDS,
        }
    }
}

/// A learner and the settings of every learner.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerConfig {
    /// Which learner.
    pub learner: LearnerKind,
    /// GLM settings.
    pub glm: GlmSpec,
    /// Elastic-net settings.
    pub elastic_net: ElasticNetSpec,
    /// Forest settings.
    pub forest: ForestSpec,
    /// Super-learner settings.
    pub super_learner: SuperLearnerSpec,
}

impl LearnerConfig {
    /// The configured learner, its settings checked.
    pub fn build(&self) -> Result<Box<dyn Learner>, LearnError> {
        self.build_kind(self.learner)
    }

    /// The learner `kind` with this config's settings.
    pub fn build_kind(&self, kind: LearnerKind) -> Result<Box<dyn Learner>, LearnError> {
        Ok(match kind {
            LearnerKind::Glm => Box::new(self.glm.clone()),
            LearnerKind::ElasticNet => {
                self.elastic_net.validate()?;
                Box::new(self.elastic_net.clone())
            }
            LearnerKind::Forest => {
                self.forest.validate()?;
                Box::new(self.forest.clone())
            }
            LearnerKind::SuperLearner => {
                let mut library = Vec::with_capacity(self.super_learner.library.len());
                for &k in &self.super_learner.library {
                    if k == LearnerKind::SuperLearner {
                        return Err(LearnError::setting(
                            "super_learner.library",
                            "super_learner",
                            "glm, elastic_net or forest (a super learner cannot hold itself)",
                        ));
                    }
                    library.push(self.build_kind(k)?);
                }
                Box::new(SuperLearner::new(library, self.super_learner.folds)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: LearnerConfig =
            toml::from_str("learner = \"super_learner\"\n[forest]\ntrees = 50\n").expect("config");
        assert_eq!(c.forest.trees, 50);
        assert_eq!(c.forest.min_leaf, ForestSpec::default().min_leaf);
        assert_eq!(c.super_learner.library.len(), 3);
        assert_eq!(c.build().expect("learner").name(), "super_learner");
        let bad: Result<LearnerConfig, _> = toml::from_str("[forest]\ntress = 50\n");
        assert!(bad.is_err());
        let bad: LearnerConfig =
            toml::from_str("learner = \"forest\"\n[forest]\ntrees = 0\n").expect("config");
        assert!(matches!(bad.build(), Err(LearnError::BadSetting { .. })));
    }
}
