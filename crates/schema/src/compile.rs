//! The two ways into a [`Dictionary`]: schema sources ([`compile_files`], used by the CLI and
//! the server) and an encoded descriptor set ([`compile_descriptor_set`], used by the protoc
//! plugin). Both build a prost-reflect `DescriptorPool` and run the same walk, so the same
//! schema gives the same dictionary, and therefore the same rendered bytes, either way.

use prost_reflect::{DescriptorPool, MessageDescriptor};
use protox::file::{ChainFileResolver, GoogleFileResolver};

use crate::dictionary::Dictionary;
use crate::error::Error;
use crate::options::{FIELD_EXTENSION, OPTIONS_PROTO, OPTIONS_PROTO_PATH};
use crate::source::{self, MemoryResolver, Positions};
use crate::validate;
use crate::walk;

/// The root message name used when none is configured.
pub const DEFAULT_ROOT_MESSAGE: &str = "LogSchema";

/// The most keys a schema may define. Kibana struggles past about 1000 fields per index
/// pattern; the original single-index stack reached 4200 and went down to 150 with a schema.
pub const DEFAULT_MAX_KEYS: usize = 1000;

/// How to compile a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// The root message: a short name (`LogSchema`, searched in the schema files, must be
    /// unique) or a fully qualified one (`acme.logs.LogSchema`, a leading `.` is allowed).
    /// Default: [`DEFAULT_ROOT_MESSAGE`].
    pub root_message: String,
    /// The most keys the schema may define (every key counts, objects and maps included).
    /// Default: [`DEFAULT_MAX_KEYS`].
    pub max_keys: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            root_message: DEFAULT_ROOT_MESSAGE.to_owned(),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// Compiles schema sources, given as `(name, contents)` pairs, into a dictionary.
///
/// Names are import names: relative, `/`-separated (`log_schema.proto`,
/// `teams/payments.proto`), as the files import each other. The well-known types
/// (`google/protobuf/*.proto`) and `caravan/options.proto` are always available; passing a
/// copy of `caravan/options.proto` is allowed only if it is identical to
/// [`crate::OPTIONS_PROTO`]. The order of the files does not matter.
pub fn compile_files<I, N, C>(files: I, options: &CompileOptions) -> Result<Dictionary, Error>
where
    I: IntoIterator<Item = (N, C)>,
    N: AsRef<str>,
    C: AsRef<str>,
{
    let mut user_files = MemoryResolver::default();
    let mut names = Vec::new();
    for (name, contents) in files {
        let (name, contents) = (name.as_ref(), contents.as_ref());
        source::check_file_name(name).map_err(|reason| Error::InvalidFileName {
            name: name.to_owned(),
            reason,
        })?;
        if name == OPTIONS_PROTO_PATH {
            if contents != OPTIONS_PROTO {
                return Err(Error::OptionsProtoMismatch);
            }
            continue;
        }
        if !user_files.insert(name.to_owned(), contents.to_owned()) {
            return Err(Error::DuplicateFile(name.to_owned()));
        }
        names.push(name.to_owned());
    }
    // Sorted, so that the pool (and any compile error) does not depend on the caller's order.
    names.sort();

    let mut shipped = MemoryResolver::default();
    shipped.insert(OPTIONS_PROTO_PATH.to_owned(), OPTIONS_PROTO.to_owned());
    let mut resolver = ChainFileResolver::new();
    resolver.add(shipped);
    resolver.add(user_files);
    resolver.add(GoogleFileResolver::new());

    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_source_info(true);
    for name in &names {
        compiler
            .open_file(name)
            .map_err(|err| Error::Compile(describe(&err)))?;
    }
    compile_pool(&compiler.descriptor_pool(), &names, options)
}

/// Compiles an encoded `FileDescriptorSet` (as protoc hands to plugins, or
/// `protoc --descriptor_set_out --include_imports`) into a dictionary. The root message is
/// searched in `files_to_generate`.
///
/// The set must stay encoded: decoding it into `prost_types` loses the `(caravan.field)`
/// options, which are extensions. Positions in errors need source info, which protoc only
/// includes for the files to generate; elsewhere errors name the file alone.
pub fn compile_descriptor_set<S: AsRef<str>>(
    encoded_set: &[u8],
    files_to_generate: &[S],
    options: &CompileOptions,
) -> Result<Dictionary, Error> {
    let pool =
        DescriptorPool::decode(encoded_set).map_err(|err| Error::Descriptor(format!("{err:?}")))?;
    let mut names: Vec<String> = files_to_generate
        .iter()
        .map(|name| name.as_ref().to_owned())
        .collect();
    names.sort();
    names.dedup();
    for name in &names {
        if pool.get_file_by_name(name).is_none() {
            return Err(Error::Descriptor(format!(
                "file to generate `{name}` is not in the descriptor set"
            )));
        }
    }
    compile_pool(&pool, &names, options)
}

/// A compiler error as text: protox's Debug output is its plain rendering
/// (`file:line:col: message`), followed by the diagnostic's causes (what is wrong inside an
/// option value) and by the other errors found in the same file, one per line.
fn describe(err: &protox::Error) -> String {
    use miette::Diagnostic;

    fn causes(diagnostic: &dyn Diagnostic, text: &mut String) {
        let mut cause = diagnostic.diagnostic_source();
        while let Some(inner) = cause {
            text.push_str(&format!(": {inner}"));
            cause = inner.diagnostic_source();
        }
    }

    let mut text = format!("{err:?}");
    causes(err, &mut text);
    for related in err.related().into_iter().flatten() {
        text.push_str(&format!(
            "\n{}: {related}",
            err.file().unwrap_or("<unknown file>")
        ));
        causes(related, &mut text);
    }
    text
}

/// The common path: find the root, walk it, check names, build the dictionary.
fn compile_pool(
    pool: &DescriptorPool,
    schema_files: &[String],
    options: &CompileOptions,
) -> Result<Dictionary, Error> {
    let root = find_root(pool, schema_files, &options.root_message)?;
    let positions = Positions::new(pool);
    let extension = pool.get_extension_by_name(FIELD_EXTENSION);
    let (collected, mut issues) =
        walk::walk(&root, &positions, extension.as_ref(), options.max_keys);
    issues.extend(validate::check_names(&collected));
    if !issues.is_empty() {
        return Err(Error::Invalid { issues });
    }
    let fields = collected.into_iter().map(|item| item.def).collect();
    Dictionary::new(root.full_name().to_owned(), Vec::new(), fields)
}

fn find_root(
    pool: &DescriptorPool,
    schema_files: &[String],
    name: &str,
) -> Result<MessageDescriptor, Error> {
    let in_schema = |message: &MessageDescriptor| {
        schema_files
            .iter()
            .any(|file| file == message.parent_file().name())
    };
    if name.contains('.') {
        let full_name = name.trim_start_matches('.');
        return pool
            .get_message_by_name(full_name)
            .filter(in_schema)
            .ok_or_else(|| Error::RootNotFound {
                name: name.to_owned(),
                searched: schema_files.to_vec(),
            });
    }
    let mut candidates: Vec<MessageDescriptor> = pool
        .all_messages()
        .filter(|message| message.name() == name && in_schema(message))
        .collect();
    candidates.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    if candidates.len() > 1 {
        return Err(Error::RootAmbiguous {
            name: name.to_owned(),
            candidates: candidates
                .iter()
                .map(|message| message.full_name().to_owned())
                .collect(),
        });
    }
    candidates.pop().ok_or_else(|| Error::RootNotFound {
        name: name.to_owned(),
        searched: schema_files.to_vec(),
    })
}
