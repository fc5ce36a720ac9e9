//! End to end: SQLite (`stackshot.sqlite=/data/notes.db`), on the real engine
//! with Debian's sqlite3. An app keeps inserting rows (WAL mode) through the
//! whole backup; the file pass of its volume leaves the database and its
//! `-wal`/`-shm` out and keeps the rest. The copy passes `sha256sum -c` and
//! `PRAGMA integrity_check`, holds the seeded rows and a gap-free run of the
//! app's writes (one moment), and the manifest records its integrity check.
//! Then `restore database` puts it back into the app's container (refused
//! while it has tables, unless `--replace`): a row written after the backup
//! is gone, the file checks ok, and `stackshot drill` counts the same rows.

mod common;

use std::process::Command;

use common::notes::{self, Notes};
use common::*;

const DB: &str = "/data/notes.db";

/// `sqlite3 FILE SQL` in container `id` (waiting for the app's locks); stdout.
fn sql(id: &str, file: &str, q: &str) -> String {
    run(&mut sqlite3(id, file, q)).trim().to_string()
}

fn sqlite3(id: &str, file: &str, q: &str) -> Command {
    let mut c = Command::new("docker");
    c.args(["exec", id, "sqlite3", "-cmd", ".timeout 5000", file, q]);
    c
}

/// The rows of `q` once it succeeds: `None` while the app has not yet
/// created its table (a query then fails, and is waited on).
fn rows_once_there(id: &str, file: &str, q: &str) -> Option<u64> {
    let out = output(&mut sqlite3(id, file, q));
    out.status.success().then_some(())?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// What the database at `file` in container `id` holds.
fn content(id: &str, file: &str) -> Notes {
    Notes::parse(&sql(id, file, notes::QUERY))
}

#[test]
fn sqlite_is_copied_online_and_restored() {
    let _serial = serial();
    let stack = Stack::up_overridden("stackshot-e2e-sqlite", "sqlite.override.yml");
    let notes = stack.container("notes");
    wait_for("the app's writes", 60, || {
        (rows_once_there(&notes, DB, "SELECT count(*) FROM writes")? >= 20).then_some(())
    });
    sql(
        &notes,
        DB,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) \
         INSERT INTO seed SELECT x, 'body-' || x FROM c",
    );
    let source = content(&notes, DB);
    run(Command::new("docker").args(["exec", &notes, "sh", "-c", "echo kept > /data/keep.txt"]));

    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "backup failed: {report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    let dump = dump_of(&report, "notes/notes.db");
    assert_eq!(dump["engine"], "sqlite");
    assert_eq!(dump["integrity_check"], "ok");
    let after: u64 = sql(&notes, DB, "SELECT max(id) FROM writes")
        .parse()
        .unwrap();

    // Plain restic and sha256sum, then the copy opened in a fresh container.
    let restored = stack.restore("latest");
    let dbs = restored.path().join("databases");
    let sums = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dbs));
    assert!(sums.contains("notes/notes.db: OK"), "{sums}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dbs.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["dumps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["file"] == "notes/notes.db" && d["integrity_check"] == "ok"),
        "{manifest}"
    );
    // The file pass keeps the rest of the volume, and leaves the live
    // database and its -wal/-shm to the copy.
    let vol = restored.path().join("volumes/notes/data");
    assert_eq!(
        std::fs::read_to_string(vol.join("keep.txt")).unwrap(),
        "kept\n"
    );
    for f in ["notes.db", "notes.db-wal", "notes.db-shm"] {
        assert!(!vol.join(f).exists(), "{f} is in the file pass");
    }
    let fresh = "stackshot-e2e-sqlite-fresh";
    let _ = output(&mut docker(&["rm", "-f", fresh]));
    run(&mut docker(&[
        "run",
        "-d",
        "--name",
        fresh,
        "-v",
        &format!("{}:/r", dbs.join("notes").display()),
        "stackshot-test/redis:local",
        "sleep",
        "infinity",
    ]));
    let _fresh = FreshDb {
        name: fresh.to_string(),
    };
    let copy = content(fresh, "/r/notes.db");
    copy.assert_one_moment(&source, after);

    // Back into the app: a row written since must be gone.
    sql(
        &notes,
        DB,
        "INSERT INTO seed VALUES (5000, 'after the backup')",
    );
    notes::assert_refused_while_it_has_tables(&stack, "notes", DB);
    // Placed with the app stopped: it is stopped and started again.
    let said = stack.replace_database("notes");
    assert!(said.contains("Restored notes/notes.db"), "{said}");
    assert_eq!(
        sql(&notes, DB, "SELECT count(*) FROM seed WHERE id = 5000"),
        "0"
    );
    content(&notes, DB).assert_restored_from(&copy);
    // The app goes on from the restored rows, without a gap.
    assert_eq!(
        sql(
            &notes,
            DB,
            &format!("SELECT count(*) FROM writes WHERE id <= {}", copy.last)
        ),
        copy.last.to_string()
    );

    // The drill places the copy in a throwaway of the app and counts its rows.
    let line = stack.drill_line("notes");
    assert!(line.contains("2 tables"), "{line}");
}
