//! End to end: the stop window's limit (`WINDOW_LIMIT`, issue 38). A dump
//! inside the full window waits on a table another session holds locked:
//! the window closes at its limit, the stack runs again, the run fails in
//! one line naming the limit and the dump still running, and no snapshot is
//! written.

mod common;

use std::process::{Child, Command, Stdio};

use common::*;

/// A session in the stack's PostgreSQL holding `customers` locked (ACCESS
/// EXCLUSIVE) for `secs` seconds; ended when dropped (its backend
/// terminated: killing the `docker exec` client leaves `psql` running).
struct Locker {
    client: Child,
    container: String,
}

impl Locker {
    fn hold(stack: &Stack, secs: u32) -> Locker {
        let sql = format!(
            "BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({secs}); COMMIT;"
        );
        let child = Command::new("docker")
            .args([
                "exec",
                &stack.container("postgres"),
                "psql",
                "-U",
                "app",
                "-d",
                "appdb",
                "-c",
                &sql,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker exec psql");
        wait_for("the lock on customers", 30, || {
            stack
                .psql(
                    "SELECT count(*) FROM pg_locks WHERE granted AND mode = 'AccessExclusiveLock' \
                     AND relation = 'customers'::regclass",
                )
                .filter(|n| n == "1")
        });
        Locker {
            client: child,
            container: stack.container("postgres"),
        }
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = output(&mut docker(&[
            "exec",
            &self.container,
            "psql",
            "-U",
            "app",
            "-d",
            "appdb",
            "-c",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%LOCK TABLE customers%' AND pid <> pg_backend_pid()",
        ]));
        let _ = self.client.kill();
        let _ = self.client.wait();
    }
}

fn running(container: &str) -> bool {
    run(&mut docker(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        container,
    ]))
    .trim()
        == "true"
}

#[test]
fn a_dump_that_hangs_inside_the_window_is_abandoned_at_its_limit() {
    let stack = Stack::up(
        "stackshot-e2e-limit",
        &root().join("tests/stack/docker-compose.yml"),
    );
    stack.wait_for_databases();
    let before = stack.try_snapshots().map(|s| s.len()).unwrap_or(0);

    // Longer than the limit by far: without a limit, the run would wait
    // for it, then succeed.
    let locker = Locker::hold(&stack, 120);
    let (code, report, stderr) = stack.backup(&[("STOP_WINDOW", "full"), ("WINDOW_LIMIT", "15s")]);
    drop(locker);

    assert_ne!(code, 0, "a run abandoned at its limit fails\n{stderr}");
    assert_eq!(report["result"], "failed", "{report:#}");
    let error = report["reason"].as_str().unwrap_or_default();
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(
        error.contains("the stop window reached its limit of 15s (WINDOW_LIMIT) while pg_dump")
            && error.contains("in postgres still ran"),
        "names the limit and the dump still running: {error}"
    );
    // The window closed at the limit, not when the lock went (120 s).
    let window = report["window"]["seconds"]
        .as_f64()
        .expect("window seconds");
    assert!(window < 75.0, "the window lasted {window} s: {report:#}");
    for service in ["app", "sidekick"] {
        assert!(
            running(&stack.container(service)),
            "{service} runs again after the abandoned window"
        );
    }
    assert_eq!(
        stack.snapshots().len(),
        before,
        "nothing of the abandoned run became a snapshot"
    );

    // With the lock gone, the same stack backs up.
    let (code, report, stderr) = stack.backup(&[("STOP_WINDOW", "full"), ("WINDOW_LIMIT", "15s")]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["result"], "success");
}
