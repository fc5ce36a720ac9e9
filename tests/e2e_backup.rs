//! End to end: `stackshot backup` in the sidecar of the test stack, on the real
//! engine, with real restic, PostgreSQL and MariaDB; proven by restoring with
//! plain restic and comparing files and query results.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn stack(project: &str) -> Stack {
    let s = Stack::up(project, &root().join("tests/stack/docker-compose.yml"));
    s.wait_for_databases();
    s
}

fn tags(snap: &Value) -> Vec<String> {
    snap["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn atomic_backup_restores_byte_for_byte() {
    let _serial = serial();
    let stack = stack("stackshot-e2e-backup");
    let (blob_sha, photo_sha) = seed_app_files(&stack);
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 0, "backup failed: {report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");

    // Exactly one snapshot, holding both trees, tagged and hosted as designed.
    let snaps = stack.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let snap = &snaps[0];
    let mut paths: Vec<&str> = snap["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/databases", "/volumes"]);
    let t = tags(snap);
    for want in ["stackshot", "project=stackshot-e2e-backup", "mode=atomic"] {
        assert!(t.contains(&want.to_string()), "{t:?}");
    }
    assert_eq!(snap["hostname"], "stackshot-e2e-backup");
    let id = snap["id"].as_str().unwrap();
    let reported = report["snapshots"][0]["id"].as_str().unwrap();
    assert!(
        id.starts_with(reported),
        "report names {reported}, repository has {id}"
    );

    // The engine saw the app stop and start again (sidekick first, app last);
    // never the bystander or the databases.
    let down = assert_window_events(&stack, &events);
    assert!(down > 0.0, "{down}");
    for svc in ["app", "sidekick", "bystander", "postgres", "mariadb"] {
        assert_eq!(stack.state(svc), "running", "{svc}");
    }
    let window = &report["window"];
    assert_eq!(window["stopped"].as_array().unwrap().len(), 2, "{window}");
    assert_eq!(window["started"].as_array().unwrap().len(), 2, "{window}");
    assert!(window["seconds"].as_f64().unwrap() > 0.0);

    // Restore with plain restic: files identical byte for byte.
    let restored = stack.restore("latest");
    let r = restored.path();
    assert_eq!(sha256_file(&r.join("volumes/app/data/blob.bin")), blob_sha);
    assert_eq!(
        std::fs::read_to_string(r.join("volumes/app/data/tree/a/b/c.txt")).unwrap(),
        "nested\n"
    );
    assert_eq!(
        sha256_file(&r.join("volumes/app/uploads/photo.bin")),
        photo_sha
    );
    // The app was stopped for the snapshot: its log is whole lines and a prefix of today's.
    let log = std::fs::read_to_string(r.join("volumes/app/data/log.txt")).unwrap();
    assert!(
        log.ends_with('\n'),
        "log cut mid-line: the app was not stopped"
    );
    let live = stack.exec("app", &[], &["cat", "/data/log.txt"]);
    assert!(live.status.success(), "{}", text(&live));
    let live = String::from_utf8_lossy(&live.stdout).to_string();
    assert!(
        live.starts_with(&log),
        "the snapshot's log is not a prefix of today's"
    );
    // And it ends where the app stopped: the next line is the first the app
    // wrote after its restart (its counter starts again at 1). A snapshot
    // taken after the restart would hold that line already.
    let next = live[log.len()..].lines().next().unwrap_or_default();
    assert!(
        next.starts_with("1 "),
        "the line after the snapshot's log is {next:?}, not the restarted app's first"
    );
    // Left out: the bystander, the database data directory, the excluded cache.
    assert!(!r.join("volumes/bystander").exists());
    assert!(!r.join("volumes/postgres/var").exists());
    assert!(!r.join("volumes/app/data-cache").exists());

    // Dumps: checksums pass with plain sha256sum, and each loads into a fresh server.
    let sums = run(std::process::Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(r.join("databases")));
    assert_eq!(sums.lines().count(), 2, "{sums}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(r.join("databases/manifest.json")).unwrap()).unwrap();
    let dumps = manifest["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 2, "{manifest}");
    assert!(
        dumps
            .iter()
            .all(|d| !d["server_version"].as_str().unwrap().is_empty()),
        "{manifest}"
    );
    // The row estimates the restore drill compares with: PostgreSQL's seeded
    // 1000 customers, and MariaDB's tables.
    assert!(
        manifest["tables"]["postgres"]["appdb.public.customers"]
            .as_i64()
            .is_some_and(|n| n >= 1000),
        "{manifest}"
    );
    assert!(
        manifest["tables"]["mariadb"]
            .as_object()
            .is_some_and(|t| !t.is_empty()),
        "{manifest}"
    );
    assert_pg_dump_restores(
        &stack,
        &r.join("databases/postgres/postgres-all.sql"),
        "stackshot-e2e-fresh-pg",
    );
    assert_maria_dump_restores(
        &stack,
        &r.join("databases/mariadb/shop.sql"),
        "stackshot-e2e-fresh-maria",
    );

    // Nothing left behind: no dump files in the sidecar, no worker, no journal.
    // (Read through the sidecar's volumes: its image may have no `ls`.)
    let ls = stack.beside("backup", &["ls", "-A", "/databases"]);
    assert!(ls.status.success(), "{ls:?}");
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).trim(),
        "",
        "dump files left in /databases"
    );
    assert_eq!(workers(&stack.project), Vec::<String>::new());
    assert!(
        stack
            .beside(
                "backup",
                &["test", "!", "-e", "/cache/stackshot/window-journal.json"]
            )
            .status
            .success(),
        "the window's journal is left"
    );

    // A second run adds a snapshot that shares the unchanged data.
    let (code, report2, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report2}\n{stderr}");
    assert_eq!(stack.snapshots().len(), 2);
    assert!(
        report2["snapshots"][0]["files_unmodified"]
            .as_u64()
            .unwrap()
            >= 3,
        "{report2}"
    );
}

