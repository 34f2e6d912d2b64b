//! The crate's one error type, and the schema issues and extension conflicts it carries.
//!
//! Schema validation never stops at the first problem: [`Error::Invalid`] carries every
//! [`Issue`] found, each with its source position, the key concerned and the rule broken.

use std::fmt;

use crate::dictionary::FieldType;
use crate::render::Format;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source file name cannot be used as a Protobuf import name.
    #[error("invalid source file name `{name}`: {reason}")]
    InvalidFileName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The same source file name was given twice.
    #[error("source file `{0}` is given twice")]
    DuplicateFile(String),
    /// The caller supplied a `caravan/options.proto` that is not the one this crate ships.
    #[error(
        "`{}` differs from the copy shipped with this Caravan version; \
         delete it or replace it with the output of `caravan schema init`",
        crate::OPTIONS_PROTO_PATH
    )]
    OptionsProtoMismatch,
    /// The Protobuf compiler rejected the sources. The message starts with `file:line:col`.
    #[error("{0}")]
    Compile(String),
    /// A serialised descriptor set could not be decoded or linked.
    #[error("invalid descriptor set: {0}")]
    Descriptor(String),
    /// No message with the configured root name exists in the schema files.
    #[error("root message `{name}` not found in {}", list(searched))]
    RootNotFound {
        /// The configured root message name.
        name: String,
        /// The files searched.
        searched: Vec<String>,
    },
    /// Several messages carry the configured short root name.
    #[error(
        "root message `{name}` is ambiguous: {}; give its fully qualified name",
        list(candidates)
    )]
    RootAmbiguous {
        /// The configured root message name.
        name: String,
        /// The fully qualified names that match.
        candidates: Vec<String>,
    },
    /// The schema compiled but breaks Caravan's rules: every issue found, in source order.
    #[error("{}", lines(issues))]
    Invalid {
        /// The issues, never empty.
        issues: Vec<Issue>,
    },
    /// A dictionary (usually deserialised) breaks a dictionary invariant.
    #[error("invalid dictionary: {0}")]
    InvalidDictionary(String),
    /// A tenant extension redefines common keys or aliases.
    #[error("{}", lines(conflicts))]
    ExtensionConflicts {
        /// Every conflict found, never empty.
        conflicts: Vec<ExtensionConflict>,
    },
    /// A render option is unusable (for example no index pattern for a template).
    #[error("invalid render options: {0}")]
    InvalidRenderOptions(String),
    /// The template failed to parse or render.
    #[error("template error: {0:#}")]
    Template(#[from] minijinja::Error),
    /// The rendered output is not valid JSON (a broken user template, usually).
    #[error("the {format} output is not valid JSON: {message}")]
    InvalidOutput {
        /// The format rendered.
        format: Format,
        /// The JSON parser's message, with line and column in the output.
        message: String,
    },
}

/// A position in a schema source file. Line and column are 1-based, and absent when the
/// compiler has no source information for the file (protoc only sends it for the files
/// being generated).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file name, as imported (`log_schema.proto`, `team/payments.proto`).
    pub file: String,
    /// 1-based line, if known.
    pub line: Option<u32>,
    /// 1-based column, if known.
    pub column: Option<u32>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

/// One broken rule in a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where the offending field is declared.
    pub location: Location,
    /// The dotted key concerned, when it could be built.
    pub key: Option<String>,
    /// What is wrong.
    pub kind: IssueKind,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{} [{}]", self.kind, self.kind.rule())
    }
}

/// The rules a schema can break. [`IssueKind::rule`] gives each a stable short name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueKind {
    /// A key segment or alias does not follow the naming rule (see [`crate::KEY_NAME_RULE`]).
    InvalidKeyName {
        /// The offending name.
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// Two fields store under the same key.
    DuplicateKey {
        /// Where the key was first declared.
        first: Location,
    },
    /// An alias is also a key, another key's alias, or listed twice.
    AliasCollision {
        /// The alias.
        alias: String,
        /// The key that already owns this name (as key or alias).
        other_key: String,
        /// Whether `other_key` owns the name as an alias rather than as its key.
        other_is_alias: bool,
        /// Where `other_key` is declared.
        other: Location,
    },
    /// An alias lies inside a map's free keys, where it would shadow a map entry.
    AliasUnderMap {
        /// The alias.
        alias: String,
        /// The map key.
        map_key: String,
    },
    /// An option does not fit the field's proto type.
    OptionNotApplicable {
        /// The option name (`text`, `ignore_above`, ...).
        option: &'static str,
        /// Why it does not apply.
        reason: String,
    },
    /// An option has a value outside its range.
    InvalidOptionValue {
        /// The option name.
        option: &'static str,
        /// What the allowed values are.
        reason: String,
    },
    /// `(caravan.field)` sets an option this Caravan does not know (a newer options.proto).
    UnknownOption {
        /// The option's name, or its field number when it has none.
        option: String,
    },
    /// The proto type has no log key mapping.
    UnsupportedType {
        /// The proto type name.
        type_name: String,
        /// What to use instead.
        hint: &'static str,
    },
    /// A map whose keys are not strings: JSON object keys always are.
    MapKeyNotString {
        /// The proto key type.
        key_type: String,
    },
    /// A message contains itself, directly or through other messages.
    Cycle {
        /// The cycle, as `A.b -> B.a -> A`.
        path: String,
    },
    /// Keys nest deeper than the limit.
    TooDeep {
        /// The maximum number of key segments.
        limit: usize,
    },
    /// The schema defines more keys than the limit.
    TooManyKeys {
        /// The maximum number of keys.
        limit: usize,
    },
}

