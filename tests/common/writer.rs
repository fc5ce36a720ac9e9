//! The writer's stack (tests/stack/writer.override.yml): a service that
//! writes row n to PostgreSQL, then to MariaDB, then n to its counter file,
//! over and over, so that a snapshot's counter and dumps tell whether they
//! are of one moment; and the readers of its rows in the dumps.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Stack, root};

/// The writer's stack, with `extra` (override files under tests/stack/: a
/// repository's, freeze mode's) among its files and `env` for compose.
pub fn stack_on(project: &str, extra: &[&str], env: &[(&str, &str)]) -> Stack {
    let mut files = vec![
        root().join("tests/stack/docker-compose.yml"),
        root().join("tests/stack/writer.override.yml"),
    ];
    files.extend(extra.iter().map(|r| root().join("tests/stack").join(r)));
    let files: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
    let s = Stack::up_with(project, &files, env);
    s.wait_for_databases();
    s.psql("CREATE TABLE IF NOT EXISTS writes (id int primary key)")
        .expect("pg writes table");
    s.mariadb("CREATE TABLE IF NOT EXISTS writes (id int primary key) ENGINE=InnoDB")
        .expect("mariadb writes table");
    s
}

/// The writer's counter, read live.
pub fn counter(stack: &Stack) -> u64 {
    let out = stack.exec("writer", &[], &["cat", "/data/counter"]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The ids of table `writes` in a pg_dump/pg_dumpall file (its COPY block).
pub fn pg_dump_ids(dump: &str) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    let mut inside = false;
    for line in dump.lines() {
        if line.starts_with("COPY public.writes ") {
            inside = true;
        } else if inside && line == "\\." {
            inside = false;
        } else if inside {
            ids.insert(line.trim().parse().expect("an id"));
        }
    }
    ids
}

/// The ids of table `writes` in a mariadb-dump file (its INSERT statements,
/// on one line or several).
pub fn maria_dump_ids(dump: &str) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    let mut rest = dump;
    while let Some(at) = rest.find("INSERT INTO `writes` VALUES") {
        let stmt = &rest[at + "INSERT INTO `writes` VALUES".len()..];
        let end = stmt.find(";\n").unwrap_or(stmt.len());
        for v in stmt[..end].split(',') {
            let v = v.trim().trim_matches(|c| c == '(' || c == ')');
            ids.insert(v.parse().unwrap_or_else(|_| panic!("an id: {v:?}")));
        }
        rest = &stmt[end..];
    }
    assert!(
        !ids.is_empty() || !dump.contains("`writes`"),
        "no rows of writes found in the MariaDB dump: {}",
        dump.lines()
            .filter(|l| l.contains("`writes`"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    ids
}

/// The writer's moment in a snapshot: its counter and the ids of table
/// `writes` in each dump.
pub struct Moment {
    /// The snapshot restored with plain restic (removed when dropped).
    pub restored: tempfile::TempDir,
    /// The writer's counter file.
    pub counter: u64,
    /// The rows of the PostgreSQL dump.
    pub pg: BTreeSet<u64>,
    /// The rows of the MariaDB dump.
    pub maria: BTreeSet<u64>,
}

/// Restores snapshot `id` with plain restic, checks its dumps against their
/// SHA256SUMS, and reads the writer's counter and the dumps' rows.
pub fn moment(stack: &Stack, id: &str) -> Moment {
    let restored = stack.restore(id);
    let r = restored.path();
    super::run(
        std::process::Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(r.join("databases")),
    );
    let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
    let counter = read("volumes/writer/data/counter").trim().parse().unwrap();
    let pg = pg_dump_ids(&read("databases/postgres/postgres-all.sql"));
    let maria = maria_dump_ids(&read("databases/mariadb/shop.sql"));
    Moment {
        restored,
        counter,
        pg,
        maria,
    }
}
