//! Failure drills on the real engine: every one ends with the stack running and
//! the failure reported.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn stack(project: &str) -> Stack {
    let s = Stack::up(project, &root().join("tests/stack/docker-compose.yml"));
    s.wait_for_databases();
    s
}

/// The test stack with `tests/stack/<name>.override.yml` over it, databases up.
fn stack_with(project: &str, name: &str) -> Stack {
    let s = Stack::up_with(
        project,
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join(format!("tests/stack/{name}.override.yml")),
        ],
        &[],
    );
    s.wait_for_databases();
    s
}

/// The stop-window journal in the sidecar, as text (empty when there is none).
fn journal_text(stack: &Stack) -> String {
    let out = stack.beside("backup", &["cat", "/cache/stackshot/window-journal.json"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `stackshot backup --json` in the sidecar without waiting for it,
/// with the full stop window: these drills hit the window's exit paths, and
/// the full window stays open through the dumps long enough to hit.
fn spawn_backup(stack: &Stack) -> Child {
    spawn_backup_with(stack, "full")
}

fn spawn_backup_with(stack: &Stack, window: &str) -> Child {
    spawn_backup_env(stack, &[("STOP_WINDOW", window)])
}

/// Starts `stackshot backup --json` in the sidecar with extra environment.
fn spawn_backup_env(stack: &Stack, env: &[(&str, &str)]) -> Child {
    let mut c = Command::new("docker");
    c.arg("exec");
    for (k, v) in env {
        c.args(["-e", &format!("{k}={v}")]);
    }
    c.args([&stack.container("backup"), "stackshot", "backup", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec")
}

/// [`finish`], failing the test when the run has not ended in `secs` seconds
/// (the sidecar's backup is left to the stack's teardown).
fn finish_within(mut child: Child, secs: u64) -> (i32, Value, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("docker exec").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the backup did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    finish(child)
}

fn finish(child: Child) -> (i32, Value, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn assert_all_running(stack: &Stack) {
    for svc in [
        "app",
        "sidekick",
        "postgres",
        "mariadb",
        "bystander",
        "legacy",
    ] {
        assert_eq!(stack.state(svc), "running", "{svc} is not running");
    }
    assert_eq!(
        workers(&stack.project),
        Vec::<String>::new(),
        "a worker container was left behind"
    );
}

/// No container of the stack stopped or started, and the stream was live: it
/// saw the test's own `docker exec … stackshot backup`.
fn assert_untouched(stack: &Stack, events: &Events) {
    events.assert_saw_exec(&stack.container("backup"), "stackshot backup");
    for svc in [
        "app",
        "sidekick",
        "postgres",
        "mariadb",
        "bystander",
        "legacy",
    ] {
        assert_eq!(
            events.actions(&stack.container(svc)),
            Vec::<String>::new(),
            "{svc} was touched"
        );
    }
}

/// SIGKILLs the processes in `service`'s container that `pkill` selects
/// with `select` (`-x pg_dump`; shell words) as soon as one runs: the
/// polling loop runs inside the container (every 10 ms), so a process that
/// lives a second is caught even when each `docker exec` takes longer than
/// that (as it does with other tests running beside this one). Panics when
/// none ran within `secs`.
fn kill_when_seen(stack: &Stack, service: &str, select: &str, secs: u64) {
    let script = format!("until pkill -KILL {select}; do sleep 0.01; done");
    let out = stack.exec(
        service,
        &[],
        &["timeout", &secs.to_string(), "sh", "-c", &script],
    );
    assert!(
        out.status.success(),
        "no process ({select}) ran in {service} within {secs}s to be killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls every 50 ms until `f` is true; panics after `secs`.
fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn preflight_failures_touch_nothing() {
    let _serial = serial();
    let stack = stack("stackshot-e2e-preflight");

    // The database's password changed under the stack: caught before any stop.
    stack
        .psql("ALTER ROLE app PASSWORD 'rotated-secret'")
        .expect("alter role");
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["result"], "failed");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("service postgres: cannot log in to postgres as \"app\" (password from POSTGRES_PASSWORD)"), "{reason}");
    assert!(
        report["window"].is_null(),
        "the window must not open: {report}"
    );
    for secret in ["pg-secret-password", "rotated-secret", RESTIC_PASSWORD] {
        assert!(
            !report.to_string().contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
    assert_untouched(&stack, &events);
    stack
        .psql("ALTER ROLE app PASSWORD 'pg-secret-password'")
        .expect("restore role");

    // The repository cannot be reached: caught before any stop.
    let watch = stack.watch();
    let (code, report, _) = stack.backup(&[("RESTIC_REPOSITORY", "rest:http://127.0.0.1:9/")]);
    let events = watch.finish();
    assert_eq!(code, 1, "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("rest:http://127.0.0.1:9/"), "{reason}");
    assert!(report["window"].is_null());
    assert_untouched(&stack, &events);
    assert_all_running(&stack);

    // A container of the project crafted to climb out of /volumes (its
    // compose service label is `../../etc`): the plan refuses it with one
    // line, and nothing is touched, the crafted container included.
    let crafted = "stackshot-e2e-preflight-crafted";
    let _ = output(&mut docker(&["rm", "-f", "-v", crafted]));
    let project = format!("com.docker.compose.project={}", stack.project);
    let crafted_id = run(&mut docker(&[
        "run",
        "-d",
        "--name",
        crafted,
        "--label",
        &project,
        "--label",
        "com.docker.compose.service=../../etc",
        "--label",
        "stackshot.volumes=true",
        "--label",
        "stackshot.stop-during-backup=true",
        "-v",
        "/srv",
        "stackshot-test/base:local",
        "sleep",
        "infinity",
    ]))
    .trim()
    .to_string();
    let watch = stack.watch();
    let (code, report, _) = stack.backup(&[]);
    let events = watch.finish();
    // `stackshot plan` refuses the same plan, with the same exit code.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    let _ = output(&mut docker(&["rm", "-f", "-v", crafted]));
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert_eq!(
        code, 2,
        "a plan with errors exits 2, as `plan` does: {report}"
    );
    assert_eq!(report["plan_refused"], true, "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "container \"{crafted}\": compose service label \"../../etc\" cannot be used: it contains '/'"
        )),
        "{reason}"
    );
    assert!(!reason.contains('\n'), "one line: {reason}");
    assert!(report["window"].is_null());
    assert_untouched(&stack, &events);
    assert_eq!(events.actions(&crafted_id), Vec::<String>::new());

    // With both fixed, the same stack backs up, and the same stream shows it.
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_window_events(&stack, &events);
}

#[test]
fn kills_inside_the_window() {
    let _serial = serial();
    let stack = stack("stackshot-e2e-drills");
    // A table large enough that dumping it keeps the window open for seconds.
    stack
        .psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS payload FROM generate_series(1, 1000000) g")
        .expect("create big table");
    // The repository exists before the first count, so that "no snapshot
    // from a broken dump" compares two real listings.
    let init = stack.restic(&[], &["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let snapshots = |s: &Stack| s.snapshots().len();

    // 1. The dump process is killed midway: no snapshot, containers back.
    let n = snapshots(&stack);
    let child = spawn_backup(&stack);
    kill_when_seen(&stack, "postgres", "-x pg_dump", 120);
    let (code, report, stderr) = finish(child);
    assert_eq!(code, 1, "{report}\n{stderr}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("pg_dumpall exited with code"), "{reason}");
    assert!(report["snapshots"].as_array().unwrap().is_empty());
    assert_eq!(snapshots(&stack), n, "no snapshot from a broken dump");
    assert_eq!(
        report["window"]["started"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    assert_all_running(&stack);

    // 1b. Short window: the pinned pg_dump (after the window) is killed. The
    // run does not pretend: it repeats in the full window and succeeds. Only
    // a pinned pg_dump (`--snapshot=`) is selected; `[=]`, so that the
    // pattern does not match the polling shell's own command line.
    let child = spawn_backup_with(&stack, "short");
    kill_when_seen(&stack, "postgres", "-f 'pg_dump .*--snapshot[=]'", 120);
    let (code, report, stderr) = finish(child);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["window_mode"], "full", "{report}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("repeated once in the full window") && notes.contains("pg_dump"),
        "{report}"
    );
    assert_eq!(
        snapshots(&stack),
        n + 1,
        "one snapshot from the repeated run"
    );
    assert_all_running(&stack);

    // 2. The worker container is killed midway: failure reported, containers back.
    let mut child = spawn_backup(&stack);
    let mut killed = false;
    until("a worker to kill", 180, || {
        let ids = workers(&stack.project);
        killed = ids
            .iter()
            .any(|id| output(&mut docker(&["kill", id])).status.success());
        // A run that ended first has nothing left to kill: its report says why.
        killed || child.try_wait().expect("poll the backup").is_some()
    });
    let (code, report, stderr) = finish(child);
    assert!(
        killed,
        "the run ended before its worker could be killed: {report}\n{stderr}"
    );
    assert_eq!(code, 1, "{report}\n{stderr}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("atomic snapshot failed"), "{reason}");
    assert_all_running(&stack);

    // 3. SIGTERM inside the window: the window closes before the process exits.
    let child = spawn_backup(&stack);
    until("the window to open", 120, || stack.state("app") == "exited");
    stack.signal("backup", "TERM", "stackshot backup");
    let (code, report, stderr) = finish(child);
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(
        report["reason"],
        "interrupted by SIGTERM inside the stop window"
    );
    assert_all_running(&stack);

    // 4. SIGKILL inside the window: the sidecar's `stackshot idle` sees the
    // journal's owner gone and starts the containers within seconds, with no
    // run and no restart of the sidecar.
    let sidecar_started = stack.started_at("backup");
    let child = spawn_backup(&stack);
    until("the window to open", 120, || stack.state("app") == "exited");
    stack.signal("backup", "KILL", "stackshot backup");
    let _ = finish(child);
    wait_for("app and sidekick started by the idle sidecar", 10, || {
        (stack.state("app") == "running" && stack.state("sidekick") == "running").then_some(())
    });
    wait_for("the journal cleared", 10, || {
        stack
            .beside(
                "backup",
                &["test", "-e", "/cache/stackshot/window-journal.json"],
            )
            .status
            .code()
            .filter(|&c| c == 1)
    });
    assert_eq!(
        stack.started_at("backup"),
        sidecar_started,
        "the sidecar was not restarted"
    );
    assert!(
        workers(&stack.project).is_empty(),
        "the dead run's worker was removed: {:?}",
        workers(&stack.project)
    );

    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(
        report["recovered"].as_array().map(Vec::len),
        Some(0),
        "nothing left to recover: {report}"
    );
    assert_all_running(&stack);
    assert_eq!(report["snapshots"].as_array().unwrap().len(), 1);
}

/// The repository read-only (the stack's own, mounted `:ro`): the run fails
/// with one line naming the cause before anything stops, in both windows,
/// every container runs afterwards, and the stack's repository still backs
/// up and restores.
#[test]
fn read_only_repository() {
    let _serial = serial();
    let stack = stack_with("stackshot-e2e-repofaults", "repository-faults");
    // A file to restore byte for byte at the end.
    let big = stack.exec(
        "app",
        &[],
        &[
            "sh",
            "-c",
            "head -c 2M /dev/urandom > /data/incompressible.bin",
        ],
    );
    assert!(big.status.success());
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "the stack's repository first: {report}\n{stderr}");
    let first = report["snapshots"][0]["id"].as_str().unwrap().to_string();

    let one_line = |report: &Value, needles: &[&str]| {
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains('\n'), "one line: {reason}");
        for n in needles {
            assert!(reason.contains(n), "{n:?} not in the reason: {reason}");
        }
    };
    for window in ["short", "full"] {
        let watch = stack.watch();
        let (code, report, stderr) = stack.backup(&[
            ("RESTIC_REPOSITORY", "/repository-ro"),
            ("STOP_WINDOW", window),
        ]);
        let events = watch.finish();
        assert_eq!(code, 1, "{window}, read-only: {report}\n{stderr}");
        one_line(&report, &["/repository-ro", "read-only"]);
        assert!(
            report["window"].is_null(),
            "{window}, read-only: the window must not open: {report}"
        );
        assert_untouched(&stack, &events);
        assert_all_running(&stack);
    }

    // Nothing lost: the stack's repository backs up again, and the first
    // backup still restores byte for byte.
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let restored = stack.restore(&first);
    let file = restored.path().join("volumes/app/data/incompressible.bin");
    let live = stack.exec("app", &[], &["sha256sum", "/data/incompressible.bin"]);
    assert_eq!(
        sha256_file(&file),
        String::from_utf8_lossy(&live.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    );
}

/// The repository full (an empty 8 MB tmpfs, a backup of 20 MB that does
/// not compress): the run fails with one line, every container runs
/// afterwards, and the stack's repository still backs up and restores. The
/// short window finds out in its pre-pass, before anything stops; the full
/// window only in its snapshot, and closes. restic 0.14 fails with "no
/// space left on device", or hangs with every file read, retrying (the
/// snapshot watchdog, `SNAPSHOT_STALL_TIMEOUT`, 20 s here, stops the hang),
/// or crashes with a Go panic (the reason keeps the panic line).
#[test]
fn full_repository() {
    let _serial = serial();
    let stack = stack_with("stackshot-e2e-repofull", "repository-faults");
    let big = stack.exec(
        "app",
        &[],
        &[
            "sh",
            "-c",
            "head -c 20M /dev/urandom > /data/incompressible.bin",
        ],
    );
    assert!(big.status.success());
    let full_or_stalled = |window: &str, report: &Value| {
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains('\n'), "{window}: one line: {reason}");
        // restic 0.14 on a full disk: an error, a hang (stopped by the
        // watchdog), or a crash (exit code 2, a Go panic or fatal error: the
        // reason keeps its first line, not its trace). Each seen here.
        let known = [
            "no space left on device",
            "SNAPSHOT_STALL_TIMEOUT",
            "panic: ",
            "fatal error: ",
        ];
        assert!(
            known.iter().any(|k| reason.contains(k)),
            "{window}: the reason names neither the full disk, the stall nor restic's crash: {reason}"
        );
        assert!(
            !reason.contains(".go:"),
            "{window}: a Go trace in the reason: {reason}"
        );
        eprintln!("{window} window, full repository: {reason}");
    };
    let small = [
        ("RESTIC_REPOSITORY", "/repository-small"),
        ("SNAPSHOT_STALL_TIMEOUT", "20s"),
    ];

    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[small[0], small[1], ("STOP_WINDOW", "short")]);
    let events = watch.finish();
    assert_eq!(code, 1, "short, full: {report}\n{stderr}");
    full_or_stalled("short", &report);
    assert!(report["window"].is_null(), "short, full: {report}");
    assert_untouched(&stack, &events);
    assert_all_running(&stack);

    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[small[0], small[1], ("STOP_WINDOW", "full")]);
    let events = watch.finish();
    assert_eq!(code, 1, "full, full: {report}\n{stderr}");
    full_or_stalled("full", &report);
    // The window opened, and closed: both stopped containers started again.
    let names = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = report["window"][key]
            .as_array()
            .unwrap_or_else(|| panic!("full, full: no window.{key}: {report}"))
            .iter()
            .map(|t| t["container"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("stopped").len(), 2, "{report}");
    assert_eq!(names("started"), names("stopped"), "{report}");
    assert_eq!(
        report["window"]["restart_failed"],
        serde_json::json!([]),
        "{report}"
    );
    assert_window_events(&stack, &events);
    assert_all_running(&stack);

    // Nothing lost: the stack's repository takes a backup that restores the
    // big file byte for byte.
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let id = report["snapshots"][0]["id"].as_str().unwrap().to_string();
    let restored = stack.restore(&id);
    let file = restored.path().join("volumes/app/data/incompressible.bin");
    let live = stack.exec("app", &[], &["sha256sum", "/data/incompressible.bin"]);
    assert_eq!(
        sha256_file(&file),
        String::from_utf8_lossy(&live.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    );
}

/// `/databases` full (a 2 MB tmpfs, a PostgreSQL dump of about 9 MB): in
/// both windows the run fails with one line naming the dump and the full
/// disk, no snapshot is left in the repository (not even a part), no
/// partial dump file stays in `/databases`, the window (opened and closed)
/// left everything running, and the short window does not repeat the run in
/// the full one. Once the big table is gone, the stack backs up and its dump
/// restores.
#[test]
fn databases_directory_full() {
    let _serial = serial();
    let stack = stack_with("stackshot-e2e-dbfull", "databases-full");
    stack
        .psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS payload FROM generate_series(1, 120000) g")
        .expect("create big table");
    let init = stack.restic(&[], &["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let all_snapshots = || stack.snapshots().len();
    let files_in_databases = || {
        let out = stack.beside("backup", &["find", "/databases", "-type", "f"]);
        assert!(out.status.success(), "find /databases: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    for window in ["short", "full"] {
        let watch = stack.watch();
        let (code, report, stderr) = stack.backup(&[("STOP_WINDOW", window)]);
        let events = watch.finish();
        assert_eq!(code, 1, "{window}: {report}\n{stderr}");
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains('\n'), "one line: {reason}");
        for needle in ["dump /databases/postgres/", "No space left on device"] {
            assert!(
                reason.contains(needle),
                "{window}: {needle:?} not in: {reason}"
            );
        }
        assert_eq!(
            report["window_mode"], window,
            "{window}: not repeated: {report}"
        );
        if window == "short" {
            assert!(
                reason.contains("not repeated in the full window"),
                "{reason}"
            );
        }
        assert_eq!(all_snapshots(), 0, "{window}: no snapshot, not even a part");
        assert_eq!(files_in_databases(), "", "{window}: no dump left behind");
        let stopped = report["window"]["stopped"].as_array().map_or(0, Vec::len);
        assert_eq!(stopped, 2, "{window}: {report}");
        assert_eq!(
            report["window"]["restart_failed"],
            serde_json::json!([]),
            "{report}"
        );
        assert_window_events(&stack, &events);
        assert_all_running(&stack);
    }

    stack.psql("DROP TABLE big").expect("drop big table");
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "with room again: {report}\n{stderr}");
    let id = report["snapshots"][0]["id"].as_str().unwrap().to_string();
    let restored = stack.restore(&id);
    assert_pg_dump_restores(
        &stack,
        &restored.path().join("databases/postgres/postgres-all.sql"),
        "stackshot-e2e-dbfull-pg",
    );
}

/// The snapshot watchdog: the full window's restic, frozen with SIGSTOP in
/// its worker, prints nothing more. After `SNAPSHOT_STALL_TIMEOUT` (15 s
/// here) the worker kills it and removes its lock, the window closes, the run
/// fails naming the stall, and the next backup works (no lock left behind).
#[test]
fn a_frozen_snapshot_is_stopped_by_the_watchdog() {
    let _serial = serial();
    let stack = stack("stackshot-e2e-frozen");
    let watch = stack.watch();
    let child = spawn_backup_env(
        &stack,
        &[("STOP_WINDOW", "full"), ("SNAPSHOT_STALL_TIMEOUT", "15s")],
    );
    until("the worker's restic to be frozen", 120, || {
        workers(&stack.project).iter().any(|w| {
            // The worker has no shell nor pkill (FROM scratch): from beside
            // it, polling there (a `docker run` per poll would miss restic).
            let script = "until pkill -STOP -x restic; do sleep 0.01; done";
            beside(w, &["timeout", "60", "sh", "-c", script])
                .status
                .success()
        })
    });
    let (code, report, stderr) = finish_within(child, 180);
    let events = watch.finish();
    assert_eq!(code, 1, "{report}\n{stderr}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(!reason.contains('\n'), "one line: {reason}");
    for needle in [
        "atomic snapshot failed: it stalled",
        "no progress for 15s (SNAPSHOT_STALL_TIMEOUT)",
    ] {
        assert!(reason.contains(needle), "{needle:?} not in: {reason}");
    }
    let names = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = report["window"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no window.{key}: {report}"))
            .iter()
            .map(|t| t["container"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("stopped").len(), 2, "{report}");
    assert_eq!(names("started"), names("stopped"), "{report}");
    assert_window_events(&stack, &events);
    assert_all_running(&stack);
    assert_eq!(journal_text(&stack), "", "the journal is cleared");

    let (blob, _) = seed_app_files(&stack);
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "after the stall: {report}\n{stderr}");
    let id = report["snapshots"][0]["id"].as_str().unwrap().to_string();
    let restored = stack.restore(&id);
    assert_eq!(
        sha256_file(&restored.path().join("volumes/app/data/blob.bin")),
        blob
    );
}

/// An exclusive lock held by another process: a `restic prune` in a
/// container of its own, paused with SIGSTOP once its lock is written. Both
/// windows refuse at preflight with one line naming the lock's holder (its PID
/// and host), nothing is stopped, and the live lock is still there afterwards:
/// stackshot's `restic unlock` removes stale locks only. Once the prune goes
/// on and ends, the stack backs up and restores.
#[test]
fn exclusive_lock_held_by_a_paused_prune() {
    let _serial = serial();
    let stack = stack("stackshot-e2e-locked");
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(
        code, 0,
        "a first backup, for prune to work on: {report}\n{stderr}"
    );

    let holder = format!("{}-prune", stack.project);
    let _ = output(&mut docker(&["rm", "-f", &holder]));
    // Removed however the test ends, before the stack (it holds a volume).
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = output(&mut docker(&["rm", "-f", &self.0]));
        }
    }
    let script = "restic prune >/tmp/prune.log 2>&1 & pid=$!; \
                  until ls /repository/locks | grep -qE '^[0-9a-f]{64}$'; do :; done; \
                  kill -STOP $pid; echo $pid > /tmp/pid; exec sleep 100000";
    let password = format!("RESTIC_PASSWORD={RESTIC_PASSWORD}");
    run(&mut docker(&[
        "run",
        "-d",
        "--name",
        &holder,
        "--hostname",
        "prune-host",
        "-v",
        &stack.repository_mount(),
        "-e",
        &password,
        "-e",
        "RESTIC_REPOSITORY=/repository",
        "stackshot-test/base:local",
        "sh",
        "-c",
        script,
    ]));
    let _holder = Remove(holder.clone());
    let pid = wait_for("the prune to take its lock and stop", 60, || {
        let out = output(&mut docker(&["exec", &holder, "cat", "/tmp/pid"]));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    let locks = || {
        run(&mut docker(&["exec", &holder, "ls", "/repository/locks"]))
            .split_whitespace()
            .filter(|n| n.len() == 64)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let held = locks();
    assert_eq!(held.len(), 1, "one lock, the prune's: {held:?}");

    for window in ["short", "full"] {
        let watch = stack.watch();
        let (code, report, stderr) = stack.backup(&[("STOP_WINDOW", window)]);
        let events = watch.finish();
        assert_eq!(code, 1, "{window}, locked: {report}\n{stderr}");
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains('\n'), "one line: {reason}");
        for needle in [
            "locked exclusively by".to_string(),
            format!("PID {pid} on host prune-host (user root)"),
            "nothing was stopped".to_string(),
        ] {
            assert!(reason.contains(&needle), "{needle:?} not in: {reason}");
        }
        assert!(report["window"].is_null(), "{window}, locked: {report}");
        assert_untouched(&stack, &events);
        assert_all_running(&stack);
        assert_eq!(locks(), held, "{window}: the live lock must stay");
    }

    // The prune goes on and ends; the stack backs up again and restores.
    run(&mut docker(&["exec", &holder, "kill", "-CONT", &pid]));
    wait_for("the prune to end and release its lock", 120, || {
        locks().is_empty().then_some(())
    });
    let log = run(&mut docker(&["exec", &holder, "cat", "/tmp/prune.log"]));
    assert!(log.contains("done"), "the prune did not finish: {log}");
    let (blob, photo) = seed_app_files(&stack);
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "after the prune: {report}\n{stderr}");
    let id = report["snapshots"][0]["id"].as_str().unwrap().to_string();
    let restored = stack.restore(&id);
    assert_eq!(
        sha256_file(&restored.path().join("volumes/app/data/blob.bin")),
        blob
    );
    assert_eq!(
        sha256_file(&restored.path().join("volumes/app/uploads/photo.bin")),
        photo
    );
}

/// A stopped container that exits at once when started again: the run fails
/// naming exactly that container, every other one runs again, and the
/// journal keeps it for the next start.
#[test]
fn a_container_that_does_not_come_back_is_reported() {
    let _serial = serial();
    let stack = stack_with("stackshot-e2e-fragile", "fragile");
    assert_eq!(stack.state("fragile"), "running");
    let fragile = stack.container_name("fragile");
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(report["result"], "failed", "{report}");
    let not_running: Vec<&str> = report["window"]["restart_failed"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(not_running.len(), 1, "{report}");
    assert!(
        not_running[0].starts_with(&format!("{fragile}: exited within 1.0 s of its start")),
        "{report}"
    );
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("containers are NOT running again: ") && reason.contains(&fragile),
        "{reason}"
    );
    assert!(!reason.contains('\n'), "one line: {reason}");
    assert!(
        stderr.contains("a container did not stay up after its start"),
        "{stderr}"
    );
    // The engine started it (and saw it die), and every other one runs.
    let acts = events.actions(&stack.container("fragile"));
    let start = acts
        .iter()
        .rposition(|a| a == "start")
        .unwrap_or_else(|| panic!("fragile never started again: {acts:?}"));
    assert!(
        acts[..start].iter().any(|a| a == "stop") && acts[start..].iter().any(|a| a == "die"),
        "fragile: stopped, started, then died: {acts:?}"
    );
    assert_window_events(&stack, &events);
    assert_eq!(stack.state("fragile"), "exited");
    assert_all_running(&stack);
    assert!(
        journal_text(&stack).contains(&stack.container("fragile")),
        "the journal keeps the container that did not stay up"
    );
}
