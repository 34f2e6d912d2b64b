//! The traversal from the root message to dotted keys: the proto type mapping, options
//! applied per field, cycle detection, and the depth and key-count limits.
//!
//! The walk never stops at the first problem: it records an issue and carries on with the
//! next field, so one run reports everything it can.

use std::collections::HashSet;

use prost_reflect::{ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use crate::dictionary::{FieldDef, FieldType};
use crate::error::{Issue, IssueKind};
use crate::options::{self, Shape};
use crate::source::Positions;
use crate::validate::{self, Collected, KEY_DEPTH_MAX, KEY_LEN_MAX};

/// Walks `root` and returns the keys found and the issues met on the way.
pub(crate) fn walk(
    root: &MessageDescriptor,
    positions: &Positions,
    extension: Option<&ExtensionDescriptor>,
    max_keys: usize,
) -> (Vec<Collected>, Vec<Issue>) {
    let mut walker = Walker {
        positions,
        extension,
        max_keys,
        collected: Vec::new(),
        issues: Vec::new(),
        path: Vec::new(),
        cycles_seen: HashSet::new(),
        key_limit_reported: false,
    };
    walker.message(root, None);
    (walker.collected, walker.issues)
}

struct Walker<'a> {
    positions: &'a Positions,
    extension: Option<&'a ExtensionDescriptor>,
    max_keys: usize,
    collected: Vec<Collected>,
    issues: Vec<Issue>,
    /// The messages being walked, outermost first, each with the field we descended through.
    path: Vec<(MessageDescriptor, String)>,
    /// Cycles already reported, as their rotation starting at the smallest edge.
    cycles_seen: HashSet<Vec<String>>,
    key_limit_reported: bool,
}

/// What to do with a nested message field.
enum Descent {
    /// No cycle: walk the nested message.
    Proceed,
    /// A new cycle, as `A.b -> B.a -> A`: report it, do not descend.
    Cycle(String),
    /// A cycle already reported from another entry point: do not descend.
    KnownCycle,
}

/// The proto type of a field, classified.
enum Classified {
    Shape(Shape, Vec<String>),
    Message(MessageDescriptor),
}

