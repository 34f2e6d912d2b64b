//! The bounds on one document: size, nesting depth and number of keys.

/// The default of [`Limits::document_bytes_max`]: 1 MiB.
pub const DOCUMENT_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// The default of [`Limits::depth_max`], Elasticsearch's `index.mapping.depth.limit`.
pub const DEPTH_MAX_DEFAULT: usize = 20;

/// The default of [`Limits::keys_max`], in line with Elasticsearch's
/// `index.mapping.total_fields.limit` and the schema's own key bound.
pub const KEYS_MAX_DEFAULT: usize = 1000;

/// The largest depth limit honoured: a larger [`Limits::depth_max`] acts as this. The JSON
/// parser refuses documents nested more than 128 levels whatever the limit, and the walk
/// recurses once per level, so the bound also keeps the stack small.
pub const DEPTH_MAX_CEILING: usize = 100;

/// The bounds a document must fit, or it is refused with a [`DocumentError`](crate::DocumentError).
///
/// Key counts and depths are measured on the document as sent, so a stored (normalised)
/// document can be a little larger than its input: it gains `@timestamp`, an `_ignored`
/// record (4 keys, 2 levels) per ignored value, and one level per segment when an alias
/// names a deeper key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest document, in bytes of JSON, checked before parsing. Default:
    /// [`DOCUMENT_BYTES_MAX_DEFAULT`] (1 MiB).
    pub document_bytes_max: usize,
    /// The deepest value: the number of objects and arrays around it, where a key written
    /// with dots counts one level per segment (`{"a.b": 1}` puts `1` at depth 2, like
    /// `{"a": {"b": 1}}`; `{"a": [1]}` puts `1` at depth 2 too). Default:
    /// [`DEPTH_MAX_DEFAULT`]; at most [`DEPTH_MAX_CEILING`].
    pub depth_max: usize,
    /// The most keys in one document: every key of every object at every level, known or
    /// not, including the keys inside arrays of objects. Default: [`KEYS_MAX_DEFAULT`].
    pub keys_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            document_bytes_max: DOCUMENT_BYTES_MAX_DEFAULT,
            depth_max: DEPTH_MAX_DEFAULT,
            keys_max: KEYS_MAX_DEFAULT,
        }
    }
}

impl Limits {
    /// The depth limit in force: [`Limits::depth_max`], at most [`DEPTH_MAX_CEILING`].
    pub fn depth_max_effective(&self) -> usize {
        self.depth_max.min(DEPTH_MAX_CEILING)
    }
}
