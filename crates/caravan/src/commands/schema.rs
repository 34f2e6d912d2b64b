//! `caravan schema ...`: local compile and diff (no server), and the server's registry.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use caravan_api::{SchemaFileBody, SchemaPush};
use caravan_schema::{CompileOptions, Dictionary, RenderOptions};

use crate::cli::{Cli, SchemaCommand, SchemaSourceArgs, SchemaView};
use crate::output::Printer;

/// The starter schema written by `schema init`: the example of the repository.
const STARTER_SCHEMA: &str = include_str!("../../../../examples/schema/log_schema.proto");
const STARTER_SCHEMA_FILE: &str = "log_schema.proto";

pub async fn run(cli: &Cli, printer: &Printer, command: &SchemaCommand) -> anyhow::Result<()> {
    match command {
        SchemaCommand::Init { dir, force } => init(dir, *force),
        SchemaCommand::Compile {
            files,
            source,
            format,
            index_patterns,
            no_timestamp,
            lifecycle_policy,
            retention_days,
            priority,
            template,
            out,
        } => {
            let dictionary = compile(files, source)?;
            let template = template
                .as_deref()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read template {}", path.display()))
                })
                .transpose()?;
            let options = RenderOptions {
                format: *format,
                index_patterns: index_patterns.clone(),
                include_timestamp: !no_timestamp,
                lifecycle_policy: lifecycle_policy.clone(),
                retention_days: *retention_days,
                priority: *priority,
                template,
                ..RenderOptions::default()
            };
            let rendered = caravan_schema::render(&dictionary, &options)?;
            match out {
                Some(path) => std::fs::write(path, rendered)
                    .with_context(|| format!("cannot write {}", path.display())),
                None => Ok(std::io::stdout().write_all(rendered.as_bytes())?),
            }
        }
        SchemaCommand::Diff { old, new, source } => {
            let old = load_dictionary(old, source)?;
            let new = load_dictionary(new, source)?;
            let diff = caravan_schema::diff(&old, &new);
            print!("{diff}");
            if diff.has_conflicts() {
                bail!(
                    "{} key(s) change type: indexes made from the old and the new schema would have mapping conflicts",
                    diff.conflicts.len()
                );
            }
            Ok(())
        }
        SchemaCommand::Push {
            files,
            source,
            tenant,
        } => {
            let push = SchemaPush {
                files: read_sources(files, source.proto_path.as_deref())?
                    .into_iter()
                    .map(|(name, content)| SchemaFileBody { name, content })
                    .collect(),
                root_message: source.root.clone(),
            };
            let pushed = super::client(cli)?
                .push_schema(tenant.as_ref(), &push)
                .await?;
            printer.schema_pushed(&pushed)
        }
        SchemaCommand::Show {
            tenant,
            version,
            view,
        } => {
            let client = super::client(cli)?;
            match view {
                SchemaView::Keys | SchemaView::Sources => {
                    let schema = client.schema(tenant.as_ref(), *version).await?;
                    if *view == SchemaView::Sources {
                        printer.schema_sources(&schema)
                    } else {
                        let dictionary: Dictionary =
                            serde_json::from_value(schema.dictionary.clone())?;
                        printer.schema_keys(&schema, &dictionary)
                    }
                }
                SchemaView::Versions => {
                    printer.schema_versions(&client.schema_versions(tenant.as_ref()).await?)
                }
                SchemaView::Dictionary => match tenant {
                    Some(tenant) => printer.raw_json(&client.tenant_dictionary(tenant).await?),
                    None => printer.raw_json(&client.schema(None, *version).await?.dictionary),
                },
                SchemaView::EsTemplate | SchemaView::EsLegacyTemplate => {
                    let Some(tenant) = tenant else {
                        bail!("a template is made for a tenant's indexes: give --tenant");
                    };
                    let format = if *view == SchemaView::EsTemplate {
                        "es-template"
                    } else {
                        "es-legacy-template"
                    };
                    printer.raw_json(&client.tenant_template(tenant, format).await?)
                }
            }
        }
    }
}

fn init(dir: &Path, force: bool) -> anyhow::Result<()> {
    let files = [
        (dir.join(STARTER_SCHEMA_FILE), STARTER_SCHEMA),
        (
            dir.join(caravan_schema::OPTIONS_PROTO_PATH),
            caravan_schema::OPTIONS_PROTO,
        ),
    ];
    if !force && let Some((existing, _)) = files.iter().find(|(path, _)| path.exists()) {
        bail!(
            "{} already exists; use --force to overwrite",
            existing.display()
        );
    }
    for (path, content) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!(
        "next: edit {STARTER_SCHEMA_FILE}, check it with `caravan schema compile {}`, publish it with `caravan schema push`",
        dir.join(STARTER_SCHEMA_FILE).display()
    );
    Ok(())
}

/// Reads files as (import name, contents): the name is the path relative to `proto_path`, or
/// the file name when no import root is given.
fn read_sources(
    files: &[PathBuf],
    proto_path: Option<&Path>,
) -> anyhow::Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|path| {
            let content = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let name = match proto_path {
                Some(root) => path
                    .strip_prefix(root)
                    .with_context(|| {
                        format!(
                            "{} is not under --proto-path {}",
                            path.display(),
                            root.display()
                        )
                    })?
                    .to_path_buf(),
                None => PathBuf::from(
                    path.file_name()
                        .context("a .proto file path has a file name")?,
                ),
            };
            let name = name
                .to_str()
                .with_context(|| format!("{} is not valid UTF-8", name.display()))?
                .replace('\\', "/");
            Ok((name, content))
        })
        .collect()
}

fn compile(files: &[PathBuf], source: &SchemaSourceArgs) -> anyhow::Result<Dictionary> {
    let sources = read_sources(files, source.proto_path.as_deref())?;
    let mut options = CompileOptions::default();
    if let Some(root) = &source.root {
        options.root_message = root.clone();
    }
    Ok(caravan_schema::compile_files(sources, &options)?)
}

fn load_dictionary(path: &Path, source: &SchemaSourceArgs) -> anyhow::Result<Dictionary> {
    if path.extension().is_some_and(|ext| ext == "json") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a field dictionary", path.display()));
    }
    compile(&[path.to_path_buf()], source).with_context(|| format!("in {}", path.display()))
}
