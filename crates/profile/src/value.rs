//! Option values: text as profiles write it, or a structured value set by a recipe.

use std::borrow::Cow;
use std::fmt;

/// An option value.
///
/// Profiles only ever produce text. Recipes (SlapOS's `slapconfiguration`, for one) may
/// set lists and maps, as SlapOS's buildout fork allows; a reference that is a whole
/// option value (`x = ${s:o}`) then carries the structure, and a reference inside text
/// renders it as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Structured(serde_json::Value),
}

impl Value {
    /// The value as text: itself, or the JSON rendering of a structure.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            Value::Text(s) => Cow::Borrowed(s),
            Value::Structured(serde_json::Value::String(s)) => Cow::Borrowed(s),
            Value::Structured(v) => Cow::Owned(v.to_string()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_text())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        Value::Structured(v)
    }
}
