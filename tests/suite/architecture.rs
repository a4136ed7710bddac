//! The direction of dependencies (DESIGN §3), checked by reading the source: `domain` uses
//! nothing of the crate but itself; `routing` only `domain`; `application` (the writer, the
//! deadline escalation) not the gRPC edge; `tracking` not the application; `store` neither the
//! application, `tracking`, `access`, `auth`, `grpc`, `metrics` nor `config`; `audit` (the
//! trail's chains) neither the edge, `access` nor the store; `config` no command's module; and
//! `domain`, `routing`, `tracking` and `audit` neither tonic nor sqlx. The modules form no
//! circle. Every path is read, not only `use` lines, since a type can be named in full where
//! it is used. A failure names the file and line of each arrow against
//! the direction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which modules of the crate, and which outside crates, each room must not name.
fn forbidden(room: &str) -> Option<(Vec<&'static str>, &'static [&'static str])> {
    const EVERY_MODULE: &[&str] = &[
        "access",
        "anchor",
        "application",
        "audit",
        "auth",
        "clock",
        "config",
        "crypto",
        "demo",
        "grpc",
        "metrics",
        "pb",
        "routing",
        "secret_file",
        "server",
        "store",
        "telemetry",
        "tracking",
    ];
    const WIRE_AND_SQL: &[&str] = &["tonic", "sqlx"];
    match room {
        "domain" => Some((EVERY_MODULE.to_vec(), WIRE_AND_SQL)),
        "routing" => Some((
            EVERY_MODULE
                .iter()
                .copied()
                .filter(|m| *m != "routing")
                .collect(),
            WIRE_AND_SQL,
        )),
        "tracking" => Some((
            vec!["application", "grpc", "config", "server", "demo"],
            WIRE_AND_SQL,
        )),
        "application" => Some((vec!["grpc", "server", "demo"], &[])),
        "store" => Some((
            vec![
                "application",
                "tracking",
                "access",
                "auth",
                "grpc",
                "config",
                "metrics",
                "server",
                "demo",
                "anchor",
            ],
            &[],
        )),
        // The anchor signs what the store reads and checks it back; it serves no one.
        "anchor" => Some((
            vec![
                "access",
                "application",
                "grpc",
                "config",
                "server",
                "demo",
                "routing",
                "tracking",
            ],
            WIRE_AND_SQL,
        )),
        // The trail's chaining and queries: below the edge and the store.
        "audit" => Some((
            vec![
                "access",
                "application",
                "auth",
                "grpc",
                "config",
                "server",
                "demo",
                "store",
                "tracking",
            ],
            WIRE_AND_SQL,
        )),
        "config" => Some((vec!["demo", "server", "grpc", "store"], &[])),
        _ => None,
    }
}

/// The room a source file belongs to: its top-level module.
fn room(relative: &Path) -> String {
    let mut parts = relative.components().skip(1); // "src"
    let first = parts
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules (`crate::x`, `$crate::x`) and outside crates (`x::`) a line names, with
/// comments left out.
fn named(line: &str) -> (Vec<String>, Vec<String>) {
    let code = line.split("//").next().unwrap_or_default();
    let mut modules = Vec::new();
    let mut crates = Vec::new();
    let word = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        modules.push(word(&code[at + "crate::".len()..]));
    }
    for name in ["tonic", "sqlx"] {
        let pattern = format!("{name}::");
        for (at, _) in code.match_indices(&pattern) {
            let before = code[..at].chars().last();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                crates.push(name.to_owned());
            }
        }
    }
    (modules, crates)
}

/// Every arrow that runs against the direction: (file, what it names) → first line.
fn upward_arrows(root: &Path) -> BTreeMap<(String, String), usize> {
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut arrows = BTreeMap::new();
    for path in files {
        let relative = path.strip_prefix(root).expect("under the root");
        let room = room(relative);
        let Some((modules, crates)) = forbidden(&room) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read a source file");
        let file = relative.to_string_lossy().into_owned();
        for (number, line) in text.lines().enumerate() {
            let (named_modules, named_crates) = named(line);
            let against = named_modules
                .iter()
                .filter(|m| modules.contains(&m.as_str()))
                .chain(named_crates.iter().filter(|c| crates.contains(&c.as_str())));
            for target in against {
                arrows
                    .entry((file.clone(), target.clone()))
                    .or_insert(number + 1);
            }
        }
    }
    arrows
}

