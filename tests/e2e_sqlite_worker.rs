//! End to end: SQLite in an image with no shell and no `sqlite3` (a `FROM
//! scratch` image holding only the app, tests/bench/sqlite_notes.rs, and its
//! libraries), on the real engine. The app keeps inserting rows (WAL mode)
//! through the whole backup; the copy is taken by a worker with the app's
//! volume attached, through stackshot's SQLite library. The copy passes
//! `sha256sum -c` and `PRAGMA integrity_check` (Debian's sqlite3, in another
//! container), holds the seeded rows and a gap-free run of the app's writes
//! (one moment). `restore database` refuses while the file has tables,
//! then, with `--replace`, puts it back with the app stopped; and the drill
//! counts its tables, all without a shell in the app's image.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

const IMAGE: &str = "stackshot-test/noshell-notes:local";

/// Builds the test app and imports the shell-less image around it.
fn build_image() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(Command::new(cargo)
        .args([
            "build",
            "--example",
            "sqlite_notes",
            "--message-format=json",
        ])
        .current_dir(root()));
    let exe = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "sqlite_notes")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the example's executable");
    run(Command::new("bash")
        .arg(root().join("tests/bench/noshell-image.sh"))
        .arg(&exe)
        .arg(IMAGE));
}

/// `sqlite3 -cmd '.timeout 5000' FILE SQL` in a container of Debian's
/// sqlite3 with `volume` at /data (waiting for the app's locks); stdout.
fn sql(volume: &str, file: &str, q: &str) -> String {
    run(Command::new("docker").args([
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/data"),
        "stackshot-test/redis:local",
        "sqlite3",
        "-cmd",
        ".timeout 5000",
        file,
        q,
    ]))
    .trim()
    .to_string()
}

/// (seeded rows, their checksum, writes, max write id, integrity_check), in
/// one container.
fn content(volume: &str, file: &str) -> (String, String, u64, u64, String) {
    let out = sql(
        volume,
        file,
        "SELECT count(*) FROM seed WHERE id <= 1000; \
         SELECT sum(length(body) * id) FROM seed WHERE id <= 1000; \
         SELECT count(*) FROM writes; \
         SELECT coalesce(max(id), 0) FROM writes; \
         PRAGMA integrity_check;",
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 5, "{out}");
    (
        l[0].into(),
        l[1].into(),
        l[2].parse().unwrap(),
        l[3].parse().unwrap(),
        l[4].into(),
    )
}

#[test]
fn sqlite_without_a_shell_is_copied_by_a_worker_and_restored() {
    let _serial = serial();
    bench();
    build_image();
    let project = "stackshot-e2e-sqlite-worker";
    let stack = Stack::up_overridden(project, "sqlite-noshell.override.yml");
    let notes = stack.container("notes");
    let volume = format!("{project}_notes-data");
    const DB: &str = "/data/notes.db";
    // The app's image really has no shell.
    let sh = output(&mut docker(&["exec", &notes, "sh", "-c", "true"]));
    assert!(!sh.status.success(), "the app's image has a shell");
    wait_for("the app's writes", 60, || {
        (sql(&volume, DB, "SELECT count(*) FROM writes")
            .parse::<u64>()
            .unwrap_or(0)
            >= 20)
            .then_some(())
    });
    let source = content(&volume, DB);
    assert_eq!(source.0, "1000");

    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "backup failed: {report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    let dump = dump_of(&report, "notes/notes.db");
    assert_eq!(dump["engine"], "sqlite");
    assert_eq!(dump["integrity_check"], "ok");
    assert!(
        stderr.contains("copied by a worker with the mount attached"),
        "the run does not say the copy came from a worker: {stderr}"
    );
    let after: u64 = sql(&volume, DB, "SELECT max(id) FROM writes")
        .parse()
        .unwrap();

    // Plain restic and sha256sum, then the copy opened by Debian's sqlite3.
    let restored = stack.restore("latest");
    let dbs = restored.path().join("databases");
    let sums = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dbs));
    assert!(sums.contains("notes/notes.db: OK"), "{sums}");
    let vol = restored.path().join("volumes/notes/data");
    for f in ["notes.db", "notes.db-wal", "notes.db-shm"] {
        assert!(!vol.join(f).exists(), "{f} is in the file pass");
    }
    let copy = content(&dbs.join("notes").display().to_string(), DB);
    assert_eq!(copy.4, "ok", "integrity_check of the copy");
    assert_eq!(
        (&copy.0, &copy.1),
        (&source.0, &source.1),
        "seeded rows differ"
    );
    // One moment of the app's: every write up to the last, none missing.
    assert_eq!(copy.2, copy.3, "a gap in the app's writes: {copy:?}");
    assert!(
        copy.3 >= source.3,
        "older than the moment before the backup"
    );
    assert!(copy.3 < after, "the app wrote nothing during the backup");

    // Back into the app: a row written since must be gone.
    sql(
        &volume,
        DB,
        "INSERT INTO seed VALUES (5000, 'after the backup')",
    );
    let refused = stack.restore_database("notes", false);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("it already has data (2 tables in /data/notes.db)"),
        "{err}"
    );
    let said = stack.replace_database("notes");
    assert!(
        said.contains("Restored notes/notes.db") && said.contains("integrity_check ok"),
        "{said}"
    );
    assert_eq!(
        sql(&volume, DB, "SELECT count(*) FROM seed WHERE id = 5000"),
        "0"
    );
    let back = content(&volume, DB);
    assert_eq!(back.4, "ok");
    assert_eq!((&back.0, &back.1), (&copy.0, &copy.1));
    // The app goes on from the restored rows, without a gap.
    wait_for("the app to write again", 30, || {
        (sql(&volume, DB, "SELECT max(id) FROM writes")
            .parse::<u64>()
            .unwrap_or(0)
            > copy.3)
            .then_some(())
    });
    assert_eq!(
        sql(
            &volume,
            DB,
            &format!("SELECT count(*) FROM writes WHERE id <= {}", copy.3)
        ),
        copy.3.to_string()
    );

    // The drill places the copy in a throwaway of the app and counts its tables.
    let line = stack.drill_line("notes");
    assert!(line.contains("2 tables"), "{line}");
    // Every worker is gone.
    assert!(workers().is_empty(), "workers left: {:?}", workers());
}
