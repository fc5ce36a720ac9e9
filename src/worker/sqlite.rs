//! `stackshot worker sqlite …`: SQLite for images without `sqlite3`. The
//! worker runs with the database container's mount attached (read-write: a
//! reader of a write-ahead-logged database shares its `-shm` index and its
//! locks with the app), and uses the SQLite library built into stackshot.
//! The database is only ever opened read-only; a file that does not exist is
//! never created.
//!
//! Every command takes the file's path in the worker and the path the user
//! knows (in the database container), which is the one its messages name.
//!
//! - `probe <path> <shown>…`: one line per file (`ok`, `missing`, or
//!   `error: …`), then `version <SQLite version>`;
//! - `copy <path> <shown>`: the online backup API into a temporary file,
//!   `PRAGMA integrity_check` on the copy (anything but `ok` fails), then the
//!   copy's bytes on stdout;
//! - `query <path> <shown> <sql>`: the rows, columns separated by tabs, as
//!   `sqlite3 -readonly -separator '\t'` prints them;
//! - `stat <path> <shown>`: `uid gid mode` (octal) of the file, or of its
//!   directory when there is none, then the side files (`-wal`, `-shm`,
//!   `-journal`) that exist, as the paths shown.
//!
//! Errors go to stderr as one line; the exit code is 1 (bad use: 2).

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// How long the copy waits for a writer's lock before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens `path` read-only; never creates it.
fn open_read_only(path: &Path, shown: &str) -> Result<Connection> {
    if !path.is_file() {
        bail!("no such file: {shown}");
    }
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {shown}"))?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    Ok(c)
}

/// `PRAGMA integrity_check` of `c`: its lines (`["ok"]` when sound).
pub fn integrity_check(c: &Connection) -> Result<Vec<String>> {
    let mut s = c.prepare("PRAGMA integrity_check")?;
    let rows = s.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Copies `src` into a new file `dest` through the online backup API, in one
/// step: one read transaction, so the copy is one point in time (a writer in
/// WAL mode goes on; in rollback mode it waits for the copy). Then checks
/// the copy. Returns the copy's page count.
pub fn copy_checked(src: &Path, shown: &str, dest: &Path) -> Result<i32> {
    let from = open_read_only(src, shown)?;
    let mut to = Connection::open(dest)
        .with_context(|| format!("cannot create the copy {}", dest.display()))?;
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let pages = {
        let b = Backup::new(&from, &mut to)
            .with_context(|| format!("cannot start the backup of {shown}"))?;
        loop {
            match b
                .step(-1)
                .with_context(|| format!("the backup of {shown} failed"))?
            {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                StepResult::Busy | StepResult::Locked => bail!(
                    "{shown} stayed locked by a writer for {}s; the copy gave up",
                    BUSY_TIMEOUT.as_secs()
                ),
                _ => {}
            }
        }
        b.progress().pagecount
    };
    let check = integrity_check(&to)?;
    if check != ["ok"] {
        bail!(
            "PRAGMA integrity_check of the copy of {shown}: {}",
            check.join("; ")
        );
    }
    to.close().map_err(|(_, e)| e)?;
    Ok(pages)
}

/// The rows of `sql` on `path`, tab-separated, one line per row.
pub fn query(path: &Path, shown: &str, sql: &str) -> Result<Vec<String>> {
    rows(&open_read_only(path, shown)?, shown, sql)
}

/// The rows of `sql` on an empty in-memory database.
pub fn query_in_memory(sql: &str) -> Result<Vec<String>> {
    rows(&Connection::open_in_memory()?, ":memory:", sql)
}

fn rows(c: &Connection, shown: &str, sql: &str) -> Result<Vec<String>> {
    let mut s = c
        .prepare(sql)
        .with_context(|| format!("{shown}: cannot prepare the query"))?;
    let n = s.column_count();
    let mut rows = s.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let cols = (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => real(v),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(cols.join("\t"));
    }
    Ok(out)
}

/// A real as `sqlite3` prints it: `2.0`, not `2`. Pure.
fn real(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// One probe line for `path`: `ok`, `missing`, or `error: …`.
pub fn probe_line(path: &Path, shown: &str) -> String {
    if !path.exists() {
        return "missing".into();
    }
    let r = open_read_only(path, shown).and_then(|c| {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .with_context(|| format!("{shown} cannot be read as a SQLite database"))
    });
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("error: {}", format!("{e:#}").replace('\n', " ")),
    }
}

/// `uid gid mode` of the file (or of its directory when there is none), and
/// the side files that exist, named as shown.
pub fn stat(path: &Path, shown: &str) -> Result<Vec<String>> {
    let (meta, mode) = match std::fs::metadata(path) {
        Ok(m) => (m.clone(), m.mode() & 0o777),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .ok_or_else(|| anyhow!("{shown} has no directory"))?;
            let m = std::fs::metadata(dir)
                .with_context(|| format!("cannot read the directory of {shown}"))?;
            (m, 0o644)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {shown}")),
    };
    let mut out = vec![format!("{} {} {:o}", meta.uid(), meta.gid(), mode)];
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            out.push(format!("{shown}{suffix}"));
        }
    }
    Ok(out)
}

