//! Rendering a [`Dictionary`] with minijinja: the dictionary JSON and Elasticsearch index
//! templates, from templates embedded in the crate or a template text the caller passes.
//!
//! [`render`] is the one render function: the CLI, the server and the protoc plugin all call
//! it, so the same dictionary and options always give the same bytes. Every output is
//! checked to be valid JSON before it is returned.
//!
//! # Elasticsearch mapping
//!
//! | key type  | mapping                                                   |
//! |-----------|-----------------------------------------------------------|
//! | keyword   | `keyword` (+ `ignore_above`), enums included              |
//! | text      | `text`                                                    |
//! | long, double, boolean, date | the same type                           |
//! | binary    | `binary` (never indexed)                                  |
//! | object    | `object` with `properties`: dotted keys become nested objects |
//! | map       | `object`, plus a dynamic template typing `<map>.*`        |
//! | struct    | `{"type": "object", "enabled": false}`: kept in `_source` only |
//!
//! `index: false` keys get `"index": false`. Keys need no escaping: `my/fieldname` is a
//! property name like any other.
//!
//! Unknown fields stay in `_source` and are never indexed: a last dynamic template maps any
//! unknown value to `{"type": "keyword", "index": false, "doc_values": false}`. A keyword
//! accepts strings, numbers and booleans alike, so an unknown key that is a string in one log
//! and a number in the next does not reject the document (the mapping conflict the schema
//! exists to prevent). Unknown objects are mapped as objects first (a template matching
//! `object`), so that their own fields reach the catch-all; map templates sit between the two.
//!
//! Retention: an index template cannot hold one. `lifecycle_policy` sets
//! `index.lifecycle.name`; the ILM policy itself, with a delete phase after
//! `retention_days`, is created by the caller. `retention_days` is recorded in `_meta` (the
//! template's, or the mapping's for legacy templates) so that tooling can check the policy.
//!
//! # Template context
//!
//! User templates see the same context as the embedded ones:
//!
//! - `format`: `dictionary`, `es-template` or `es-legacy-template`;
//! - `root`, `extensions`: the dictionary's root message and merged extensions;
//! - `fields`: the dictionary's fields, as in the dictionary JSON;
//! - `dictionary_json`: the dictionary as pretty JSON;
//! - `default_fields`: the keys searched by default;
//! - `properties`: the mapping tree, nodes of `{name, params, properties}` sorted by name,
//!   where `params` is a list of `[name, value]` pairs (`["type", "keyword"]`);
//! - `dynamic_templates`: `{name, conditions, mapping}`, conditions and mapping as pairs;
//! - `index_patterns`, `priority`, `lifecycle_policy`, `retention_days`, `schema_version`:
//!   the options, `none` when unset;
//! - `meta`: the `_meta` entries as pairs.
//!
//! The macros of the embedded templates can be imported:
//! `{% import "caravan/macros.j2" as caravan %}`. Templates use `trim_blocks` and
//! `lstrip_blocks`, no auto-escaping (use `tojson`), and printing an undefined value is an
//! error.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::dictionary::{Dictionary, FieldDef, FieldType};
use crate::error::Error;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// The dictionary as pretty JSON.
    Dictionary,
    /// An Elasticsearch composable index template (`PUT _index_template/<name>`).
    EsTemplate,
    /// An Elasticsearch legacy index template (`PUT _template/<name>`), before 7.8.
    EsLegacyTemplate,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [
        Format::Dictionary,
        Format::EsTemplate,
        Format::EsLegacyTemplate,
    ];

    /// The format's name, as parsed by [`Format::from_str`].
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Dictionary => "dictionary",
            Format::EsTemplate => "es-template",
            Format::EsLegacyTemplate => "es-legacy-template",
        }
    }

    /// A file name for the output, for tools writing one file per format.
    pub fn default_file_name(self) -> &'static str {
        match self {
            Format::Dictionary => "dictionary.json",
            Format::EsTemplate => "es-template.json",
            Format::EsLegacyTemplate => "es-legacy-template.json",
        }
    }

    /// Whether the format is an Elasticsearch template (and needs index patterns).
    pub fn is_elasticsearch(self) -> bool {
        !matches!(self, Format::Dictionary)
    }

    fn template_name(self) -> &'static str {
        match self {
            Format::Dictionary => "dictionary.json.j2",
            Format::EsTemplate => "es-template.json.j2",
            Format::EsLegacyTemplate => "es-legacy-template.json.j2",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str() == name)
            .ok_or_else(|| {
                Error::InvalidRenderOptions(format!(
                    "unknown format `{name}`, expected one of dictionary, es-template, es-legacy-template"
                ))
            })
    }
}