impl Walker<'_> {
    fn message(&mut self, message: &MessageDescriptor, prefix: Option<&str>) {
        self.path.push((message.clone(), String::new()));
        for field in message.fields() {
            self.field(&field, prefix);
        }
        self.path.pop();
    }

    fn field(&mut self, field: &FieldDescriptor, prefix: Option<&str>) {
        let location = self.positions.field(field);
        let report = |issues: &mut Vec<Issue>, key: Option<&str>, kind| {
            issues.push(Issue {
                location: location.clone(),
                key: key.map(str::to_owned),
                kind,
            });
        };

        let join = |segment: &str| match prefix {
            Some(prefix) => format!("{prefix}.{segment}"),
            None => segment.to_owned(),
        };

        let options = match options::read(field, self.extension) {
            Ok(options) => options,
            Err(kinds) => {
                let key = join(field.name());
                for kind in kinds {
                    report(&mut self.issues, Some(&key), kind);
                }
                return;
            }
        };
        let segment = options.name.as_deref().unwrap_or(field.name());
        let key = join(segment);
        if let Err(reason) = validate::check_segment(segment) {
            let name = segment.to_owned();
            let kind = IssueKind::InvalidKeyName { name, reason };
            report(&mut self.issues, Some(&key), kind);
            return;
        }
        if key.len() > KEY_LEN_MAX {
            let kind = IssueKind::InvalidKeyName {
                name: key.clone(),
                reason: "longer than 255 bytes",
            };
            report(&mut self.issues, Some(&key), kind);
            return;
        }
        if key.split('.').count() > KEY_DEPTH_MAX {
            let kind = IssueKind::TooDeep {
                limit: KEY_DEPTH_MAX,
            };
            report(&mut self.issues, Some(&key), kind);
            return;
        }
        if self.collected.len() >= self.max_keys {
            if !self.key_limit_reported {
                self.key_limit_reported = true;
                let kind = IssueKind::TooManyKeys {
                    limit: self.max_keys,
                };
                report(&mut self.issues, Some(&key), kind);
            }
            return;
        }

        let (shape, enum_values, nested) = match classify(field) {
            Ok(Classified::Shape(shape, enum_values)) => (shape, enum_values, None),
            Ok(Classified::Message(message)) => (Shape::Object, Vec::new(), Some(message)),
            Err(kind) => {
                report(&mut self.issues, Some(&key), kind);
                return;
            }
        };
        let applied = match options::apply(&options, shape) {
            Ok(applied) => applied,
            Err(kinds) => {
                for kind in kinds {
                    report(&mut self.issues, Some(&key), kind);
                }
                return;
            }
        };

        let mut def = FieldDef {
            key: key.clone(),
            field_type: applied.field_type,
            aliases: options.aliases.clone(),
            repeated: field.is_list(),
            indexed: applied.indexed,
            default_field: applied.default_field,
            ignore_above: applied.ignore_above,
            enum_values,
            map_value: None,
        };
        match shape {
            Shape::Leaf { .. } => {}
            Shape::Struct => def.field_type = FieldType::Struct,
            Shape::Object => def.field_type = FieldType::Object,
            Shape::Map { .. } => {
                let value = FieldDef {
                    key: format!("{key}.*"),
                    aliases: Vec::new(),
                    repeated: false,
                    map_value: None,
                    ..def
                };
                def = FieldDef {
                    key: key.clone(),
                    field_type: FieldType::Map,
                    aliases: Vec::new(),
                    repeated: false,
                    indexed: value.indexed,
                    default_field: false,
                    ignore_above: None,
                    enum_values: Vec::new(),
                    map_value: Some(Box::new(value)),
                };
            }
        }
        self.collected.push(Collected {
            def,
            location: location.clone(),
        });

        if let Some(nested) = nested {
            match self.cycle_through(field, &nested) {
                Descent::Proceed => {}
                Descent::Cycle(path) => {
                    report(&mut self.issues, Some(&key), IssueKind::Cycle { path });
                    return;
                }
                Descent::KnownCycle => return,
            }
            if let Some(last) = self.path.last_mut() {
                last.1 = field.name().to_owned();
            }
            self.message(&nested, Some(&key));
        }
    }

    /// Whether descending into `nested` through `field` closes a cycle.
    fn cycle_through(&mut self, field: &FieldDescriptor, nested: &MessageDescriptor) -> Descent {
        let Some(start) = self
            .path
            .iter()
            .position(|(message, _)| message.full_name() == nested.full_name())
        else {
            return Descent::Proceed;
        };
        let last = self.path.len().saturating_sub(1);
        let edges: Vec<(String, String)> = self.path[start..]
            .iter()
            .enumerate()
            .map(|(offset, (message, via))| {
                let via = if start + offset == last {
                    field.name()
                } else {
                    via.as_str()
                };
                (message.name().to_owned(), via.to_owned())
            })
            .collect();

        // One cycle is found once per entry point and rotation; report it once.
        let full: Vec<String> = self.path[start..]
            .iter()
            .zip(&edges)
            .map(|((message, _), (_, via))| format!("{}.{via}", message.full_name()))
            .collect();
        let smallest = full
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.cmp(b.1))
            .map_or(0, |(index, _)| index);
        let mut canonical = full;
        canonical.rotate_left(smallest);
        if !self.cycles_seen.insert(canonical) {
            return Descent::KnownCycle;
        }

        let mut text: Vec<String> = edges
            .iter()
            .map(|(message, via)| format!("{message}.{via}"))
            .collect();
        text.push(nested.name().to_owned());
        Descent::Cycle(text.join(" -> "))
    }
}

