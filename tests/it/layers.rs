//! The layering written in ARCHITECTURE.md holds in the code: every `crate::` path in a module
//! of `src/` names a module on a lower layer. The table is read from ARCHITECTURE.md itself, so
//! the document and the check cannot drift apart, and a module missing from it fails here.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use crate::purity::{code_lines, rust_files};

/// Module name to layer, from the `## Layers` table of ARCHITECTURE.md.
fn layers(architecture: &str) -> BTreeMap<String, u32> {
    let section = architecture
        .split("\n## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let section = section.split("\n## ").next().unwrap();
    let mut layers = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, layer, modules, ..] = cells.as_slice() else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        for module in modules.split(',') {
            let module = module.trim().trim_matches('`');
            assert!(
                layers.insert(module.to_owned(), layer).is_none(),
                "{module} is on two layers"
            );
        }
    }
    layers
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `crate::` path in `code` up to its first group or end, one per item of a
/// `crate::{a::x, b::{y, z}}` group ("a::x", "b::"): enough to tell the module and, for the
/// purity check, the file inside it.
pub(crate) fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let path_char = |c: char| is_ident(c) || c == ':';
    for (start, _) in code.match_indices("crate::") {
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue; // `mycrate::` is another crate
        }
        let rest = code[start + "crate::".len()..].trim_start();
        let Some(group) = rest.strip_prefix('{') else {
            let path: String = rest.chars().take_while(|&c| path_char(c)).collect();
            if !path.is_empty() {
                found.insert(path);
            }
            continue;
        };
        let mut depth = 1;
        let mut item_start = true;
        let mut skip_to = 0;
        for (index, c) in group.char_indices() {
            if index < skip_to {
                continue;
            }
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => item_start = true,
                c if item_start && depth == 1 && is_ident(c) => {
                    let path: String = group[index..]
                        .chars()
                        .take_while(|&c| path_char(c))
                        .collect();
                    skip_to = index + path.len();
                    found.insert(path);
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    found
}

/// The modules `code` uses: the first name of each of its `crate::` paths.
fn crate_modules(code: &str) -> BTreeSet<String> {
    crate_paths(code)
        .iter()
        .filter_map(|path| path.split("::").next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The module a file of `src/` belongs to: its folder, or its own name.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    // The crate root and the binary stand above every layer.
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

#[test]
fn every_module_uses_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let layers = layers(&architecture);
    assert!(
        layers.len() >= 10 && layers.get("node") > layers.get("state"),
        "the layers table is not what it should be: {layers:?}"
    );
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        seen.insert(module.clone());
        let Some(&layer) = layers.get(&module) else {
            problems.push(format!(
                "{}: module `{module}` has no layer in ARCHITECTURE.md",
                file.display()
            ));
            continue;
        };
        let code = code_lines(&std::fs::read_to_string(file).unwrap()).join("\n");
        for used in crate_modules(&code) {
            if used == module {
                continue;
            }
            match layers.get(&used) {
                Some(&other) if other < layer => {}
                Some(&other) => problems.push(format!(
                    "{}: `{module}` (layer {layer}) uses `{used}` (layer {other})",
                    file.display()
                )),
                None => problems.push(format!(
                    "{}: uses `crate::{used}`, which has no layer in ARCHITECTURE.md",
                    file.display()
                )),
            }
        }
    }
    for module in layers.keys() {
        if !seen.contains(module) {
            problems.push(format!(
                "ARCHITECTURE.md gives `{module}` a layer, but src/ has no such module"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scanner_reads_paths_and_groups() {
    let code = "use crate::{\n    alerts::{self, x},\n    bot::config::{A, B},\n    state,\n};\nlet a = crate::net::f(); // mycrate::no\nuse othercrate::no;";
    let found: Vec<String> = crate_modules(code).into_iter().collect();
    assert_eq!(found, ["alerts", "bot", "net", "state"]);
    let paths: Vec<String> = crate_paths(code).into_iter().collect();
    assert_eq!(paths, ["alerts::", "bot::config::", "net::f", "state"]);
    let table = "x\n## Layers\n| layer | modules |\n|---|---|\n| 2 | `a`, `b` | y |\n| 1 | `c` | z |\n## Next\n| 9 | `d` |";
    let layers = layers(table);
    assert_eq!(layers.len(), 3);
    assert_eq!(layers["b"], 2);
    assert_eq!(layers["c"], 1);
}
