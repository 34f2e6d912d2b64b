//! The one error type: why a document was refused as a whole. Everything short of these is
//! stored, with the values that did not fit moved to `_ignored`.

use thiserror::Error;

/// Why a document was refused. Each message names the limit or the problem and where it is,
/// so that a `_bulk` answer can return it per item.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    /// The document is larger than [`Limits::document_bytes_max`](crate::Limits). Checked
    /// before parsing.
    #[error(
        "the document is {bytes} bytes, over the limit of {bytes_max} bytes (document_bytes_max)"
    )]
    TooLarge {
        /// The document's size.
        bytes: usize,
        /// The limit in force.
        bytes_max: usize,
    },
    /// The document is not valid JSON.
    #[error("the document is not valid JSON: {message} at line {line}, column {column}")]
    NotJson {
        /// serde_json's description, without the position.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The document is valid JSON but not an object.
    #[error("the document is {found}, not a JSON object")]
    NotAnObject {
        /// What it is instead: `an array`, `a string`, ...
        found: &'static str,
    },
    /// A value is nested deeper than [`Limits::depth_max`](crate::Limits).
    #[error(
        "`{path}` is nested {depth} levels deep, over the limit of {depth_max} levels (depth_max)"
    )]
    TooDeep {
        /// Where: the keys as sent, joined by `.`, with array positions as `[i]`.
        path: String,
        /// The depth of the value at `path` (see the crate docs for how it is counted).
        depth: usize,
        /// The limit in force.
        depth_max: usize,
    },
    /// The document has more keys than [`Limits::keys_max`](crate::Limits), counting every
    /// key of every object at every level.
    #[error(
        "the document has more than {keys_max} keys, counted at every level (keys_max); \
         the limit was passed at `{path}`"
    )]
    TooManyKeys {
        /// The key that passed the limit, as in [`DocumentError::TooDeep::path`].
        path: String,
        /// The limit in force.
        keys_max: usize,
    },
}

impl DocumentError {
    /// A short, stable name for metrics labels and error types: `too_large`, `not_json`,
    /// `not_an_object`, `too_deep`, `too_many_keys`.
    pub fn kind(&self) -> &'static str {
        match self {
            DocumentError::TooLarge { .. } => "too_large",
            DocumentError::NotJson { .. } => "not_json",
            DocumentError::NotAnObject { .. } => "not_an_object",
            DocumentError::TooDeep { .. } => "too_deep",
            DocumentError::TooManyKeys { .. } => "too_many_keys",
        }
    }
}