/// Maps a field's proto type to a shape, or says why it has none.
fn classify(field: &FieldDescriptor) -> Result<Classified, IssueKind> {
    if field.is_group() {
        return Err(IssueKind::UnsupportedType {
            type_name: "group".to_owned(),
            hint: "use a nested message",
        });
    }
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return Err(unsupported(field.kind(), "a map field without a map entry"));
        };
        let key_kind = entry.map_entry_key_field().kind();
        if key_kind != Kind::String {
            return Err(IssueKind::MapKeyNotString {
                key_type: kind_name(&key_kind),
            });
        }
        let value_kind = entry.map_entry_value_field().kind();
        return match classify_kind(&value_kind)? {
            Classified::Shape(
                Shape::Leaf {
                    field_type,
                    is_enum,
                },
                enum_values,
            ) => Ok(Classified::Shape(
                Shape::Map {
                    value_type: field_type,
                    is_enum,
                },
                enum_values,
            )),
            _ => Err(unsupported(
                value_kind,
                "map values must be scalars, enums or timestamps; use a repeated message instead",
            )),
        };
    }
    classify_kind(&field.kind())
}

fn classify_kind(kind: &Kind) -> Result<Classified, IssueKind> {
    let leaf = |field_type| {
        Ok(Classified::Shape(
            Shape::Leaf {
                field_type,
                is_enum: false,
            },
            Vec::new(),
        ))
    };
    match kind {
        Kind::String => leaf(FieldType::Keyword),
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Fixed32
        | Kind::Fixed64
        | Kind::Sfixed32
        | Kind::Sfixed64 => leaf(FieldType::Long),
        Kind::Float | Kind::Double => leaf(FieldType::Double),
        Kind::Bool => leaf(FieldType::Boolean),
        Kind::Bytes => leaf(FieldType::Binary),
        Kind::Enum(descriptor) => Ok(Classified::Shape(
            Shape::Leaf {
                field_type: FieldType::Keyword,
                is_enum: true,
            },
            descriptor
                .values()
                .map(|value| value.name().to_owned())
                .collect(),
        )),
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.Timestamp" => leaf(FieldType::Date),
            "google.protobuf.Struct" => Ok(Classified::Shape(Shape::Struct, Vec::new())),
            "google.protobuf.StringValue" => leaf(FieldType::Keyword),
            "google.protobuf.BytesValue" => leaf(FieldType::Binary),
            "google.protobuf.BoolValue" => leaf(FieldType::Boolean),
            "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value" => leaf(FieldType::Long),
            "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => leaf(FieldType::Double),
            "google.protobuf.Duration" => Err(unsupported(
                kind.clone(),
                "log a number with the unit in the key instead, e.g. `int64 duration_ms`",
            )),
            name if name.starts_with("google.protobuf.") => Err(unsupported(
                kind.clone(),
                "only Timestamp, Struct and the scalar wrappers are supported among the well-known types",
            )),
            _ => Ok(Classified::Message(message.clone())),
        },
    }
}

fn unsupported(kind: Kind, hint: &'static str) -> IssueKind {
    IssueKind::UnsupportedType {
        type_name: kind_name(&kind),
        hint,
    }
}

/// The proto spelling of a type.
fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".to_owned(),
        Kind::Float => "float".to_owned(),
        Kind::Int32 => "int32".to_owned(),
        Kind::Int64 => "int64".to_owned(),
        Kind::Uint32 => "uint32".to_owned(),
        Kind::Uint64 => "uint64".to_owned(),
        Kind::Sint32 => "sint32".to_owned(),
        Kind::Sint64 => "sint64".to_owned(),
        Kind::Fixed32 => "fixed32".to_owned(),
        Kind::Fixed64 => "fixed64".to_owned(),
        Kind::Sfixed32 => "sfixed32".to_owned(),
        Kind::Sfixed64 => "sfixed64".to_owned(),
        Kind::Bool => "bool".to_owned(),
        Kind::String => "string".to_owned(),
        Kind::Bytes => "bytes".to_owned(),
        Kind::Message(message) => message.full_name().to_owned(),
        Kind::Enum(descriptor) => descriptor.full_name().to_owned(),
    }
}