#[test]
fn imports_point_down_as_the_design_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let arrows: Vec<String> = upward_arrows(root)
        .into_iter()
        .map(|((file, target), line)| format!("{file}:{line} names `{target}`"))
        .collect();
    assert!(
        arrows.is_empty(),
        "imports against the direction of DESIGN §3 (move the shared type down instead):\n{}",
        arrows.join("\n")
    );
}

/// The rooms each room names (`crate::x` paths), over the whole of `src/`.
fn room_graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let room = room(path.strip_prefix(root).expect("under the root"));
        let text = std::fs::read_to_string(&path).expect("read a source file");
        for line in text.lines() {
            for target in named(line).0 {
                if target != room {
                    graph.entry(room.clone()).or_default().insert(target);
                }
            }
        }
    }
    graph
}

/// A circle of rooms, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        room: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|r| r == room) {
            let mut found = path[at..].to_vec();
            found.push(room.to_owned());
            return Some(found);
        }
        if done.contains(room) {
            return None;
        }
        path.push(room.to_owned());
        for next in graph.get(room).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(room.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|room| visit(room, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_form_no_circle() {
    let graph = room_graph(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(
        circle(&graph),
        None,
        "the modules import each other in a circle"
    );
    // The check itself: a circle added to the graph is found.
    let mut with_circle = graph.clone();
    with_circle
        .entry("domain".into())
        .or_default()
        .insert("store".into());
    assert!(circle(&with_circle).is_some());
}

#[test]
fn the_check_finds_an_upward_import() {
    // A copy of the tree with one arrow added must fail the check, naming file and line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("src/domain/probe.rs");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "//! A probe.\n\n// crate::store in a comment is not an import.\nuse crate::store::Store;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("src/routing.rs"),
        "fn f(_: tonic::Status) {}\n",
    )
    .unwrap();
    let arrows = upward_arrows(dir.path());
    assert_eq!(
        arrows.into_iter().collect::<Vec<_>>(),
        vec![
            (("src/domain/probe.rs".into(), "store".into()), 4),
            (("src/routing.rs".into(), "tonic".into()), 1),
        ]
    );
}

#[test]
fn statuses_are_built_only_in_grpc_status_rs() {
    // One place maps errors to codes and words (DESIGN §3, STYLE "Boundaries").
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for path in files {
        let relative = path.strip_prefix(root).expect("under the root");
        if relative == Path::new("src/grpc/status.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let built = code.match_indices("Status::").any(|(at, _)| {
                code[at + "Status::".len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase())
            });
            if built {
                found.push(format!("{}:{}", relative.display(), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a Status built outside src/grpc/status.rs: {found:?}"
    );
}

/// The lines of `src/` (outside `allowed`) whose code matches `found`, as `file:line`.
fn lines_matching(allowed: &[&str], found: impl Fn(&str) -> bool) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut lines = Vec::new();
    for path in files {
        let relative = path.strip_prefix(root).expect("under the root");
        if allowed.iter().any(|a| relative == Path::new(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        for (number, line) in text.lines().enumerate() {
            if found(line.split("//").next().unwrap_or_default()) {
                lines.push(format!("{}:{}", relative.display(), number + 1));
            }
        }
    }
    lines
}

#[test]
fn roles_are_weighed_only_by_access() {
    // Who may do what is decided in one place (DESIGN §3): a token role is matched on only
    // there, where roles are defined (auth) and where the demo issues its tokens.
    let found = lines_matching(&["src/access.rs", "src/auth.rs", "src/demo.rs"], |code| {
        code.match_indices("Role::").any(|(at, _)| {
            !code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    });
    assert!(
        found.is_empty(),
        "roles weighed outside access.rs: {found:?}"
    );
}

#[test]
fn the_edge_writes_audit_entries_in_one_place() {
    // Every request's entry, refusals included, goes through `Guard::audited`; the store's
    // own writes (intakes, changes) carry the entries their plans made.
    let found = lines_matching(&["src/grpc/mod.rs"], |code| {
        code.contains("audit.append(") || code.contains(".audit_entry(")
    });
    assert!(
        found.is_empty(),
        "audit entries written outside Guard::audited: {found:?}"
    );
}
