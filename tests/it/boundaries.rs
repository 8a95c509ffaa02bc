//! The architecture's boundaries, as the README's code map states them, checked on the
//! source: a `use` that crosses one fails here, naming the file and the line.
//!
//! - The front (`src/`) names only the engine crate's root (`Engine`, its start and error
//!   types, write outcomes) and `reward_actors::api`.
//! - actix stays inside the engine's handle and its partner actors.
//! - The storage crates (redb, sled, tokio-postgres) stay inside `actors/src/store/`.
//! - The engine speaks no HTTP server crate; its only HTTP client is the webhooks'.
//! - The engine's folders are layers (domain, store, commit, actor never name one above them).
//! - Resource files of the front never import one another.
//! - The benchmark and test tools are the `reward-bench` crate (`benches/tools/`): the
//!   front's library declares none of them and never names that crate, and the tools name
//!   only `reward_actors::api` of the engine and the front's request signature.
//! - Nothing outside `actors/src/store/` sees a key layout: no file there names the `layout`
//!   module or builds a key from a `Table` byte; callers name records (`store::records`).

use std::path::{Path, PathBuf};

/// What the front may name at the engine crate's root.
const ENGINE_ROOT_ITEMS: [&str; 9] =
    ["Engine", "EngineConfig", "EngineParts", "EngineStartError", "EngineError", "InvalidSetting", "Recorded", "WriteOutcome", "api"];

struct Boundary {
    /// A crate path prefix (matched at a word start), e.g. `sled::`.
    names: &'static [&'static str],
    /// Where it may appear (path prefixes from the workspace root).
    allowed_in: &'static [&'static str],
    why: &'static str,
}

const BOUNDARIES: [Boundary; 4] = [
    Boundary {
        names: &["actix::", "actix_rt::", "use actix"],
        allowed_in: &["actors/src/engine/mod.rs", "actors/src/actor/"],
        why: "actix stays inside the engine",
    },
    Boundary {
        names: &["redb::", "sled::", "tokio_postgres::", "use redb", "use sled", "use tokio_postgres"],
        // The cluster chaos run operates the database itself (a schema per run, a node's
        // connections cut): a test tool's fault injection, not a second storage layer.
        allowed_in: &["actors/src/store/", "benches/tools/src/cluster_chaos.rs"],
        why: "storage crates stay inside actors/src/store",
    },
    Boundary {
        names: &["axum::", "hyper::", "use axum", "use hyper"],
        allowed_in: &["src/", "tests/", "benches/"],
        why: "the engine speaks no HTTP server",
    },
    Boundary {
        names: &["reqwest::", "use reqwest"],
        allowed_in: &["src/", "tests/", "benches/", "actors/src/webhooks/"],
        why: "only the webhooks send HTTP",
    },
];

/// The tools that moved out of the front's library into `reward-bench` (issue 12).
const TOOL_MODULES: [&str; 6] = ["client", "crash_loop", "hello", "loadgen", "report", "sink"];

/// What `reward-bench` may name of the front's library: the request signature (and the
/// credentials that feed it) and the log filter its ceiling server shares with the server.
const FRONT_ITEMS_FOR_TOOLS: [&str; 3] = ["reward_engine::sign_cli::", "reward_engine::signing::", "reward_engine::config::log_filter"];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reads the source tree") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// (file relative to the workspace, line number, code line) of every line that is not a comment.
fn code_lines(roots: &[&str]) -> Vec<(String, usize, String)> {
    let root = workspace();
    let mut files = Vec::new();
    for dir in roots {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("inside the workspace").to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).expect("reads a source file");
        for (index, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") {
                lines.push((relative.clone(), index + 1, line.to_owned()));
            }
        }
    }
    lines
}

/// Where `name` occurs in `line` at a word start.
fn occurs(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| !line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
}

#[test]
fn the_front_names_only_the_engine_and_its_api() {
    let mut crossings = Vec::new();
    let mut named = 0;
    for (file, number, line) in code_lines(&["src"]) {
        for (at, _) in line.match_indices("reward_actors::") {
            named += 1;
            let rest = &line[at + "reward_actors::".len()..];
            let allowed = rest.starts_with('{')
                && rest[1..rest.find('}').unwrap_or(rest.len())].split(',').all(|item| ENGINE_ROOT_ITEMS.contains(&item.trim()))
                || ENGINE_ROOT_ITEMS
                    .iter()
                    .any(|item| rest.starts_with(item) && !rest[item.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'));
            if !allowed {
                crossings.push(format!("{file}:{number}: {}", line.trim()));
            }
        }
    }
    assert!(named > 50, "the scan found the front's uses of the engine ({named})");
    assert!(crossings.is_empty(), "the front reaches past reward_actors::api:\n{}", crossings.join("\n"));
}

#[test]
fn crates_stay_inside_their_rooms() {
    let lines = code_lines(&["src", "actors/src", "tests", "benches"]);
    let mut crossings = Vec::new();
    for boundary in &BOUNDARIES {
        let mut seen = 0;
        for (file, number, line) in &lines {
            if file.ends_with("tests/it/boundaries.rs") || !boundary.names.iter().any(|name| occurs(line, name)) {
                continue;
            }
            seen += 1;
            if !boundary.allowed_in.iter().any(|allowed| file.starts_with(allowed)) {
                crossings.push(format!("{file}:{number}: {} ({})", line.trim(), boundary.why));
            }
        }
        assert!(seen > 0, "the scan found the allowed uses of {:?}", boundary.names);
    }
    assert!(crossings.is_empty(), "a crate outside its room:\n{}", crossings.join("\n"));
}

/// The engine's folders are layers: a folder never names one above it (README, "Code map").
struct Layer {
    folder: &'static str,
    never: &'static [&'static str],
    why: &'static str,
    /// Files of the folder that may name some modules above it: (file, modules, why).
    excepted: &'static [(&'static str, &'static [&'static str], &'static str)],
}

