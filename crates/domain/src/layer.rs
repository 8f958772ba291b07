//! Layers: versioned zips shared by functions and unpacked, in the order the
//! function lists them, into `/opt`. A function names a layer as `NAME`
//! (the newest version, pinned when a function version is published) or
//! `NAME:VERSION`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::is_valid_function_name;

/// One published version of a layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LayerVersion {
    pub layer_name: String,
    /// 1, 2, 3…
    pub version: u32,
    pub description: Option<String>,
    pub code_sha256: String,
    pub code_size: u64,
    /// `layers/{name}/{sha256}/layer.zip`
    pub code_location: String,
    pub owner_id: String,
    pub created_at: DateTime<Utc>,
}

impl LayerVersion {
    /// The reference that pins this version: `NAME:VERSION`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.layer_name, self.version)
    }
}

/// Where a layer's zip lives in the blob store.
pub fn layer_location(name: &str, sha256: &str) -> String {
    format!("layers/{name}/{sha256}/layer.zip")
}

/// A function's reference to a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub name: String,
    /// `None`: the newest version.
    pub version: Option<u32>,
}

impl fmt::Display for LayerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}:{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Layer names follow the function-name rule.
pub fn is_valid_layer_name(name: &str) -> bool {
    is_valid_function_name(name)
}

impl LayerRef {
    /// `NAME` or `NAME:VERSION` (VERSION ≥ 1).
    pub fn parse(text: &str) -> Result<LayerRef, String> {
        let bad = || {
            format!("Layer '{text}' must be NAME or NAME:VERSION (letters, digits, dashes; version 1 or more)")
        };
        let (name, version) = match text.split_once(':') {
            Some((n, v)) => (
                n,
                Some(v.parse::<u32>().ok().filter(|v| *v >= 1).ok_or_else(bad)?),
            ),
            None => (text, None),
        };
        if !is_valid_layer_name(name) {
            return Err(bad());
        }
        Ok(LayerRef {
            name: name.to_owned(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            LayerRef::parse("deps").unwrap(),
            LayerRef {
                name: "deps".into(),
                version: None
            }
        );
        assert_eq!(
            LayerRef::parse("deps:3").unwrap(),
            LayerRef {
                name: "deps".into(),
                version: Some(3)
            }
        );
        assert_eq!(LayerRef::parse("deps:3").unwrap().to_string(), "deps:3");
        for bad in ["", "deps:", "deps:0", "deps:x", "bad_name", ":1", "a:1:2"] {
            assert!(LayerRef::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(layer_location("deps", "ab"), "layers/deps/ab/layer.zip");
    }
}
