//! The error type every `validate()` returns: all messages at once.

use std::fmt;

/// Every validation message that applies, in rule order.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ValidationErrors(pub Vec<String>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn push(&mut self, message: impl Into<String>) {
        self.0.push(message.into());
    }

    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn messages(&self) -> &[String] {
        &self.0
    }

    pub fn into_messages(self) -> Vec<String> {
        self.0
    }

    /// `Ok(())` when nothing was recorded, the collected errors otherwise.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl From<String> for ValidationErrors {
    fn from(message: String) -> Self {
        Self(vec![message])
    }
}

impl From<&str> for ValidationErrors {
    fn from(message: &str) -> Self {
        Self(vec![message.to_owned()])
    }
}