#[test]
fn separate_snapshots_when_not_atomic() {
    let _serial = serial();
    let stack = stack("stackshot-e2e-split");
    let (blob_sha, _) = seed_app_files(&stack);
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[("ATOMIC_BACKUP", "false")]);
    let events = watch.finish();
    assert_eq!(code, 0, "{report}\n{stderr}");
    // The same window as in atomic mode: sidekick first, app last, the rest untouched.
    assert_window_events(&stack, &events);
    assert_eq!(
        report["window"]["stopped"].as_array().unwrap().len(),
        2,
        "{report}"
    );

    let snaps = stack.snapshots();
    assert_eq!(
        snaps.len(),
        3,
        "one for the volumes, one per database: {snaps:?}"
    );
    let by_tag = |tag: &str| -> &Value {
        snaps
            .iter()
            .find(|s| tags(s).contains(&tag.to_string()))
            .unwrap_or_else(|| panic!("no snapshot tagged {tag}"))
    };
    let vols = by_tag("mode=volumes");
    assert_eq!(vols["paths"], serde_json::json!(["/volumes"]));
    let restored = stack.restore(vols["id"].as_str().unwrap());
    assert_eq!(
        sha256_file(&restored.path().join("volumes/app/data/blob.bin")),
        blob_sha
    );
    assert!(!restored.path().join("databases").exists());

    let dumps = report["dumps"].as_array().unwrap();
    for (service, file) in [
        ("postgres", "postgres/postgres-all.sql"),
        ("mariadb", "mariadb/shop.sql"),
    ] {
        let snap = by_tag(&format!("service={service}"));
        assert!(tags(snap).contains(&"mode=database".to_string()));
        let restored = stack.restore(snap["id"].as_str().unwrap());
        let path = restored.path().join("databases").join(file);
        let reported = dumps
            .iter()
            .find(|d| d["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in report"));
        assert_eq!(
            sha256_file(&path),
            reported["sha256"].as_str().unwrap(),
            "{file}"
        );
        if service == "postgres" {
            assert_pg_dump_restores(&stack, &path, "stackshot-e2e-split-pg");
        } else {
            assert_maria_dump_restores(&stack, Path::new(&path), "stackshot-e2e-split-maria");
        }
    }
    assert_eq!(stack.state("app"), "running");
}

