//! The `(caravan.field)` options: the shipped `caravan/options.proto`, reading the options
//! of a field through prost-reflect, and checking them against the field's proto type.
//!
//! The type of a key always comes from its proto type; options only refine it (keyword to
//! text, indexed or not, ...) and every option that does not fit the type is an issue.

use prost_reflect::{ExtensionDescriptor, FieldDescriptor, Value};

use crate::dictionary::FieldType;
use crate::error::IssueKind;

/// The import path of the options file: `import "caravan/options.proto";`.
pub const OPTIONS_PROTO_PATH: &str = "caravan/options.proto";

/// The text of `caravan/options.proto`, shipped with the crate and always available to the
/// compiler; `caravan schema init` writes it next to a new schema for protoc and editors.
pub const OPTIONS_PROTO: &str = include_str!("../proto/caravan/options.proto");

/// The fully qualified name of the field option extension.
pub(crate) const FIELD_EXTENSION: &str = "caravan.field";

/// The largest `ignore_above`: longer keywords could exceed Lucene's 32766-byte term limit
/// once UTF-8 encoded (4 bytes per character at worst).
pub const IGNORE_ABOVE_MAX: u32 = 8191;

/// The options set on one field, before they are checked against its type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct KeyOptions {
    pub(crate) name: Option<String>,
    pub(crate) aliases: Vec<String>,
    pub(crate) text: bool,
    pub(crate) index: Option<bool>,
    pub(crate) default_field: bool,
    pub(crate) ignore_above: Option<u32>,
}

/// Reads `(caravan.field)` from a field. Without the extension in the pool (the schema does
/// not import the options file) every field has default options.
pub(crate) fn read(
    field: &FieldDescriptor,
    extension: Option<&ExtensionDescriptor>,
) -> Result<KeyOptions, Vec<IssueKind>> {
    let mut options = KeyOptions::default();
    let Some(extension) = extension else {
        return Ok(options);
    };
    let field_options = field.options();
    if !field_options.has_extension(extension) {
        return Ok(options);
    }
    let value = field_options.get_extension(extension);
    let Value::Message(message) = value.as_ref() else {
        return Err(vec![IssueKind::UnknownOption {
            option: FIELD_EXTENSION.to_owned(),
        }]);
    };

    let mut issues = Vec::new();
    for (descriptor, value) in message.fields() {
        match (descriptor.name(), value) {
            ("name", Value::String(name)) => {
                options.name = Some(name.clone()).filter(|name| !name.is_empty());
            }
            ("aliases", Value::List(aliases)) => {
                for alias in aliases {
                    match alias {
                        Value::String(alias) => options.aliases.push(alias.clone()),
                        _ => issues.push(unknown(descriptor.name())),
                    }
                }
            }
            ("text", Value::Bool(text)) => options.text = *text,
            ("index", Value::Bool(index)) => options.index = Some(*index),
            ("default_field", Value::Bool(default_field)) => {
                options.default_field = *default_field;
            }
            ("ignore_above", Value::U32(ignore_above)) => {
                // proto3 cannot tell 0 from unset: 0 means no limit.
                options.ignore_above = Some(*ignore_above).filter(|limit| *limit > 0);
            }
            (name, _) => issues.push(unknown(name)),
        }
    }
    for unknown_field in message.unknown_fields() {
        issues.push(IssueKind::UnknownOption {
            option: format!("#{}", unknown_field.number()),
        });
    }
    if issues.is_empty() {
        Ok(options)
    } else {
        Err(issues)
    }
}

fn unknown(name: &str) -> IssueKind {
    IssueKind::UnknownOption {
        option: name.to_owned(),
    }
}

/// What the proto type of a field makes of it, before options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A value: keyword (strings and enums), long, double, boolean, date or binary.
    Leaf {
        field_type: FieldType,
        is_enum: bool,
    },
    /// `google.protobuf.Struct`: stored, never indexed.
    Struct,
    /// A nested message: its fields are keys of their own.
    Object,
    /// `map<string, X>`: free keys whose values are `X` (a leaf).
    Map {
        value_type: FieldType,
        is_enum: bool,
    },
}

/// What a key is once its options are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The key's type; for maps, the type of the values.
    pub(crate) field_type: FieldType,
    pub(crate) indexed: bool,
    pub(crate) default_field: bool,
    pub(crate) ignore_above: Option<u32>,
}

