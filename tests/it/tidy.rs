//! Tidy checks: the architecture invariants of ARCHITECTURE.md that the compiler does
//! not enforce, read from the source tree.
//!
//! - Only `src/store` names sled; only `src/google` names google-calendar3 and
//!   yup-oauth2.
//! - `src/api` imports neither the sync engine nor the Google adapter (nor the
//!   emulator): it reaches them through traits handed to it at start-up.
//! - The emulator and the Google client share no code, in either direction.
//! - Every source file starts with a `//!` module doc.
//! - ARCHITECTURE.md's code map names only paths that exist.
//! - Nothing in the repository points at documents outside it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every file under `dir` (relative to the repository) whose name ends with `ext`.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, ext, out);
            } else if path.to_string_lossy().ends_with(ext) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(ROOT).join(dir), ext, &mut out);
    out.sort();
    out
}

/// A path relative to the repository, with `/` separators.
fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The code of a Rust file, line by line: line comments (doc comments too) and the
/// contents of string literals removed (a log target `"yup_oauth2"` is no import).
/// Approximate (raw strings and block comments are read as code), which is enough
/// for the paths the checks look for.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let (mut code, mut in_string, mut escaped) = (String::new(), false, false);
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if in_string {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            in_string = false;
                            code.push('"');
                        }
                        _ => {}
                    }
                } else if c == '"' {
                    in_string = true;
                    code.push('"');
                } else if c == '/' && chars.peek() == Some(&'/') {
                    break;
                } else {
                    code.push(c);
                }
            }
            (i + 1, code)
        })
        .collect()
}

/// Whether `code` names `path` (`sled::`, `crate::google`) not as part of a longer
/// identifier (`crate::google` is not `crate::googlex`; `sled::` is not `unsled::`).
fn names_path(code: &str, path: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(path).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + path.len()..].chars().next();
        let joined_before = before.is_some_and(ident);
        let joined_after = path.ends_with(ident) && after.is_some_and(ident);
        !(joined_before || joined_after)
    })
}

/// Lines (file:line: code) of `src/` files outside `allowed` that name any of `paths`.
fn uses_outside(allowed: &[&str], paths: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files("src", ".rs") {
        let rel = relative(&file);
        if allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for (n, code) in code_lines(&text) {
            if paths.iter().any(|p| names_path(&code, p)) {
                found.push(format!("{rel}:{n}: {}", code.trim()));
            }
        }
    }
    found
}

/// The modules a grouped import names (`use crate::{store, sync::X}` -> `crate::store`,
/// `crate::sync`), for each `crate::{` in `code`.
fn grouped_imports(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::{") {
        // The top-level items of the braces: split at commas outside nested braces.
        let (mut depth, mut item) = (1, String::new());
        let mut items = Vec::new();
        for c in code[at + "crate::{".len()..].chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                _ if depth == 1 => item.push(c),
                _ => {}
            }
        }
        items.push(item);
        for item in items {
            let module = item.trim().split("::").next().unwrap_or("").trim();
            if !module.is_empty() {
                out.push(format!("crate::{module}"));
            }
        }
    }
    out
}

/// Lines of files under `dir` that name any of `paths` (also inside a grouped import).
fn uses_inside(dir: &str, paths: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files(dir, ".rs") {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let lines = code_lines(&text);
        for (n, code) in &lines {
            if paths.iter().any(|p| names_path(code, p)) {
                found.push(format!("{}:{n}: {}", relative(&file), code.trim()));
            }
        }
        let code: Vec<&str> = lines.iter().map(|(_, c)| c.as_str()).collect();
        for module in grouped_imports(&code.join(" ")) {
            if paths.contains(&module.as_str()) {
                found.push(format!("{}: a grouped import of {module}", relative(&file)));
            }
        }
    }
    found
}

#[test]
fn grouped_imports_are_seen() {
    assert_eq!(
        grouped_imports("use crate::{store::Store, sync ,\n google::{A, B}};"),
        vec!["crate::store", "crate::sync", "crate::google"]
    );
    assert!(names_path("use crate::sync::Engine;", "crate::sync"));
    assert!(!names_path("use crate::syncing;", "crate::sync"));
    assert!(names_path("let db: sled::Db", "sled::"));
    assert!(!names_path("unsled::x", "sled::"));
    let lines = code_lines("let t = \"sled::Db // no\"; sled::open(p) // sled::x");
    assert_eq!(lines, vec![(1, "let t = \"\"; sled::open(p) ".to_string())]);
}