/// `stackshot.databases=appdb` on the stack's password-protected PostgreSQL
/// (its `pg_hba` asks for the password on TCP): `pg_dump` of that database
/// alone, in the full window and in the short one (pinned with `--snapshot`).
/// The password reaches `pg_dump` (the dump exists and loads) but no command
/// the engine ran, no engine event, no log line and no report carries it.
#[test]
fn per_database_postgres_dump_with_a_password() {
    const SECRET: &str = "pg-secret-password";
    let _serial = serial();
    let stack = Stack::up_with(
        "stackshot-e2e-pgdb",
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/pgdatabases.override.yml"),
        ],
        &[],
    );
    stack.wait_for_databases();
    // The second database named by the label: a quote and a space in its name.
    stack
        .psql("CREATE DATABASE \"o'brien shop\"")
        .expect("create database");
    let made = stack.exec(
        "postgres",
        &[],
        &[
            "psql",
            "-U",
            "app",
            "-d",
            "o'brien shop",
            "-c",
            "CREATE TABLE notes (t text); INSERT INTO notes VALUES ('kept across the quote')",
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pg = stack.container("postgres");
    for window in ["full", "short"] {
        let watch = stack.watch();
        let (code, report, stderr) = stack.backup(&[("STOP_WINDOW", window)]);
        let events = watch.finish();
        assert_eq!(code, 0, "{window}: {report}\n{stderr}");
        assert_eq!(report["result"], "success", "{window}: {report}");
        assert_window_events(&stack, &events);

        // The per-database tool ran, for appdb, and the all-databases one did not.
        let execs = events.execs(&pg);
        assert!(
            execs
                .iter()
                .any(|c| c.starts_with("/usr/bin/pg_dump ") && c.contains("appdb")),
            "{window}: no pg_dump of appdb among {execs:?}"
        );
        assert!(
            !execs
                .iter()
                .any(|c| c.starts_with("/usr/bin/pg_dumpall") && !c.contains("--globals-only")),
            "{window}: a whole-cluster dump ran: {execs:?}"
        );
        // Nowhere a secret may leak to: argv (the engine's exec events), any
        // event attribute, the log, the report.
        // (This stack's events: the drills beside it set the same password.)
        for e in events.of_project(&stack.project) {
            assert!(
                !e.raw.contains(SECRET),
                "{window}: an event carries the password: {}",
                e.raw
            );
        }
        assert!(
            !stderr.contains(SECRET),
            "{window}: the log carries the password"
        );
        assert!(
            !report.to_string().contains(SECRET),
            "{window}: the report carries the password"
        );

        // The dump is the database's alone, and loads into a fresh server
        // with the same rows.
        let dumps = report["dumps"].as_array().unwrap();
        assert!(
            dumps.iter().any(|d| d["file"] == "postgres/appdb.sql"),
            "{window}: {report}"
        );
        let id = report["snapshots"][0]["id"].as_str().unwrap();
        let restored = stack.restore(id);
        let r = restored.path().join("databases/postgres");
        assert!(!r.join("postgres-all.sql").exists(), "{window}");
        let dump = r.join("appdb.sql");
        assert_eq!(
            sha256_file(&dump),
            dumps
                .iter()
                .find(|d| d["file"] == "postgres/appdb.sql")
                .unwrap()["sha256"]
                .as_str()
                .unwrap(),
            "{window}"
        );
        assert_pg_database_dump_restores(&stack, &dump, "stackshot-e2e-pgdb-fresh");
        // The quoted name is dumped under its own name, whole.
        assert!(
            dumps
                .iter()
                .any(|d| d["file"] == "postgres/o'brien shop.sql"),
            "{window}: {report}"
        );
        let quoted = std::fs::read_to_string(r.join("o'brien shop.sql")).unwrap();
        assert!(
            quoted.contains("kept across the quote"),
            "{window}: {quoted}"
        );
    }
}