/// The stored record types that live above the store, next to the code that writes them.
const STORED_RECORD_MODULES: &[&str] =
    &["crate::services::portal", "crate::services::announcements", "crate::services::donations", "crate::services::pool_requests", "crate::webhooks"];

const LAYERS: [Layer; 4] = [
    Layer {
        folder: "actors/src/domain/",
        never: &["crate::actor", "crate::commit", "crate::services", "crate::api::facades", "crate::engine::Engine", "crate::engine::metrics"],
        why: "the domain is plain data and pure rules: no actor, commit, service or handle",
        excepted: &[],
    },
    Layer {
        folder: "actors/src/store/",
        never: &["crate::actor", "crate::commit", "crate::services", "crate::api", "crate::webhooks", "crate::engine::Engine", "crate::cluster"],
        why: "the store knows records and bytes, not who writes them",
        // The store's reading side binds records to bytes, and every key layout stays in
        // store/ (see nothing_outside_the_store_sees_a_key_layout): records.rs and audit.rs
        // name the record types that services and webhooks define (not their code).
        excepted: &[
            ("actors/src/store/records.rs", STORED_RECORD_MODULES, "typed keys of the records stored above"),
            ("actors/src/store/audit.rs", STORED_RECORD_MODULES, "the audit decodes every stored record"),
        ],
    },
    Layer {
        folder: "actors/src/commit/",
        never: &["crate::actor", "crate::services", "crate::api", "crate::webhooks", "crate::cluster"],
        why: "group commit writes what it is handed",
        excepted: &[],
    },
    Layer {
        folder: "actors/src/actor/",
        never: &["crate::services", "crate::api::facades"],
        why: "a partner actor is called by the handle and the services, never the other way",
        excepted: &[],
    },
];

#[test]
fn the_engines_layers_point_down() {
    let lines = code_lines(&["actors/src"]);
    let mut crossings = Vec::new();
    for layer in &LAYERS {
        let files = lines.iter().filter(|(file, ..)| file.starts_with(layer.folder)).count();
        assert!(files > 0, "the scan found {}", layer.folder);
        for (file, number, line) in lines.iter().filter(|(file, ..)| file.starts_with(layer.folder)) {
            let excused = layer.excepted.iter().any(|(excepted, names, _)| file == excepted && names.iter().any(|name| occurs(line, name)));
            if !excused && layer.never.iter().any(|name| occurs(line, name)) {
                crossings.push(format!("{file}:{number}: {} ({})", line.trim(), layer.why));
            }
        }
    }
    assert!(crossings.is_empty(), "a layer names one above it:\n{}", crossings.join("\n"));
}

/// Resource files share helpers through `http` (parse, fields, cors, …), never through one
/// another: `use super::x` in `src/http/resources/` may name its folder's own module, not a
/// sibling file.
#[test]
fn resource_files_do_not_import_one_another() {
    let root = workspace();
    let mut uses = 0;
    let mut crossings = Vec::new();
    for (file, number, line) in code_lines(&["src/http/resources"]) {
        let Some(rest) = line.trim_start().strip_prefix("use super::") else { continue };
        uses += 1;
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let folder = root.join(&file).parent().expect("a file's folder").to_path_buf();
        if !name.is_empty() && (folder.join(format!("{name}.rs")).exists() || folder.join(&name).is_dir()) {
            crossings.push(format!("{file}:{number}: {}", line.trim()));
        }
    }
    assert!(uses > 0, "the scan found the resources' `use super::` lines");
    assert!(crossings.is_empty(), "a resource file imports a sibling resource:\n{}", crossings.join("\n"));
}

