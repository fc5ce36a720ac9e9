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

use common::notes::{self, Notes};
use common::*;

const IMAGE: &str = "stackshot-test/noshell-notes:local";

/// Builds the test app and imports the shell-less image around it. The
/// example is the one `cargo test` builds beside the tests (with the
/// dev-dependencies' features), which the test build has done already: a
/// `cargo build --example` here compiled a second feature set of ring,
/// rustls and their dependants, and the next `cargo nextest run` compiled
/// them again. (`cargo test --example` would build it as a test harness.)
fn build_image() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    // Without the variables cargo sets for this test's own crate: build
    // scripts (ring's) rerun when one of them changes, and cargo would
    // compile them and their dependants again, here and in the next build.
    for (k, _) in std::env::vars() {
        let per_crate = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CFG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ];
        if per_crate.iter().any(|p| k.starts_with(p))
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "CARGO_TARGET_TMPDIR"
        {
            c.env_remove(k);
        }
    }
    let out = run(c
        .args(["test", "--no-run", "--message-format=json"])
        .current_dir(root()));
    let exe = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "sqlite_notes" && m["profile"]["test"] == false)
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
    run(&mut sqlite3(volume, file, q)).trim().to_string()
}

fn sqlite3(volume: &str, file: &str, q: &str) -> Command {
    let mut c = Command::new("docker");
    c.args([
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
    ]);
    c
}

/// The number `q` returns once it succeeds: `None` while the app has not
/// yet created its table (a query then fails, and is waited on).
fn number_once_there(volume: &str, file: &str, q: &str) -> Option<u64> {
    let out = output(&mut sqlite3(volume, file, q));
    out.status.success().then_some(())?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// What the database at `file` on `volume` holds (one container).
fn content(volume: &str, file: &str) -> Notes {
    Notes::parse(&sql(volume, file, notes::QUERY))
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
        (number_once_there(&volume, DB, "SELECT count(*) FROM writes")? >= 20).then_some(())
    });
    let source = content(&volume, DB);
    assert_eq!(source.seeded, "1000");
    // A file beside the database, which the file pass must keep.
    let mount = format!("{volume}:/data");
    run(&mut docker(&[
        "run",
        "--rm",
        "-v",
        &mount,
        "stackshot-test/base:local",
        "sh",
        "-c",
        "mkdir -p /data/files && echo kept-beside-the-database > /data/files/readme.txt",
    ]));

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
    assert_eq!(
        std::fs::read_to_string(vol.join("files/readme.txt"))
            .ok()
            .as_deref(),
        Some("kept-beside-the-database\n"),
        "the file beside the database is not in the file pass: the mount was left out"
    );
    for f in ["notes.db", "notes.db-wal", "notes.db-shm"] {
        assert!(!vol.join(f).exists(), "{f} is in the file pass");
    }
    let copy = content(&dbs.join("notes").display().to_string(), DB);
    copy.assert_one_moment(&source, after);

    // Back into the app: a row written since must be gone.
    sql(
        &volume,
        DB,
        "INSERT INTO seed VALUES (5000, 'after the backup')",
    );
    notes::assert_refused_while_it_has_tables(&stack, "notes", DB);
    let said = stack.replace_database("notes");
    assert!(
        said.contains("Restored notes/notes.db") && said.contains("integrity_check ok"),
        "{said}"
    );
    assert_eq!(
        sql(&volume, DB, "SELECT count(*) FROM seed WHERE id = 5000"),
        "0"
    );
    content(&volume, DB).assert_restored_from(&copy);
    // The app goes on from the restored rows, without a gap.
    wait_for("the app to write again", 30, || {
        (number_once_there(&volume, DB, "SELECT max(id) FROM writes")? > copy.last).then_some(())
    });
    assert_eq!(
        sql(
            &volume,
            DB,
            &format!("SELECT count(*) FROM writes WHERE id <= {}", copy.last)
        ),
        copy.last.to_string()
    );

    // The drill places the copy in a throwaway of the app and counts its tables.
    let line = stack.drill_line("notes");
    assert!(line.contains("2 tables"), "{line}");
    // Every worker is gone.
    assert!(
        workers(&stack.project).is_empty(),
        "workers left: {:?}",
        workers(&stack.project)
    );
}
