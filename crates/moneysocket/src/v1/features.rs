//! Feature flags of v1 messages and provider info.
//!
//! `features` is a list of names; `feature_data` maps some of those names to non-null data.
//! Data for a name not in the list is an error (py-moneysocket `message/message.py`).

use serde_json::{Map, Value};

/// A validated feature list with its data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    names: Vec<String>,
    data: Map<String, Value>,
}

/// Features could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeaturesError {
    /// `features` is absent.
    #[error("features value not included")]
    MissingFeatures,
    /// `features` is not an array.
    #[error("features value not a list")]
    FeaturesNotList,
    /// An entry of `features` is not a string.
    #[error("features list entry not a string")]
    FeatureNotString,
    /// `feature_data` is absent.
    #[error("feature_data value not included")]
    MissingFeatureData,
    /// `feature_data` is not an object.
    #[error("feature_data value not an object")]
    FeatureDataNotObject,
    /// `feature_data` has data for a feature not in `features`.
    #[error("feature_data for undeclared feature {0:?}")]
    UndeclaredFeatureData(String),
    /// `feature_data` maps a feature to `null`.
    #[error("feature_data value is null for {0:?}")]
    NullFeatureData(String),
}

impl Features {
    /// No features.
    pub fn none() -> Self {
        Features::default()
    }

    /// Checks that every data key names a listed feature and no value is null.
    ///
    /// # Errors
    ///
    /// [`FeaturesError::UndeclaredFeatureData`] or [`FeaturesError::NullFeatureData`].
    pub fn new(names: Vec<String>, data: Map<String, Value>) -> Result<Self, FeaturesError> {
        for (key, value) in &data {
            if !names.contains(key) {
                return Err(FeaturesError::UndeclaredFeatureData(key.clone()));
            }
            if value.is_null() {
                return Err(FeaturesError::NullFeatureData(key.clone()));
            }
        }
        Ok(Features { names, data })
    }

    /// The feature names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The feature data.
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// Reads `features` and `feature_data` from an object, in the reference's order.
    pub(crate) fn from_json_map(map: &Map<String, Value>) -> Result<Self, FeaturesError> {
        let names = match map.get("features") {
            None => return Err(FeaturesError::MissingFeatures),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or(FeaturesError::FeatureNotString)
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(FeaturesError::FeaturesNotList),
        };
        let data = match map.get("feature_data") {
            None => return Err(FeaturesError::MissingFeatureData),
            Some(Value::Object(data)) => data.clone(),
            Some(_) => return Err(FeaturesError::FeatureDataNotObject),
        };
        Features::new(names, data)
    }

    /// The `features` array.
    pub(crate) fn names_json(&self) -> Value {
        Value::Array(self.names.iter().cloned().map(Value::String).collect())
    }

    /// The `feature_data` object.
    pub(crate) fn data_json(&self) -> Value {
        Value::Object(self.data.clone())
    }
}