#[test]
fn the_front_carries_no_tools() {
    let root = workspace();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("reads src/lib.rs");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod ").or_else(|| line.trim().strip_prefix("mod ")))
        .map(|module| module.trim_end_matches(';'))
        .collect();
    assert!(declared.contains(&"http") && declared.contains(&"signing"), "the scan found the front's modules: {declared:?}");
    for tool in TOOL_MODULES {
        assert!(!declared.contains(&tool), "src/lib.rs declares `{tool}`, which belongs to reward-bench (benches/tools/src/)");
        assert!(!root.join(format!("src/{tool}.rs")).exists(), "src/{tool}.rs is back; the tools live in benches/tools/src/");
        assert!(root.join(format!("benches/tools/src/{tool}.rs")).exists(), "benches/tools/src/{tool}.rs is missing");
    }
    let naming: Vec<String> = code_lines(&["src"])
        .into_iter()
        .filter(|(_, _, line)| occurs(line, "reward_bench"))
        .map(|(file, number, line)| format!("{file}:{number}: {}", line.trim()))
        .collect();
    assert!(naming.is_empty(), "the front names the tools' crate:\n{}", naming.join("\n"));
}

#[test]
fn the_tools_reach_only_the_engines_api_and_the_signature() {
    let mut crossings = Vec::new();
    let (mut engine_named, mut front_named) = (0, 0);
    for (file, number, line) in code_lines(&["benches/tools/src"]) {
        for (at, _) in line.match_indices("reward_actors::") {
            engine_named += 1;
            if !line[at + "reward_actors::".len()..].starts_with("api::") {
                crossings.push(format!("{file}:{number}: {} (the engine's internals)", line.trim()));
            }
        }
        for (at, _) in line.match_indices("reward_engine::") {
            front_named += 1;
            if !FRONT_ITEMS_FOR_TOOLS.iter().any(|item| line[at..].starts_with(item)) {
                crossings.push(format!("{file}:{number}: {} (the front beyond its signature)", line.trim()));
            }
        }
    }
    assert!(engine_named > 0 && front_named > 0, "the scan found the tools' uses of the engine ({engine_named}) and the front ({front_named})");
    assert!(crossings.is_empty(), "reward-bench reaches past its boundary:\n{}", crossings.join("\n"));
    let manifest = std::fs::read_to_string(workspace().join("benches/tools/Cargo.toml")).expect("reads benches/tools/Cargo.toml");
    assert!(!manifest.contains("internals"), "reward-bench must not enable the engine's `internals` feature");
}

/// The store's folder: the only code that sees how records become key bytes.
const STORE_DIR: &str = "actors/src/store/";

/// Where `word` occurs in `line` as a whole identifier (not inside a longer one).
fn names_word(line: &str, word: &str) -> bool {
    let is_identifier = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(at, _)| !line[..at].ends_with(is_identifier) && !line[at + word.len()..].starts_with(is_identifier))
}

/// Whether a code line sees the key layout: the `layout` module, or a key built from a table byte.
fn sees_key_layout(line: &str) -> bool {
    names_word(line, "layout") || occurs(line, "Table::")
}

/// The engine's code lines outside the store that see the key layout, as `file:line: code`.
fn key_layout_outside_the_store(lines: &[(String, usize, String)]) -> Vec<String> {
    lines
        .iter()
        .filter(|(file, _, line)| file.starts_with("actors/src/") && !file.starts_with(STORE_DIR) && sees_key_layout(line))
        .map(|(file, number, line)| format!("{file}:{number}: {}", line.trim()))
        .collect()
}

#[test]
fn nothing_outside_the_store_sees_a_key_layout() {
    let lines = code_lines(&["actors/src"]);
    let inside = lines.iter().filter(|(file, _, line)| file.starts_with(STORE_DIR) && sees_key_layout(line)).count();
    assert!(inside > 20, "the scan found the store's own uses of the key layout ({inside})");
    let crossings = key_layout_outside_the_store(&lines);
    assert!(
        crossings.is_empty(),
        "code outside actors/src/store/ sees the key layout (name a record through store::records):\n{}",
        crossings.join("\n")
    );
}

/// The check has teeth: each way of reaching the layout, planted in a file outside the store,
/// is caught; the same line inside the store, or a longer word, is not.
#[test]
fn the_key_layout_check_catches_a_planted_line() {
    let planted = |file: &str, line: &str| vec![(file.to_owned(), 7, line.to_owned())];
    for line in [
        "use crate::store::layout;",
        "use crate::store::{WriteOp, layout};",
        "    let key = layout::user(&partner_env, external_id);",
        "    let key = crate::store::layout::pool(&partner_env, pool_id);",
        "    let key = Table::Meta.key(&[b\"admin_token_sha256\"]);",
        "    let key = crate::store::Table::Users.key(&[]);",
    ] {
        let caught = key_layout_outside_the_store(&planted("actors/src/services/portal.rs", line));
        assert_eq!(caught, vec![format!("actors/src/services/portal.rs:7: {}", line.trim())], "a planted line is caught: {line}");
        assert!(key_layout_outside_the_store(&planted("actors/src/store/reads.rs", line)).is_empty(), "the store may: {line}");
    }
    for line in ["let relayout = layouts;", "let page_layout = 1;", "struct TableRow;"] {
        assert!(key_layout_outside_the_store(&planted("actors/src/services/portal.rs", line)).is_empty(), "not the layout: {line}");
    }
}
