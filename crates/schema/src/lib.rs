//! Caravan's common log schema: teams describe log keys and their types in Protobuf; this
//! crate compiles that schema into a field [`Dictionary`] (used by the log store to
//! normalise and index JSON logs) and renders it as Elasticsearch index templates.
//!
//! The crate is pure: it knows nothing of files, the network, async runtimes, the log store
//! or HTTP. Callers pass file contents in and get values or strings back.
//!
//! ```
//! use caravan_schema::{CompileOptions, Format, RenderOptions, compile_files, render};
//!
//! let schema = r#"
//!     syntax = "proto3";
//!     import "caravan/options.proto";
//!     message LogSchema {
//!       string userId = 1 [(caravan.field) = { aliases: ["user_id", "user-id"] }];
//!       map<string, string> labels = 2;
//!     }
//! "#;
//! let dictionary = compile_files([("log_schema.proto", schema)], &CompileOptions::default())?;
//!
//! // The normaliser's hot path: aliases and map free keys resolve in O(1).
//! assert_eq!(dictionary.resolve("user-id").map(|f| f.key.as_str()), Some("userId"));
//! assert_eq!(dictionary.lookup("labels.team").map(|l| l.key), Some("labels.team"));
//!
//! let options = RenderOptions {
//!     format: Format::EsTemplate,
//!     index_patterns: vec!["payments-*".to_owned()],
//!     ..RenderOptions::default()
//! };
//! let template = render(&dictionary, &options)?;
//! assert!(template.contains(r#""userId": {"#));
//! # Ok::<(), caravan_schema::Error>(())
//! ```
//!
//! # Flow
//!
//! ```text
//! .proto sources ──compile_files──────────┐
//!                                          ├─> DescriptorPool ─walk─> Dictionary ─render─> JSON
//! encoded FileDescriptorSet ─compile_descriptor_set─┘
//! ```
//!
//! Both entry points converge on the same pool walk, and [`render`] is the only renderer, so
//! the CLI, the server and the `protoc-gen-estemplate` plugin produce the same bytes.
//!
//! # Schema rules
//!
//! - The root message (default `LogSchema`) holds the top-level keys; nested messages make
//!   dotted keys (`kubernetes.namespace`). The key segment is the proto field name as
//!   written, or the `(caravan.field).name` option.
//! - Types: `string` is keyword (text with `text: true`); every integer type is long (uint64
//!   values above 2^63-1 do not fit); `float`/`double` are double; `bool` is boolean;
//!   `google.protobuf.Timestamp` is date; `bytes` is binary (never indexed); enums are
//!   keywords restricted to the value names; `repeated X` is X with `repeated: true`;
//!   `map<string, X>` is a map with free keys of type X; `google.protobuf.Struct` is a
//!   struct (stored, never indexed); the scalar wrappers (`StringValue`, ...) are their
//!   scalar. `google.protobuf.Duration` is refused: log a number with its unit in the key
//!   (`duration_ms`). Other well-known types, groups, maps with non-string keys and maps of
//!   messages are refused too.
//! - A message that contains itself is refused, naming the cycle (`A.b -> B.a -> A`).
//! - Names follow [`KEY_NAME_RULE`]; keys and aliases are unique across the schema; options
//!   must fit the proto type (see `caravan/options.proto`, [`OPTIONS_PROTO`]).
//!
//! Every broken rule is reported at once in [`Error::Invalid`], each issue with its
//! `file:line:col`, key and rule name.
//!
//! # Modules
//!
//! - `compile`: entry points, root lookup;
//! - `walk`: proto types to keys, cycles, limits;
//! - `options`: `(caravan.field)` reading and checking;
//! - `validate`: naming and uniqueness rules;
//! - `dictionary`: the compiled form, lookup and tenant extensions;
//! - `diff`: schema evolution check;
//! - `render`: minijinja outputs;
//! - `source`: in-memory sources and positions;
//! - `error`: the error type.

#![warn(missing_docs)]

mod compile;
mod dictionary;
mod diff;
mod error;
mod options;
mod render;
mod source;
mod validate;
mod walk;

pub use compile::{
    CompileOptions, DEFAULT_MAX_KEYS, DEFAULT_ROOT_MESSAGE, compile_descriptor_set, compile_files,
};
pub use dictionary::{Dictionary, FieldDef, FieldType, Lookup};
pub use diff::{AliasChange, AttributeChange, KeySummary, SchemaDiff, TypeConflict, diff};
pub use error::{Error, ExtensionConflict, ExtensionConflictKind, Issue, IssueKind, Location};
pub use options::{IGNORE_ABOVE_MAX, OPTIONS_PROTO, OPTIONS_PROTO_PATH};
pub use render::{Format, RenderOptions, default_template, render, template_macros};
pub use validate::{KEY_DEPTH_MAX, KEY_LEN_MAX, KEY_NAME_RULE};