#[test]
fn only_the_store_names_sled() {
    let found = uses_outside(&["src/store/"], &["sled::", "use sled"]);
    assert!(
        found.is_empty(),
        "sled outside src/store:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_google_adapter_names_google_calendar3_and_yup_oauth2() {
    let found = uses_outside(
        &["src/google/"],
        &[
            "google_calendar3::",
            "yup_oauth2::",
            "use google_calendar3",
            "use yup_oauth2",
        ],
    );
    assert!(
        found.is_empty(),
        "google-calendar3 / yup-oauth2 outside src/google:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_api_imports_neither_the_sync_engine_nor_google() {
    let found = uses_inside(
        "src/api",
        &[
            "crate::sync",
            "crate::google",
            "crate::emulator",
            "crate::credentials",
            "bookcal::sync",
            "bookcal::google",
        ],
    );
    assert!(
        found.is_empty(),
        "src/api reaches past its boundary:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_web_pages_import_neither_the_sync_engine_nor_google() {
    let found = uses_inside(
        "src/web",
        &[
            "crate::sync",
            "crate::google",
            "crate::emulator",
            "crate::credentials",
            "sled",
            "sqlx",
        ],
    );
    assert!(
        found.is_empty(),
        "src/web reaches past its boundary:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_emulator_and_the_google_client_share_no_code() {
    let mut found = uses_inside("src/emulator", &["crate::google"]);
    found.extend(uses_inside("src/google", &["crate::emulator"]));
    assert!(found.is_empty(), "shared code:\n{}", found.join("\n"));
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let missing: Vec<String> = files("src", ".rs")
        .into_iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("read a source file");
            !text.trim_start().starts_with("//!")
        })
        .map(|f| relative(&f))
        .collect();
    assert!(missing.is_empty(), "no `//!` doc: {missing:?}");
}

/// The backticked paths of ARCHITECTURE.md's code map that do not exist. A path is
/// relative to the repository when it starts with a top-level directory; a bare name
/// (`plan.rs`, `helpers/`) is relative to one of the directories named before it in
/// the same entry (an entry starts at a heading or a top-level bullet).
fn missing_code_map_paths(architecture: &str) -> Vec<String> {
    const TOP: [&str; 9] = [
        "src/",
        "tests/",
        "examples/",
        "fixtures/",
        "deploy/",
        "benches/",
        "docs/",
        ".ci/",
        "fuzz/",
    ];
    const EXTENSIONS: [&str; 7] = [".rs", ".md", ".toml", ".sh", ".json", ".py", ".ics"];
    let looks_like_path = |t: &str| {
        !t.is_empty()
            && !t.starts_with('/')
            && (!t.starts_with('.') || TOP.iter().any(|d| t.starts_with(d)))
            && !t.contains([' ', '{', '*', '<', '='])
            && !t.contains("::")
            && (t.ends_with('/') || EXTENSIONS.iter().any(|e| t.ends_with(e)))
    };
    let exists = |rel: &str| Path::new(ROOT).join(rel).exists();
    let Some(start) = architecture.find("## Code map") else {
        return vec!["ARCHITECTURE.md has no \"## Code map\" section".into()];
    };
    let map = &architecture[start + "## Code map".len()..];
    let map = &map[..map.find("\n## ").unwrap_or(map.len())];
    let mut dirs: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for line in map.lines() {
        if line.starts_with('#') || line.starts_with("- ") {
            dirs.clear();
        }
        for t in line.split('`').skip(1).step_by(2) {
            if !looks_like_path(t) {
                continue;
            }
            let rel = if TOP.iter().any(|d| t.starts_with(d)) {
                Some(t.to_string())
            } else {
                dirs.iter()
                    .rev()
                    .map(|d| format!("{d}{t}"))
                    .find(|rel| exists(rel))
            };
            let rel = match rel {
                Some(rel) if exists(&rel) => rel,
                other => {
                    let rel = other.unwrap_or_else(|| {
                        format!("{}{t}", dirs.last().map_or("", String::as_str))
                    });
                    missing.push(rel.clone());
                    rel
                }
            };
            if rel.ends_with('/') {
                dirs.push(rel);
            }
        }
    }
    missing
}

#[test]
fn the_code_map_names_only_paths_that_exist() {
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let missing = missing_code_map_paths(&text);
    assert!(
        missing.is_empty(),
        "named in the code map, not in the tree: {missing:?}"
    );
}

#[test]
fn the_code_map_check_finds_a_missing_path() {
    let doc = "## Code map\n\n### `src/sync/`\n\n`plan.rs` and `nowhere.rs`, `/metrics`.\n\
               - `tests/`: `it/` with `gone/`; `lost.rs`\n\n## Next\n`src/not-checked.rs`\n";
    assert_eq!(
        missing_code_map_paths(doc),
        vec![
            "src/sync/nowhere.rs",
            "tests/it/gone/",
            "tests/it/gone/lost.rs"
        ]
    );
}

/// The Markdown documents a line names (`NAME.md`), as written.
fn named_documents(line: &str) -> Vec<&str> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || "_-./".contains(c)))
        .filter(|w| w.len() > 3 && w.ends_with(".md"))
        .collect()
}

