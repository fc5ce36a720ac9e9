//! End to end: the restore drill on the real engine. It compares what it
//! loaded with the rows counted in the dumps as they were written, so a
//! table filled in bulk just before the backup (InnoDB's estimate stale)
//! passes, while a dump cut short or a table loaded empty fails; and two
//! drills at once on one engine leave each other's throwaways alone.

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn stack(project: &str) -> Stack {
    let s = Stack::up(project, &root().join("tests/stack/docker-compose.yml"));
    s.wait_for_databases();
    s
}

/// `stackshot drill --json [args]` in the sidecar: (exit code, report, output).
fn drill(stack: &Stack, args: &[&str]) -> (i32, Value, String) {
    let mut cmd = vec!["stackshot", "drill", "--json"];
    cmd.extend(args);
    let out = stack.exec("backup", &[], &cmd);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("drill --json printed no report ({e}): {}", text(&out)));
    (out.status.code().unwrap_or(-1), report, text(&out))
}

/// Each service's problems in a drill report.
fn problems(report: &Value, service: &str) -> Vec<String> {
    let s = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no {service} in {report}"));
    serde_json::from_value(s["problems"].clone()).unwrap()
}

#[test]
fn drill_counts_rows_exactly() {
    let stack = stack("stackshot-e2e-rowcount");
    // A table filled in bulk just before the backup, with statistics as
    // stale as they get: computed (ANALYZE) when it held one row, never
    // recalculated (STATS_AUTO_RECALC=0), and read back from the persistent
    // statistics when the server restarts. The values hold what a careless
    // counter would take for tuples and statement ends.
    stack
        .mariadb(
            "CREATE TABLE bulk (id INT PRIMARY KEY, note VARCHAR(80)) STATS_PERSISTENT=1 STATS_AUTO_RECALC=0; \
             INSERT INTO bulk VALUES (1, 'seed'); ANALYZE TABLE bulk; \
             INSERT INTO bulk SELECT seq, CONCAT('it''s ),( \\\\ ', seq, CHAR(10), ');(') FROM seq_2_to_50000;",
        )
        .expect("the bulk table");
    run(&mut docker(&["restart", &stack.container("mariadb")]));
    stack.wait_for_servers();
    let estimate: i64 = stack
        .mariadb("SELECT table_rows FROM information_schema.tables WHERE table_schema = 'shop' AND table_name = 'bulk'")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        estimate * 2 + 100 < 50_000,
        "InnoDB estimates the bulk table at {estimate} rows: not stale, so this test proves nothing"
    );
    // PostgreSQL rows whose COPY lines hold escapes, `\.` and tabs.
    stack
        .psql("CREATE TABLE notes (body text); INSERT INTO notes VALUES (E'a\\\\.\\nb'), (E'\\\\.'), (E'x\\ty'), ('')")
        .expect("the notes table");
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");

    let (code, report, said) = drill(&stack, &[]);
    assert_eq!(code, 0, "the drill fails a sound backup: {said}");
    for s in report["services"].as_array().unwrap() {
        assert_eq!(s["problems"], serde_json::json!([]), "{report}");
        assert_eq!(s["compared"], "dump-counts", "{report}");
    }
    let line = stack.drill_line("mariadb");
    assert!(
        line.contains("every table holds the rows counted in the dump"),
        "{line}"
    );

    // manifest.json: the counts, and the stale estimate beside them.
    let copy = stack.restore("latest");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(copy.path().join("databases/manifest.json")).unwrap(),
    )
    .unwrap();
    let rows = &manifest["rows"];
    assert_eq!(rows["mariadb"]["shop.bulk"], 50_000, "{manifest}");
    assert_eq!(rows["mariadb"]["shop.orders"], 4, "{manifest}");
    assert_eq!(
        rows["postgres"]["appdb.public.customers"], 1000,
        "{manifest}"
    );
    assert_eq!(rows["postgres"]["appdb.public.notes"], 4, "{manifest}");
    assert_eq!(
        manifest["tables"]["mariadb"]["shop.bulk"], estimate,
        "{manifest}"
    );
    assert!(manifest.get("cut_short").is_none(), "{manifest}");

    // A copy of the run with PostgreSQL's dump cut off after 500 of the
    // customers' rows and MariaDB's without the bulk table's rows, its
    // SHA256SUMS made to match and its manifest.json kept.
    let dbs = copy.path().join("databases");
    let pg = dbs.join("postgres/postgres-all.sql");
    let dump = std::fs::read_to_string(&pg).unwrap();
    let copy_at = dump
        .find("COPY public.customers ")
        .expect("the customers' COPY");
    let mut cut = copy_at + dump[copy_at..].find('\n').unwrap() + 1;
    for _ in 0..500 {
        cut += dump[cut..].find('\n').unwrap() + 1;
    }
    std::fs::write(&pg, &dump[..cut]).unwrap();
    let maria = dbs.join("mariadb/shop.sql");
    let dump = std::fs::read_to_string(&maria).unwrap();
    // mariadb-dump 10.11 writes each tuple on a line of its own: everything
    // between the table's LOCK and UNLOCK goes.
    let mut in_bulk = false;
    let kept: String = dump
        .split_inclusive('\n')
        .filter(|l| {
            if l.starts_with("LOCK TABLES `bulk` WRITE;") {
                in_bulk = true;
                return true;
            }
            if l.starts_with("UNLOCK TABLES;") {
                in_bulk = false;
            }
            !in_bulk
        })
        .collect();
    assert!(kept.len() < dump.len(), "no INSERT of the bulk table");
    std::fs::write(&maria, kept).unwrap();
    let sums: String = ["mariadb/shop.sql", "postgres/postgres-all.sql"]
        .iter()
        .map(|rel| format!("{}  {rel}\n", sha256_file(&dbs.join(rel))))
        .collect();
    std::fs::write(dbs.join("SHA256SUMS"), sums).unwrap();
    let volumes = format!("{}:/volumes:ro", copy.path().join("volumes").display());
    let databases = format!("{}:/databases:ro", dbs.display());
    let tags = format!(
        "stackshot,project={0},mode=atomic,run=cut,service=postgres,service=mariadb",
        stack.project
    );
    let out = stack.restic(
        &[&volumes, &databases],
        &[
            "backup",
            "-q",
            "--host",
            &stack.project,
            "--tag",
            &tags,
            "/volumes",
            "/databases",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (code, report, said) = drill(&stack, &["--snapshot", "cut"]);
    assert_eq!(code, 1, "{said}");
    assert_eq!(
        problems(&report, "postgres"),
        [
            "table appdb.public.customers: 500 rows loaded, 1000 in the dump",
            "table appdb.public.notes: 0 rows loaded, 4 in the dump"
        ],
        "{said}"
    );
    assert_eq!(
        problems(&report, "mariadb"),
        ["table shop.bulk: 0 rows loaded, 50000 in the dump"],
        "{said}"
    );
    assert_eq!(drill_leftovers(&stack.project), "", "throwaways left");
}

/// A container labelled as a drill's throwaway of `project`, owned by
/// `owner`; removed when dropped (if the drill did not remove it).
struct FakeThrowaway(String);

impl FakeThrowaway {
    fn start(project: &str, owner: &str) -> FakeThrowaway {
        let id = run(&mut docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--label",
            "stackshot.role=drill",
            "--label",
            &format!("stackshot.project={project}"),
            "--label",
            "stackshot.drill-run=an-earlier-run",
            "--label",
            &format!("stackshot.drill-owner={owner}"),
            "stackshot-test/base:local",
            "sleep",
            "600",
        ]));
        FakeThrowaway(id.trim().to_string())
    }

    fn exists(&self) -> bool {
        output(&mut docker(&["inspect", &self.0])).status.success()
    }
}

