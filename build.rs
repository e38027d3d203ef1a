//! Prepares the dashboard's files (`assets/`) for `src/http/dashboard.rs`, which compiles them
//! into the binary: each file gzipped once here, at the best level, so a node never compresses
//! a request's answer itself; a version named after the hash of every file, so the browser may
//! keep the files for good (a new build has a new version, hence new URLs); and `index.html`
//! with that version written into its links. It writes `dashboard_assets.rs` into `OUT_DIR`.
//!
//! No Node.js, no bundler: the files are served as they are written.

use std::{
    env,
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use flate2::{Compression, write::GzEncoder};
use sha2::{Digest, Sha256};

/// The placeholder in `index.html` replaced by the versioned path of the other files.
const ASSETS_PLACEHOLDER: &str = "{{assets}}";

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let assets = root.join("assets");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    // A directory: cargo reruns this script when any file under it changes.
    println!("cargo::rerun-if-changed=assets");
    println!("cargo::rerun-if-changed=build.rs");

    let mut files = Vec::new();
    collect(&assets, &assets, &mut files);
    files.sort();

    // The version: a hash over every file's path and bytes.
    let mut hasher = Sha256::new();
    for (path, bytes) in &files {
        hasher.update(path.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let version = hex(&hasher.finalize()[..6]);
    let prefix = format!("/assets/{version}");

    let mut code = String::new();
    writeln!(
        code,
        "/// The version in every asset's URL: a hash of all of them."
    )
    .unwrap();
    writeln!(code, "pub const VERSION: &str = {version:?};").unwrap();
    writeln!(code, "/// Every file the dashboard serves.").unwrap();
    writeln!(code, "pub static ASSETS: &[Asset] = &[").unwrap();
    let mut index_found = false;
    for (path, bytes) in &files {
        let mut bytes = bytes.clone();
        if path == "index.html" {
            index_found = true;
            let text = String::from_utf8(bytes).expect("assets/index.html is UTF-8");
            assert!(
                text.contains(ASSETS_PLACEHOLDER),
                "assets/index.html does not use {ASSETS_PLACEHOLDER}"
            );
            bytes = text.replace(ASSETS_PLACEHOLDER, &prefix).into_bytes();
        }
        let content_type = content_type(path);
        let name = path.replace(['/', '.'], "_");
        let plain = out.join(format!("dashboard-{name}"));
        fs::write(&plain, &bytes).expect("OUT_DIR is writable");
        let gzip = gzip(&bytes);
        // A file gzip does not make smaller (an icon, say) is sent as it is.
        let gzip_include = if gzip.len() < bytes.len() {
            let gzip_path = out.join(format!("dashboard-{name}.gz"));
            fs::write(&gzip_path, &gzip).expect("OUT_DIR is writable");
            format!(
                "Some(include_bytes!({:?}))",
                gzip_path.display().to_string()
            )
        } else {
            "None".to_owned()
        };
        let etag = hex(&Sha256::digest(&bytes)[..8]);
        writeln!(
            code,
            "    Asset {{ path: {path:?}, content_type: {content_type:?}, etag: {etag:?}, \
             body: include_bytes!({:?}), gzip: {gzip_include} }},",
            plain.display().to_string()
        )
        .unwrap();
    }
    assert!(index_found, "assets/index.html is missing");
    writeln!(code, "];").unwrap();
    fs::write(out.join("dashboard_assets.rs"), code).expect("OUT_DIR is writable");
}

/// Every file under `dir`, by its path relative to `root` with `/` separators.
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .expect("under the root")
            .components()
            .map(|part| part.as_os_str().to_str().expect("UTF-8 file names"))
            .collect::<Vec<_>>()
            .join("/");
        let bytes = fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        files.push((relative, bytes));
    }
}

/// The media type of an asset by its name; a file of another kind is a mistake to catch here.
fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("txt") | None => "text/plain; charset=utf-8",
        Some(other) => panic!("assets/{path}: no media type known for .{other} files"),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
