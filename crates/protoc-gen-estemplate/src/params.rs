//! The plugin parameter: `--estemplate_opt=key=value,key=value`, parsed and checked into a
//! [`Params`] before anything is compiled.
//!
//! `,` separates options (protoc joins repeated `--estemplate_opt` flags with `,`), so
//! list values use `;` or `|`: `index_patterns=payments-*;billing-*`.

use caravan_schema::{CompileOptions, Format, RenderOptions};

/// The options understood, for error messages.
const KNOWN: &str = "root, format, index_patterns, template, include_timestamp, \
     lifecycle_policy, retention_days, priority, schema_version, max_keys, out";

/// The checked plugin parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Params {
    /// Root message and limits.
    pub(crate) compile: CompileOptions,
    /// The formats to write, one file each. Default: `es-template`.
    pub(crate) formats: Vec<Format>,
    /// Render options shared by every format (`format` and `template` are set per file).
    pub(crate) render: RenderOptions,
    /// A template file replacing the embedded template (one format only).
    pub(crate) template_path: Option<String>,
    /// The output file name (one format only). Default: the format's default file name.
    pub(crate) out: Option<String>,
}

impl Params {
    /// The output file name of a format.
    pub(crate) fn file_name(&self, format: Format) -> String {
        self.out
            .clone()
            .unwrap_or_else(|| format.default_file_name().to_owned())
    }
}

/// Parses the `parameter` of a `CodeGeneratorRequest`.
pub(crate) fn parse(parameter: &str) -> Result<Params, String> {
    let mut params = Params {
        compile: CompileOptions::default(),
        formats: vec![Format::EsTemplate],
        render: RenderOptions::default(),
        template_path: None,
        out: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for option in parameter
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!(
                "option `{option}` is not key=value (known: {KNOWN})"
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(format!("option `{key}` is given twice"));
        }
        seen.push(key);
        match key {
            "root" => params.compile.root_message = non_empty(key, value)?,
            "format" => {
                params.formats = list(value)
                    .map(|name| name.parse::<Format>().map_err(|err| err.to_string()))
                    .collect::<Result<_, _>>()?;
                if params.formats.is_empty() {
                    return Err("option `format` names no format".to_owned());
                }
            }
            "index_patterns" => {
                params.render.index_patterns = list(value).map(str::to_owned).collect()
            }
            "template" => params.template_path = Some(non_empty(key, value)?),
            "include_timestamp" => params.render.include_timestamp = boolean(key, value)?,
            "lifecycle_policy" => params.render.lifecycle_policy = Some(non_empty(key, value)?),
            "retention_days" => params.render.retention_days = Some(number(key, value)?),
            "priority" => params.render.priority = Some(number(key, value)?),
            "schema_version" => params.render.schema_version = Some(non_empty(key, value)?),
            "max_keys" => params.compile.max_keys = number(key, value)?,
            "out" => params.out = Some(non_empty(key, value)?),
            _ => return Err(format!("unknown option `{key}` (known: {KNOWN})")),
        }
    }
    params.formats.dedup();
    if params.formats.len() > 1 {
        for single in ["template", "out"] {
            if seen.contains(&single) {
                return Err(format!("option `{single}` needs a single format"));
            }
        }
    }
    Ok(params)
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([';', '|'])
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn non_empty(key: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("option `{key}` is empty"));
    }
    Ok(value.to_owned())
}

fn boolean(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "option `{key}` must be true or false, got `{value}`"
        )),
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("option `{key}` must be a non-negative integer, got `{value}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let params = parse("").unwrap();
        assert_eq!(params.formats, [Format::EsTemplate]);
        assert_eq!(params.compile, CompileOptions::default());
        assert_eq!(params.render, RenderOptions::default());
        assert_eq!(params.file_name(Format::EsTemplate), "es-template.json");
    }

    #[test]
    fn every_option() {
        let params = parse(
            "root=acme.LogSchema, format=es-legacy-template, index_patterns=a-*;b-*|c-*, \
             template=t.j2,include_timestamp=false,lifecycle_policy=logs,retention_days=10,\
             priority=5,schema_version=v1,max_keys=50,out=x.json",
        )
        .unwrap();
        assert_eq!(params.compile.root_message, "acme.LogSchema");
        assert_eq!(params.compile.max_keys, 50);
        assert_eq!(params.formats, [Format::EsLegacyTemplate]);
        assert_eq!(params.render.index_patterns, ["a-*", "b-*", "c-*"]);
        assert_eq!(params.template_path.as_deref(), Some("t.j2"));
        assert!(!params.render.include_timestamp);
        assert_eq!(params.render.lifecycle_policy.as_deref(), Some("logs"));
        assert_eq!(params.render.retention_days, Some(10));
        assert_eq!(params.render.priority, Some(5));
        assert_eq!(params.render.schema_version.as_deref(), Some("v1"));
        assert_eq!(params.file_name(Format::EsLegacyTemplate), "x.json");
    }

    #[test]
    fn several_formats() {
        let params = parse("format=dictionary;es-template").unwrap();
        assert_eq!(params.formats, [Format::Dictionary, Format::EsTemplate]);
        assert!(parse("format=dictionary;es-template,out=x.json").is_err());
        assert!(parse("format=dictionary|es-template,template=t").is_err());
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("colour=red", "unknown option `colour`"),
            ("root", "not key=value"),
            ("root=", "option `root` is empty"),
            ("format=yaml", "unknown format `yaml`"),
            ("include_timestamp=yes", "must be true or false"),
            ("retention_days=-1", "non-negative integer"),
            ("root=a,root=b", "given twice"),
        ];
        for (parameter, expected) in cases {
            let err = parse(parameter).unwrap_err();
            assert!(err.contains(expected), "{parameter}: {err}");
        }
    }
}
