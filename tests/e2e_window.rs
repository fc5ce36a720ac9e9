//! End to end: the short stop window. A writer keeps writing to PostgreSQL,
//! MariaDB and its volume through the whole backup (it is stopped only for
//! the window); the one snapshot must hold the moment of the stop: its counter
//! file equals the last row of each database's dump. Then the fallbacks to the
//! full window: a table that is not InnoDB, and a schema change during a
//! pinned dump.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn stack(project: &str) -> Stack {
    writer::stack_on(project, &[], &[])
}

/// Records the health-check configuration and state of every worker
/// container of `project` seen while it runs.
struct WorkerHealth {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<std::collections::BTreeMap<String, String>>,
}

impl WorkerHealth {
    fn watch(project: &str) -> WorkerHealth {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let filter = format!("label=stackshot.project={project}");
        let thread = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeMap::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let ids = output(&mut docker(&[
                    "ps",
                    "-q",
                    "--filter",
                    "label=stackshot.role=worker",
                    "--filter",
                    &filter,
                ]));
                for id in String::from_utf8_lossy(&ids.stdout).lines() {
                    let out = output(&mut docker(&[
                        "inspect",
                        "-f",
                        "{{json .Config.Healthcheck}} {{json .State.Health}}",
                        id,
                    ]));
                    if out.status.success() {
                        seen.insert(
                            id.to_string(),
                            String::from_utf8_lossy(&out.stdout).trim().to_string(),
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        });
        WorkerHealth { stop, thread }
    }

    fn finish(self) -> std::collections::BTreeMap<String, String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn snapshots_or_fail(stack: &Stack) -> Vec<Value> {
    let out = stack.restic(&[], &["snapshots", "--json"]);
    assert!(
        out.status.success(),
        "restic snapshots failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("snapshots JSON")
}

/// Big enough that each dump still streams for a while after the window.
fn make_dumps_slow(stack: &Stack) {
    stack
        .psql("CREATE TABLE IF NOT EXISTS aaa_big AS SELECT g AS id, repeat('x', 200) AS payload FROM generate_series(1, 300000) g")
        .expect("pg big table");
    stack
        .mariadb("CREATE TABLE IF NOT EXISTS aaa_big ENGINE=InnoDB AS SELECT seq AS id, REPEAT('x', 200) AS payload FROM seq_1_to_300000")
        .expect("mariadb big table");
}

#[test]
fn short_window_is_one_moment_with_writers_running_through_the_dumps() {
    let _serial = serial();
    let stack = stack("stackshot-e2e-window");
    one_moment(&stack, false);
}

/// The same with Debian bookworm's restic 0.14 in the sidecar, in place of
/// the one the image pins: every restic the image may carry is tested.
#[test]
fn short_window_is_one_moment_with_writers_running_through_the_dumps_on_restic_0_14() {
    let _serial = serial();
    bench_restic_0_14();
    let stack = writer::stack_on("stackshot-e2e-window-r14", &[], &[ON_RESTIC_0_14]);
    one_moment(&stack, false);
}

/// The writer's stack with its repository on the bench's rclone server of
/// `override_file` (tests/stack/), storing in a host directory given to
/// compose as `data_var`; the directory comes back with the stack.
fn stack_on_server(
    project: &str,
    override_file: &str,
    data_var: &str,
) -> (Stack, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let rclone = rclone();
    let stack = writer::stack_on(
        project,
        &[override_file],
        &[
            ("E2E_RCLONE", rclone.to_str().unwrap()),
            (data_var, data.path().to_str().unwrap()),
        ],
    );
    (stack, data)
}

/// The same on a REST server (`rclone serve restic`): rustic writes the
/// window's pass and the merge over HTTP.
#[test]
fn short_window_is_one_moment_on_a_rest_server() {
    let _serial = serial();
    let (stack, data) = stack_on_server(
        "stackshot-e2e-window-rest",
        "rest.override.yml",
        "E2E_REST_DATA",
    );
    one_moment(&stack, true);
    assert!(
        data.path().join("stackshot/config").is_file(),
        "the repository is not in the REST server's storage"
    );
}

/// The same on S3 (`rclone serve s3`), the keys read from secret files.
#[test]
fn short_window_is_one_moment_on_s3() {
    let _serial = serial();
    let (stack, _data) =
        stack_on_server("stackshot-e2e-window-s3", "s3.override.yml", "E2E_S3_DATA");
    one_moment(&stack, true);
}

/// A short-window run with the writer writing through it: one snapshot of
/// the stop's moment, that plain restic checks and restores.
fn one_moment(stack: &Stack, spooled: bool) {
    make_dumps_slow(stack);
    wait_for("the writer to write", 60, || {
        (writer::counter(stack) >= 10).then_some(())
    });

    let watch = stack.watch();
    let workers = WorkerHealth::watch(&stack.project);
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    let seen = workers.finish();
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["window_mode"], "short", "{report}");
    // Workers carry no health check (the image's would fail in them: no daemon there).
    assert!(
        !seen.is_empty(),
        "no worker container was seen during the run"
    );
    for (id, health) in &seen {
        let (config, state) = health.split_once(' ').unwrap();
        let config: Value = serde_json::from_str(config).unwrap();
        assert_eq!(
            config["Test"],
            serde_json::json!(["NONE"]),
            "worker {id}: {health}"
        );
        assert_eq!(state, "null", "worker {id} has a health state: {health}");
    }
    assert_eq!(report["notes"], serde_json::json!([]), "{report}");
    let down = assert_window_events(stack, &events);
    let writer = stack.container("writer");
    events.assert_saw(&writer, &["stop", "die", "start"]);
    let writer_down = (events.first(&writer, "start") - events.first(&writer, "die")) as f64 / 1e9;
    let phases: Vec<(String, f64)> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["seconds"].as_f64().unwrap(),
            )
        })
        .collect();
    let dumps_after = phases
        .iter()
        .find(|(n, _)| n == "dumps")
        .expect("dumps phase")
        .1;
    // On a server the window's pass was spooled and went up after the
    // window; a local repository is written directly.
    assert_eq!(
        phases.iter().any(|(n, _)| n == "upload"),
        spooled,
        "upload phase (spooled: {spooled}): {phases:?}"
    );
    eprintln!(
        "short window: app down {down:.2}s, writer down {writer_down:.2}s, reported {:.2}s; dumps after the window {dumps_after:.2}s; run {:.2}s",
        report["window"]["seconds"].as_f64().unwrap(),
        phases.iter().map(|(_, s)| s).sum::<f64>()
    );

    // One snapshot: no pre-pass or part left, the stackshot tags, plain restic reads it.
    let snaps = snapshots_or_fail(stack);
    assert_eq!(snaps.len(), 1, "pre-pass or parts left behind: {snaps:?}");
    let tags: Vec<&str> = snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let project = format!("project={}", stack.project);
    for want in ["stackshot", project.as_str(), "mode=atomic"] {
        assert!(tags.contains(&want), "{tags:?}");
    }
    let check = stack.restic(&[], &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let moment = writer::moment(stack, "latest");
    let r = moment.restored.path();

    // The moment of the stop: the counter equals the last row of each database.
    let n = moment.counter;
    assert!(n >= 10, "{n}");
    let want: BTreeSet<u64> = (1..=n).collect();
    assert_eq!(
        moment.pg, want,
        "PostgreSQL dump is not of the stop's moment (counter {n})"
    );
    assert_eq!(
        moment.maria, want,
        "MariaDB dump is not of the stop's moment (counter {n})"
    );
    // … while the writer kept writing after the window, during the dumps.
    let live: u64 = stack
        .psql("select max(id) from writes")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        live > n,
        "the writer did not write after the window: {live} <= {n}"
    );
    // The pg_dumpall-shaped file loads into a fresh server with its rows and roles.
    assert_pg_dump_restores(
        stack,
        &r.join("databases/postgres/postgres-all.sql"),
        &format!("{}-pg", stack.project),
    );
}