/// Applies options to a shape, reporting every option that does not fit.
pub(crate) fn apply(options: &KeyOptions, shape: Shape) -> Result<Applied, Vec<IssueKind>> {
    let mut issues = Vec::new();
    let mut not_applicable = |option: &'static str, reason: String| {
        issues.push(IssueKind::OptionNotApplicable { option, reason });
    };

    // The type that values of this key have, and whether `text` could turn it into text.
    let (value_type, is_string) = match shape {
        Shape::Leaf {
            field_type,
            is_enum,
        }
        | Shape::Map {
            value_type: field_type,
            is_enum,
        } => (field_type, field_type == FieldType::Keyword && !is_enum),
        Shape::Struct => (FieldType::Struct, false),
        Shape::Object => (FieldType::Object, false),
    };

    if !options.aliases.is_empty() {
        match shape {
            Shape::Object => not_applicable(
                "aliases",
                "a nested message holds no value of its own; alias its keys instead".to_owned(),
            ),
            Shape::Map { .. } => not_applicable(
                "aliases",
                "the keys under a map are free; an alias would shadow them".to_owned(),
            ),
            Shape::Leaf { .. } | Shape::Struct => {}
        }
    }

    let mut field_type = value_type;
    if options.text {
        if is_string {
            field_type = FieldType::Text;
        } else {
            not_applicable(
                "text",
                format!("full text needs a string field, this one is {value_type}"),
            );
        }
    }

    let never_indexed = matches!(value_type, FieldType::Binary | FieldType::Struct);
    let mut indexed = !never_indexed;
    match (options.index, shape) {
        (None, _) => {}
        (Some(_), Shape::Object) => not_applicable(
            "index",
            "a nested message is not indexed itself; set it on its keys".to_owned(),
        ),
        (Some(true), _) if never_indexed => not_applicable(
            "index",
            format!("{value_type} values are stored, never indexed"),
        ),
        (Some(index), _) => indexed = index && !never_indexed,
    }

    if options.default_field {
        if !matches!(shape, Shape::Leaf { .. }) {
            not_applicable(
                "default_field",
                format!(
                    "only keys holding a value can be searched by default, this one is {value_type}"
                ),
            );
        } else if !matches!(field_type, FieldType::Keyword | FieldType::Text) {
            not_applicable(
                "default_field",
                format!(
                    "a query without a field is a text query; it needs a keyword or text key, this one is {field_type}"
                ),
            );
        } else if !indexed {
            not_applicable(
                "default_field",
                "the key is not indexed (`index: false`), so it cannot be searched".to_owned(),
            );
        }
    }

    if let Some(ignore_above) = options.ignore_above {
        if field_type != FieldType::Keyword || matches!(shape, Shape::Object | Shape::Struct) {
            not_applicable(
                "ignore_above",
                format!("only keyword keys have a length limit, this one is {field_type}"),
            );
        } else if ignore_above > IGNORE_ABOVE_MAX {
            issues.push(IssueKind::InvalidOptionValue {
                option: "ignore_above",
                reason: format!("at most {IGNORE_ABOVE_MAX}, got {ignore_above}"),
            });
        }
    }

    if issues.is_empty() {
        Ok(Applied {
            field_type,
            indexed,
            default_field: options.default_field,
            ignore_above: options.ignore_above,
        })
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(field_type: FieldType) -> Shape {
        Shape::Leaf {
            field_type,
            is_enum: false,
        }
    }

    #[test]
    fn text_turns_a_string_into_text() {
        let options = KeyOptions {
            text: true,
            default_field: true,
            ..KeyOptions::default()
        };
        let applied = apply(&options, leaf(FieldType::Keyword)).unwrap();
        assert_eq!(applied.field_type, FieldType::Text);
        assert!(applied.default_field);
    }

    #[test]
    fn text_on_an_enum_is_refused() {
        let options = KeyOptions {
            text: true,
            ..KeyOptions::default()
        };
        let shape = Shape::Leaf {
            field_type: FieldType::Keyword,
            is_enum: true,
        };
        let issues = apply(&options, shape).unwrap_err();
        assert!(matches!(
            issues.as_slice(),
            [IssueKind::OptionNotApplicable { option: "text", .. }]
        ));
    }

    #[test]
    fn bytes_are_never_indexed() {
        let applied = apply(&KeyOptions::default(), leaf(FieldType::Binary)).unwrap();
        assert!(!applied.indexed);
        let options = KeyOptions {
            index: Some(true),
            ..KeyOptions::default()
        };
        assert!(apply(&options, leaf(FieldType::Binary)).is_err());
    }

    #[test]
    fn every_misfit_is_reported() {
        let options = KeyOptions {
            text: true,
            default_field: true,
            ignore_above: Some(10),
            ..KeyOptions::default()
        };
        let issues = apply(&options, leaf(FieldType::Long)).unwrap_err();
        assert_eq!(issues.len(), 3, "{issues:?}");
    }
}
