//! The embedded files. Every file under `assets/` is listed in [`ASSETS`] (a test checks that
//! none is missing), so the binary carries the whole UI and nothing is read from disk.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its path under `assets/`, with `/` separators (`js/main.js`).
    pub path: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// A hash of its bytes (FNV-1a, 64 bits), computed at compile time.
    pub hash: u64,
}

impl Asset {
    /// Its strong `ETag` (quoted).
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }
}

/// FNV-1a over `bytes`: a cheap, stable content hash for `ETag`s (not a security measure).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut index = 0;
    while index < bytes.len() {
        hash ^= bytes[index] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        index += 1;
    }
    hash
}

/// The `Content-Type` of a file name, by its extension.
const fn content_type(path: &str) -> &'static str {
    let bytes = path.as_bytes();
    if ends_with(bytes, b".html") {
        "text/html; charset=utf-8"
    } else if ends_with(bytes, b".js") {
        "text/javascript; charset=utf-8"
    } else if ends_with(bytes, b".css") {
        "text/css; charset=utf-8"
    } else if ends_with(bytes, b".svg") {
        "image/svg+xml"
    } else {
        "text/plain; charset=utf-8"
    }
}

const fn ends_with(bytes: &[u8], suffix: &[u8]) -> bool {
    if bytes.len() < suffix.len() {
        return false;
    }
    let start = bytes.len() - suffix.len();
    let mut index = 0;
    while index < suffix.len() {
        if bytes[start + index] != suffix[index] {
            return false;
        }
        index += 1;
    }
    true
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        /// Every file of the UI.
        pub static ASSETS: &[Asset] = &[$({
            const BODY: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path));
            Asset { path: $path, body: BODY, content_type: content_type($path), hash: fnv1a(BODY) }
        }),*];
    };
}

assets![
    "index.html",
    "app.css",
    "favicon.svg",
    "js/main.js",
    "js/fallback.js",
    "js/api.js",
    "js/dom.js",
    "js/format.js",
    "js/router.js",
    "js/dialog.js",
    "js/pages/login.js",
    "js/pages/overview.js",
    "js/pages/services.js",
    "js/pages/service.js",
    "js/pages/logs.js",
    "js/pages/tenants.js",
    "js/pages/schema.js",
    "js/pages/tokens.js",
    "vendor/uplot/uPlot.iife.min.js",
    "vendor/uplot/uPlot.min.css",
    "vendor/uplot/LICENSE",
    "vendor/uplot/VERSION",
];

/// The asset at `path`, if there is one (only exact paths of the table: no `..`, no directory
/// listing).
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_under(root: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(root, &path, found);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_under_assets_is_embedded_and_nothing_else() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "list new files in the assets! table of assets.rs"
        );
    }

    #[test]
    fn content_types_and_hashes() {
        assert_eq!(content_type("a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "text/plain; charset=utf-8");
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        let index = find("index.html").unwrap();
        assert_eq!(index.etag().len(), 18);
        assert!(find("../Cargo.toml").is_none());
    }
}
