//! Schema sources in memory, and source positions for descriptors.
//!
//! The library never touches the file system: callers pass file contents, which the
//! compiler reads through [`MemoryResolver`]. Positions come from the descriptors' source
//! code info, which exists for files compiled from source and, through protoc, only for the
//! files being generated; elsewhere a [`Location`] names the file alone.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, FieldDescriptor};
use protox::file::{File, FileResolver};

use crate::error::Location;

/// Resolves imports from file contents held in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryResolver {
    files: HashMap<String, String>,
}

impl MemoryResolver {
    /// Adds a file; returns false if the name was already present.
    pub(crate) fn insert(&mut self, name: String, contents: String) -> bool {
        if self.files.contains_key(&name) {
            return false;
        }
        self.files.insert(name, contents);
        true
    }
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(contents) => File::from_source(name, contents),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Checks that `name` can serve as an import name: relative, `/`-separated, no `.` or `..`
/// segments, ending in `.proto`.
pub(crate) fn check_file_name(name: &str) -> Result<(), &'static str> {
    if !name.ends_with(".proto") {
        return Err("must end with `.proto`");
    }
    if name.starts_with('/') {
        return Err("must be relative to the schema root, as used in `import`");
    }
    if name.contains('\\') {
        return Err("must use `/` as separator");
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("must not contain empty, `.` or `..` segments");
    }
    Ok(())
}

/// Source positions of every declaration in a pool, by file and descriptor path.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    by_file: HashMap<String, HashMap<Vec<i32>, (u32, u32)>>,
}

impl Positions {
    pub(crate) fn new(pool: &DescriptorPool) -> Self {
        let mut by_file = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            let spans: HashMap<Vec<i32>, (u32, u32)> = info
                .location
                .iter()
                .filter_map(|location| {
                    // A span is [start_line, start_column, (end_line,) end_column], 0-based.
                    let line = u32::try_from(*location.span.first()?).ok()?;
                    let column = u32::try_from(*location.span.get(1)?).ok()?;
                    Some((location.path.clone(), (line + 1, column + 1)))
                })
                .collect();
            by_file.insert(file.name().to_owned(), spans);
        }
        Positions { by_file }
    }

    /// Where `field` is declared: file:line:col when known, the file alone otherwise.
    pub(crate) fn field(&self, field: &FieldDescriptor) -> Location {
        let file = field.parent_file();
        let position = self
            .by_file
            .get(file.name())
            .and_then(|spans| spans.get(field.path()));
        Location {
            file: file.name().to_owned(),
            line: position.map(|(line, _)| *line),
            column: position.map(|(_, column)| *column),
        }
    }
}