impl IssueKind {
    /// A stable short name for the rule, shown in brackets after each message.
    pub fn rule(&self) -> &'static str {
        match self {
            IssueKind::InvalidKeyName { .. } => "key-name",
            IssueKind::DuplicateKey { .. } => "duplicate-key",
            IssueKind::AliasCollision { .. } => "alias-collision",
            IssueKind::AliasUnderMap { .. } => "alias-under-map",
            IssueKind::OptionNotApplicable { .. } => "option-type",
            IssueKind::InvalidOptionValue { .. } => "option-value",
            IssueKind::UnknownOption { .. } => "unknown-option",
            IssueKind::UnsupportedType { .. } => "unsupported-type",
            IssueKind::MapKeyNotString { .. } => "map-key",
            IssueKind::Cycle { .. } => "cycle",
            IssueKind::TooDeep { .. } => "depth-limit",
            IssueKind::TooManyKeys { .. } => "key-limit",
        }
    }
}

impl fmt::Display for IssueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueKind::InvalidKeyName { name, reason } => {
                write!(f, "invalid key name `{name}`: {reason}")
            }
            IssueKind::DuplicateKey { first } => {
                write!(f, "duplicate key, first declared at {first}")
            }
            IssueKind::AliasCollision {
                alias,
                other_key,
                other_is_alias,
                other,
            } => {
                let role = if *other_is_alias {
                    "an alias of"
                } else {
                    "the key"
                };
                write!(
                    f,
                    "alias `{alias}` is already {role} `{other_key}` (declared at {other})"
                )
            }
            IssueKind::AliasUnderMap { alias, map_key } => write!(
                f,
                "alias `{alias}` lies under map `{map_key}`, whose keys are free"
            ),
            IssueKind::OptionNotApplicable { option, reason } => {
                write!(f, "option `{option}` does not apply: {reason}")
            }
            IssueKind::InvalidOptionValue { option, reason } => {
                write!(f, "invalid value for option `{option}`: {reason}")
            }
            IssueKind::UnknownOption { option } => write!(
                f,
                "unknown option `{option}` in (caravan.field); \
                 known options: name, aliases, text, index, default_field, ignore_above"
            ),
            IssueKind::UnsupportedType { type_name, hint } => {
                write!(f, "unsupported type `{type_name}`: {hint}")
            }
            IssueKind::MapKeyNotString { key_type } => write!(
                f,
                "map keys must be strings (JSON object keys are), found `{key_type}`"
            ),
            IssueKind::Cycle { path } => write!(f, "message contains itself: {path}"),
            IssueKind::TooDeep { limit } => {
                write!(f, "key nests deeper than {limit} segments")
            }
            IssueKind::TooManyKeys { limit } => write!(
                f,
                "schema defines more than {limit} keys; further keys are not checked"
            ),
        }
    }
}

/// One way a tenant extension collides with the common dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConflict {
    /// The extension key or alias concerned.
    pub name: String,
    /// How it collides.
    pub kind: ExtensionConflictKind,
}

/// The ways an extension can collide with the common dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionConflictKind {
    /// The extension defines a key the common schema already defines (objects may be shared,
    /// to add keys under a common object, as long as both sides are plain objects).
    KeyRedefined {
        /// The common key's type.
        common_type: FieldType,
        /// The extension key's type.
        extension_type: FieldType,
    },
    /// The extension defines a key that is an alias of a common key.
    KeyIsCommonAlias {
        /// The common key owning the alias.
        common_key: String,
    },
    /// An extension alias is a common key.
    AliasIsCommonKey {
        /// The extension key declaring the alias.
        extension_key: String,
    },
    /// An extension alias is already an alias of a common key.
    AliasIsCommonAlias {
        /// The extension key declaring the alias.
        extension_key: String,
        /// The common key owning the alias.
        common_key: String,
    },
    /// An extension key or alias lies under a common map's free keys or inside a common
    /// `Struct`.
    UnderCommonFreeKeys {
        /// The common map or struct key.
        common_key: String,
    },
}

impl fmt::Display for ExtensionConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.kind {
            ExtensionConflictKind::KeyRedefined {
                common_type,
                extension_type,
            } => write!(
                f,
                "key `{name}` ({extension_type}) redefines the common key `{name}` ({common_type})"
            ),
            ExtensionConflictKind::KeyIsCommonAlias { common_key } => write!(
                f,
                "key `{name}` is an alias of the common key `{common_key}`"
            ),
            ExtensionConflictKind::AliasIsCommonKey { extension_key } => {
                write!(f, "alias `{name}` of `{extension_key}` is a common key")
            }
            ExtensionConflictKind::AliasIsCommonAlias {
                extension_key,
                common_key,
            } => write!(
                f,
                "alias `{name}` of `{extension_key}` is already an alias of the common key `{common_key}`"
            ),
            ExtensionConflictKind::UnderCommonFreeKeys { common_key } => write!(
                f,
                "`{name}` lies under the common key `{common_key}`, whose sub-keys are free"
            ),
        }
    }
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