impl Drop for FakeThrowaway {
    fn drop(&mut self) {
        let _ = output(&mut docker(&["rm", "-f", &self.0]));
    }
}

#[test]
fn two_drills_at_once() {
    let stack = stack("stackshot-e2e-twodrills");
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let sidecar = run(&mut docker(&[
        "inspect",
        "-f",
        "{{.Id}}",
        &stack.container("backup"),
    ]));
    let sidecar = sidecar.trim();
    // Left by a drill whose process in the sidecar is gone: removed.
    let dead = FakeThrowaway::start(&stack.project, &format!("{sidecar}/999999/1"));
    // Owned by a drill in another container that runs: left alone.
    let other = stack.container("bystander");
    let live = FakeThrowaway::start(&stack.project, &format!("{other}/1/1"));

    let spawn = || {
        Command::new("docker")
            .args(["exec", &stack.container("backup")])
            .args(["stackshot", "drill", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker exec")
    };
    let (a, b) = (spawn(), spawn());
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert!(out.status.success(), "a drill failed: {}", text(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        for s in report["services"].as_array().unwrap() {
            assert_eq!(s["problems"], serde_json::json!([]), "{report}");
        }
    }
    assert!(!dead.exists(), "the dead drill's throwaway was left");
    assert!(live.exists(), "a running drill's throwaway was removed");
    drop(live);
    assert_eq!(drill_leftovers(&stack.project), "", "throwaways left");
}