/// Why a line points outside the repository, if it does: an absolute path into the
/// machine's work area, a relative path climbing above the repository, or a Markdown
/// document that no file of the repository is named after.
/// `dir` is the directory of the file the line is in (relative `../` paths resolve from
/// there).
fn outside_pointer(line: &str, dir: &Path, documents: &BTreeSet<String>) -> Option<String> {
    if line.contains("/work/") {
        return Some("an absolute path outside the repository".into());
    }
    let climbs = line
        .split(|c: char| c.is_whitespace() || "`'\"()[]<>,;:".contains(c))
        .filter(|w| w.starts_with("../"));
    for w in climbs {
        let mut at = dir.to_path_buf();
        for part in w.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if part == ".." {
                if !at.pop() {
                    break;
                }
            } else {
                at.push(part);
            }
        }
        if !at.starts_with(ROOT) {
            return Some(format!("`{w}` climbs out of the repository"));
        }
    }
    named_documents(line)
        .into_iter()
        .find(|d| {
            let name = d.rsplit('/').next().unwrap_or(d);
            !documents.contains(name)
        })
        .map(|d| format!("`{d}` is not a document of the repository"))
}

#[test]
fn the_outside_pointer_check_knows_a_repository_document_from_another() {
    let documents: BTreeSet<String> = ["README.md", "ARCHITECTURE.md"]
        .into_iter()
        .map(String::from)
        .collect();
    let cases = [
        ("see ARCHITECTURE.md, the code map", false),
        ("README.md and docs/README.md", false),
        ("as the contract in notes/contract.md says", true),
        ("read ../../../../elsewhere/x.rs", true),
        ("the other form is ../k8s", false),
        ("`POST .../accept/`", false),
        ("/work/tmp/file", true),
        ("a plain comment about md5", false),
        ("as OVERVIEW.md says", true),
    ];
    for (line, outside) in cases {
        assert_eq!(
            outside_pointer(line, &Path::new(ROOT).join("deploy/x"), &documents).is_some(),
            outside,
            "{line}"
        );
    }
}

#[test]
fn nothing_points_at_documents_outside_the_repository() {
    // What the code relies on is said in the code or in the repository's own
    // documents; a reader cannot open anything else.
    let mut documents = BTreeSet::new();
    let top = std::fs::read_dir(ROOT)
        .expect("the repository")
        .flatten()
        .map(|e| e.path());
    let nested = [
        "docs", "deploy", "fuzz", "tests", "benches", "examples", "src",
    ]
    .into_iter()
    .flat_map(|d| files(d, ".md"));
    for p in top.chain(nested) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name.filter(|n| n.ends_with(".md")) {
            documents.insert(name);
        }
    }
    let mut paths = Vec::new();
    for (dir, ext) in [
        ("src", ".rs"),
        ("tests", ".rs"),
        ("tests", ".py"),
        ("tests", ".mjs"),
        ("examples", ".rs"),
        ("benches", ".sh"),
        ("deploy", ""),
    ] {
        paths.extend(files(dir, ext));
    }
    for top in [
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
        "Cargo.toml",
    ] {
        paths.push(Path::new(ROOT).join(top));
    }
    let this = Path::new(ROOT).join("tests/it/tidy.rs");
    let mut found = Vec::new();
    for p in paths.iter().filter(|p| **p != this) {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let dir = p.parent().unwrap_or(Path::new(ROOT));
            if let Some(why) = outside_pointer(line, dir, &documents) {
                found.push(format!("{}:{}: {why}: {}", relative(p), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "pointers outside the repository:\n{}",
        found.join("\n")
    );
}