/// How to render a dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// What to render. Default: [`Format::Dictionary`].
    pub format: Format,
    /// The index patterns an Elasticsearch template applies to (`payments-*`). Required,
    /// non-empty, for Elasticsearch formats. Default: none.
    pub index_patterns: Vec<String>,
    /// Map `@timestamp` as a date when the schema does not define it. Default: true.
    pub include_timestamp: bool,
    /// The ILM policy the indices use (`index.lifecycle.name`). Default: none.
    pub lifecycle_policy: Option<String>,
    /// The retention the ILM policy implements, recorded in `_meta`. Default: none.
    pub retention_days: Option<u32>,
    /// The template's `priority` (composable) or `order` (legacy). Default: none.
    pub priority: Option<u32>,
    /// The schema version recorded in `_meta` (a git revision, a release). Default: none.
    pub schema_version: Option<String>,
    /// A template text replacing the embedded template of `format`. Default: none.
    pub template: Option<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            format: Format::Dictionary,
            index_patterns: Vec::new(),
            include_timestamp: true,
            lifecycle_policy: None,
            retention_days: None,
            priority: None,
            schema_version: None,
            template: None,
        }
    }
}

const MACROS_NAME: &str = "caravan/macros.j2";
const MACROS: &str = include_str!("../templates/caravan/macros.j2");
const DICTIONARY_TEMPLATE: &str = include_str!("../templates/dictionary.json.j2");
const ES_TEMPLATE: &str = include_str!("../templates/es-template.json.j2");
const ES_LEGACY_TEMPLATE: &str = include_str!("../templates/es-legacy-template.json.j2");

/// The embedded template of a format, as a starting point for a custom one.
pub fn default_template(format: Format) -> &'static str {
    match format {
        Format::Dictionary => DICTIONARY_TEMPLATE,
        Format::EsTemplate => ES_TEMPLATE,
        Format::EsLegacyTemplate => ES_LEGACY_TEMPLATE,
    }
}

/// The embedded macros (`caravan/macros.j2`), importable from custom templates.
pub fn template_macros() -> &'static str {
    MACROS
}

/// Renders a dictionary. Deterministic: the same dictionary and options give the same
/// bytes. The output is valid JSON, or this returns [`Error::InvalidOutput`].
pub fn render(dictionary: &Dictionary, options: &RenderOptions) -> Result<String, Error> {
    check_options(options)?;
    let context = Context::new(dictionary, options)?;

    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_template(MACROS_NAME, MACROS)?;
    let name = options.format.template_name();
    let source = options
        .template
        .as_deref()
        .unwrap_or_else(|| default_template(options.format));
    env.add_template(name, source)?;
    let output = env.get_template(name)?.render(&context)?;

    serde_json::from_str::<serde::de::IgnoredAny>(&output).map_err(|err| Error::InvalidOutput {
        format: options.format,
        message: err.to_string(),
    })?;
    Ok(output)
}

fn check_options(options: &RenderOptions) -> Result<(), Error> {
    let invalid = |message: String| Err(Error::InvalidRenderOptions(message));
    if options.format.is_elasticsearch() && options.index_patterns.is_empty() {
        return invalid(format!(
            "the {} format needs at least one index pattern",
            options.format
        ));
    }
    for pattern in &options.index_patterns {
        let forbidden =
            |c: char| c.is_ascii_uppercase() || c.is_whitespace() || "\\/?\"<>|,#:".contains(c);
        if pattern.is_empty()
            || pattern.starts_with(['-', '_', '+'])
            || pattern.chars().any(forbidden)
        {
            return invalid(format!(
                "invalid index pattern `{pattern}`: lowercase, no spaces or \\ / ? \" < > | , # :, \
                 not starting with - _ +"
            ));
        }
    }
    if let Some(policy) = &options.lifecycle_policy
        && policy.trim().is_empty()
    {
        return invalid("the lifecycle policy name is empty".to_owned());
    }
    if options.retention_days == Some(0) {
        return invalid("retention_days must be at least 1".to_owned());
    }
    Ok(())
}

/// A mapping parameter or match condition: `["type", "keyword"]`.
type Pair = (&'static str, Value);

#[derive(Debug, Serialize)]
struct Context<'a> {
    format: &'static str,
    root: &'a str,
    extensions: &'a [String],
    fields: &'a [FieldDef],
    dictionary_json: String,
    default_fields: Vec<&'a str>,
    properties: Vec<Property>,
    dynamic_templates: Vec<DynamicTemplate>,
    index_patterns: &'a [String],
    priority: Option<u32>,
    lifecycle_policy: Option<&'a str>,
    retention_days: Option<u32>,
    schema_version: Option<&'a str>,
    meta: Vec<Pair>,
}

/// A node of the mapping tree.
#[derive(Debug, Default, Serialize)]
struct Property {
    name: String,
    params: Vec<Pair>,
    properties: Vec<Property>,
}

#[derive(Debug, Serialize)]
struct DynamicTemplate {
    name: String,
    conditions: Vec<Pair>,
    mapping: Vec<Pair>,
}