/// Waits until the engine's events show the app stopped (`die`) and started
/// again: the window closed. (Polling the container's state missed windows
/// shorter than one `docker inspect`.)
fn wait_window_closed(stack: &Stack, watch: &EventWatch) {
    assert!(
        watch.wait_for_pair(
            &stack.container("app"),
            "die",
            "start",
            Duration::from_secs(120)
        ),
        "the window never closed"
    );
}

#[test]
fn falls_back_to_the_full_window_on_myisam_and_on_a_schema_change() {
    let _serial = serial();
    falls_back(stack("stackshot-e2e-fallback"));
}

/// The same with restic 0.14 in the sidecar.
#[test]
fn falls_back_to_the_full_window_on_myisam_and_on_a_schema_change_on_restic_0_14() {
    let _serial = serial();
    bench_restic_0_14();
    falls_back(writer::stack_on(
        "stackshot-e2e-fallback-r14",
        &[],
        &[ON_RESTIC_0_14],
    ));
}

fn falls_back(stack: Stack) {
    // A MyISAM table: --single-transaction does not cover it; dumped in the window.
    stack
        .mariadb("CREATE TABLE legacy_counts (id int) ENGINE=MyISAM")
        .expect("myisam table");
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 0, "{report}\n{stderr}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("mariadb: dumped inside the window: tables that are not InnoDB")
            && notes.contains("shop.legacy_counts (MyISAM)"),
        "{report}"
    );
    // As the note says: the dump began and ended while the stack was down.
    assert_exec_inside_window(&stack, &events, "mariadb", "mariadb-dump");
    assert_eq!(
        report["window_mode"], "short",
        "PostgreSQL is still pinned: {report}"
    );
    stack.mariadb("DROP TABLE legacy_counts").unwrap();

    // A migration right after the window, while the pinned dumps still stream:
    // the `postgres` database (dumped first) is made slow, and appdb's schema
    // changes meanwhile. The run does not pretend: it repeats in the full window.
    let slow = stack.exec(
        "postgres",
        &[],
        &[
            "psql",
            "-U",
            "app",
            "-d",
            "postgres",
            "-c",
            "CREATE TABLE aaa_big AS SELECT g AS id, repeat('x', 200) AS payload FROM generate_series(1, 600000) g",
        ],
    );
    assert!(
        slow.status.success(),
        "{}",
        String::from_utf8_lossy(&slow.stderr)
    );
    let watch = stack.watch();
    let child = std::process::Command::new("docker")
        .args([
            "exec",
            &stack.container("backup"),
            "stackshot",
            "backup",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_window_closed(&stack, &watch);
    let t = Instant::now();
    stack
        .psql("ALTER TABLE customers ADD COLUMN migrated int DEFAULT 7")
        .expect("migration");
    eprintln!(
        "migration done {:.2}s after the window closed",
        t.elapsed().as_secs_f64()
    );
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("repeated once in the full window"),
        "no fallback: {report}"
    );
    assert_eq!(report["window_mode"], "full", "{report}");
    // The snapshot holds the schema after the migration (taken in the full window).
    let snaps = snapshots_or_fail(&stack);
    assert_eq!(snaps.len(), 2, "one snapshot per run, no parts: {snaps:?}");
    let restored = stack.restore("latest");
    let dump = std::fs::read_to_string(restored.path().join("databases/postgres/postgres-all.sql"))
        .unwrap();
    assert!(
        dump.contains("migrated integer"),
        "the full-window dump misses the migration"
    );
    assert!(Path::new(&restored.path().join("volumes/writer/data/counter")).exists());
}