/// Writes the file at `path` to stdout.
fn cat(path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut f, &mut out)?;
    out.flush()?;
    Ok(())
}

/// A temporary path for the copy, removed when dropped.
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match args {
        [cmd, files @ ..] if cmd == "probe" && !files.is_empty() && files.len() % 2 == 0 => {
            for pair in files.chunks(2) {
                writeln!(out, "{}", probe_line(Path::new(&pair[0]), &pair[1]))?;
            }
            writeln!(out, "version {}", rusqlite::version())?;
        }
        [cmd, path, shown] if cmd == "copy" => {
            drop(out);
            let temp = Temp(std::env::temp_dir().join(format!(
                "stackshot-sqlite-{}.{}",
                std::process::id(),
                Path::new(shown)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("db")
            )));
            copy_checked(Path::new(path), shown, &temp.0)?;
            cat(&temp.0).context("cannot write the copy to stdout")?;
        }
        [cmd, path, shown, sql] if cmd == "query" => {
            for line in query(Path::new(path), shown, sql)? {
                writeln!(out, "{line}")?;
            }
        }
        [cmd, path, shown] if cmd == "stat" => {
            for line in stat(Path::new(path), shown)? {
                writeln!(out, "{line}")?;
            }
        }
        _ => bail!(
            "expected `sqlite probe PATH SHOWN…`, `sqlite copy PATH SHOWN`, `sqlite query PATH SHOWN SQL` or `sqlite stat PATH SHOWN`"
        ),
    }
    Ok(())
}

/// The `stackshot worker sqlite …` entry point.
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path, wal: bool) -> (PathBuf, Connection) {
        let p = dir.join("app.sqlite3");
        let c = Connection::open(&p).unwrap();
        if wal {
            let mode: String = c
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        c.execute_batch(
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, score REAL, raw BLOB);
             INSERT INTO notes(body, score, raw) VALUES ('one', 1.5, x'6869'), (NULL, 2, NULL);",
        )
        .unwrap();
        (p, c)
    }

    #[test]
    fn the_copy_holds_what_was_committed_while_the_app_keeps_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (p, app) = db(dir.path(), true);
        // An open transaction of the app is not in the copy; committed rows are.
        app.execute_batch("BEGIN; INSERT INTO notes(body) VALUES ('uncommitted');")
            .unwrap();
        let copy = dir.path().join("copy");
        let pages = copy_checked(&p, "/data/app.sqlite3", &copy).unwrap();
        assert!(pages > 0);
        app.execute_batch("COMMIT").unwrap();
        let rows = query(&copy, "copy", "SELECT count(*) FROM notes").unwrap();
        assert_eq!(rows, ["2"]);
        let c = Connection::open(&copy).unwrap();
        assert_eq!(integrity_check(&c).unwrap(), ["ok"]);
        // The source was never written by the copy: the app's row is there.
        assert_eq!(
            query(&p, "app", "SELECT count(*) FROM notes").unwrap(),
            ["3"]
        );
    }

    #[test]
    fn a_missing_file_is_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.db");
        let e = copy_checked(&p, "/data/nope.db", &dir.path().join("c")).unwrap_err();
        assert_eq!(format!("{e:#}"), "no such file: /data/nope.db");
        assert!(!p.exists());
        assert_eq!(probe_line(&p, "/data/nope.db"), "missing");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_named_in_the_probe() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("text.db");
        std::fs::write(
            &p,
            "this is not a database, just some text of a fair length",
        )
        .unwrap();
        let line = probe_line(&p, "/data/text.db");
        assert!(
            line.starts_with("error: /data/text.db cannot be read as a SQLite database"),
            "{line}"
        );
        let (good, _c) = db(dir.path(), false);
        assert_eq!(probe_line(&good, "/data/app.sqlite3"), "ok");
    }

    #[test]
    fn query_prints_rows_as_the_cli_does() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _c) = db(dir.path(), false);
        assert_eq!(
            query(
                &p,
                "x",
                "SELECT id, body, score, raw FROM notes ORDER BY id"
            )
            .unwrap(),
            ["1\tone\t1.5\thi", "2\t\t2.0\t"]
        );
        let e = query(&p, "/data/app.sqlite3", "SELECT * FROM missing").unwrap_err();
        assert!(format!("{e:#}").starts_with("/data/app.sqlite3: cannot prepare the query"));
        assert_eq!(query_in_memory("SELECT 1").unwrap(), ["1"]);
    }

    #[test]
    fn stat_names_the_owner_and_the_side_files() {
        let dir = tempfile::tempdir().unwrap();
        let (p, c) = db(dir.path(), true);
        let lines = stat(&p, "/data/app.sqlite3").unwrap();
        let me = std::fs::metadata(&p).unwrap();
        assert_eq!(
            lines[0],
            format!("{} {} {:o}", me.uid(), me.gid(), me.mode() & 0o777)
        );
        assert_eq!(
            lines[1..],
            ["/data/app.sqlite3-wal", "/data/app.sqlite3-shm"]
        );
        drop(c);
        let none = stat(&dir.path().join("new.db"), "/data/new.db").unwrap();
        assert_eq!(none.len(), 1);
        assert!(none[0].ends_with(" 644"), "{none:?}");
    }
}