impl<'a> Context<'a> {
    fn new(dictionary: &'a Dictionary, options: &'a RenderOptions) -> Result<Self, Error> {
        let dictionary_json =
            serde_json::to_string_pretty(dictionary).map_err(|err| Error::InvalidOutput {
                format: options.format,
                message: err.to_string(),
            })?;

        let mut meta: Vec<Pair> = vec![
            ("generated_by", Value::from("caravan")),
            ("schema_root", Value::from(dictionary.root())),
        ];
        if !dictionary.extensions().is_empty() {
            meta.push(("schema_extensions", Value::from(dictionary.extensions())));
        }
        if let Some(version) = &options.schema_version {
            meta.push(("schema_version", Value::from(version.as_str())));
        }
        if let Some(days) = options.retention_days {
            meta.push(("retention_days", Value::from(days)));
        }

        Ok(Context {
            format: options.format.as_str(),
            root: dictionary.root(),
            extensions: dictionary.extensions(),
            fields: dictionary.fields(),
            dictionary_json,
            default_fields: dictionary
                .default_fields()
                .map(|field| field.key.as_str())
                .collect(),
            properties: properties(dictionary, options.include_timestamp),
            dynamic_templates: dynamic_templates(dictionary),
            index_patterns: &options.index_patterns,
            priority: options.priority,
            lifecycle_policy: options.lifecycle_policy.as_deref(),
            retention_days: options.retention_days,
            schema_version: options.schema_version.as_deref(),
            meta,
        })
    }
}

/// The Elasticsearch mapping parameters of a key (its sub-keys aside).
fn mapping(field: &FieldDef) -> Vec<Pair> {
    let type_of = |name: &str| ("type", Value::from(name));
    let mut params = Vec::new();
    match field.field_type {
        FieldType::Keyword => {
            params.push(type_of("keyword"));
            if let Some(ignore_above) = field.ignore_above {
                params.push(("ignore_above", Value::from(ignore_above)));
            }
        }
        FieldType::Text
        | FieldType::Long
        | FieldType::Double
        | FieldType::Boolean
        | FieldType::Date
        | FieldType::Binary => params.push(type_of(field.field_type.as_str())),
        FieldType::Object | FieldType::Map => params.push(type_of("object")),
        FieldType::Struct => {
            params.push(type_of("object"));
            params.push(("enabled", Value::from(false)));
        }
    }
    // Binary and struct take no `index` parameter: they are never indexed anyway.
    let takes_index = field.field_type.is_value() && field.field_type != FieldType::Binary;
    if takes_index && !field.indexed {
        params.push(("index", Value::from(false)));
    }
    params
}

/// The mapping tree: dotted keys become nested objects, sorted by name at each level.
fn properties(dictionary: &Dictionary, include_timestamp: bool) -> Vec<Property> {
    #[derive(Default)]
    struct Node {
        params: Vec<Pair>,
        children: BTreeMap<String, Node>,
    }
    fn into_properties(children: BTreeMap<String, Node>) -> Vec<Property> {
        children
            .into_iter()
            .map(|(name, node)| Property {
                name,
                params: node.params,
                properties: into_properties(node.children),
            })
            .collect()
    }

    let mut root = Node::default();
    for field in dictionary.fields() {
        let node = field.key.split('.').fold(&mut root, |node, segment| {
            node.children.entry(segment.to_owned()).or_default()
        });
        node.params = mapping(field);
    }
    if include_timestamp && dictionary.get("@timestamp").is_none() {
        let timestamp = root.children.entry("@timestamp".to_owned()).or_default();
        timestamp.params = vec![("type", Value::from("date"))];
    }
    into_properties(root.children)
}

/// Dynamic templates, in match order: unknown objects stay objects, map values get their
/// type, and any other unknown value is kept in `_source` only.
fn dynamic_templates(dictionary: &Dictionary) -> Vec<DynamicTemplate> {
    let mut templates = vec![DynamicTemplate {
        name: "caravan_unknown_objects".to_owned(),
        conditions: vec![("match_mapping_type", Value::from("object"))],
        mapping: vec![("type", Value::from("object"))],
    }];
    for field in dictionary.fields() {
        if let Some(value) = &field.map_value {
            templates.push(DynamicTemplate {
                name: format!("caravan_map_{}", field.key),
                conditions: vec![("path_match", Value::from(value.key.as_str()))],
                mapping: mapping(value),
            });
        }
    }
    templates.push(DynamicTemplate {
        name: "caravan_unknown_fields".to_owned(),
        conditions: vec![("match_mapping_type", Value::from("*"))],
        mapping: vec![
            ("type", Value::from("keyword")),
            ("index", Value::from(false)),
            ("doc_values", Value::from(false)),
        ],
    });
    templates
}
