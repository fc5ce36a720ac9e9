//! End to end: what the sidecar knows about its repository across restarts.
//!
//! - After a daemon restart, `/healthz` and
//!   `stackshot_backup_last_success_timestamp_seconds` carry the last success
//!   read back from the repository (not `starting`, not 0); a repository
//!   that cannot be read leaves `starting`, with one warning saying why.
//! - The repository's id is remembered after a successful run: an empty
//!   mount point where the repository was (a NAS that did not mount) is
//!   refused in one line, touching no container and initialising nothing;
//!   so is another repository at the same place. `ACCEPT_NEW_REPOSITORY=true`
//!   accepts a new one.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// `/healthz`'s body, once it answers.
fn healthz(port: u16) -> Option<Value> {
    let (_, body) = http_get(port, "/healthz")?;
    serde_json::from_str(&body).ok()
}

#[test]
fn the_last_success_is_read_back_after_a_daemon_restart() {
    let base = root().join("tests/stack/docker-compose.yml");
    let daemon = root().join("tests/stack/daemon.override.yml");
    // The schedule never fires during the test: only the run asked for here.
    let mut stack = Stack::up_with(
        "stackshot-e2e-lastsuccess",
        &[&base, &daemon],
        &[("E2E_BACKUP_CRON", "0 0 1 1 *")],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let out = stack.exec("backup", &[], &["stackshot", "backup"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The snapshot that run wrote, as plain restic lists it.
    let snaps = stack.snapshots();
    let newest = snaps
        .iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "stackshot")
        })
        .max_by_key(|s| s["time"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no stackshot snapshot: {snaps:?}"));
    let time: chrono::DateTime<chrono::Utc> = newest["time"].as_str().unwrap().parse().unwrap();

    let restarted_at = chrono::Utc::now().to_rfc3339();
    run(&mut docker(&["restart", &stack.container("backup")]));
    stack.wait_for_daemon();
    let port = stack.http_port();
    let health = wait_for("/healthz to say ok after the restart", 60, || {
        healthz(port).filter(|h| h["status"] == "ok")
    });
    assert_eq!(health["healthy"], true, "{health}");
    // No run since the restart: the success came from the repository.
    assert_eq!(health["last_run"], Value::Null, "{health}");
    let last: chrono::DateTime<chrono::Utc> =
        health["last_success"].as_str().unwrap().parse().unwrap();
    assert_eq!(last.timestamp_micros(), time.timestamp_micros(), "{health}");

    let (_, metrics) = http_get(port, "/metrics").expect("/metrics answers");
    let seeded = sample(&metrics, "stackshot_backup_last_success_timestamp_seconds")
        .expect("the last-success metric");
    // The exposition has millisecond precision.
    assert_eq!(
        (seeded * 1000.0).round() as i64,
        time.timestamp_millis(),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "stackshot_backup_runs_total{result=\"success\"}"),
        Some(0.0)
    );

    let logs = sidecar_logs(&stack, &restarted_at);
    let line = logs
        .lines()
        .find(|l| l.contains("last successful backup read from the repository"))
        .unwrap_or_else(|| panic!("no log line says where the last success came from:\n{logs}"));
    for l in logs.lines().filter(|l| l.contains("daemon starting")) {
        eprintln!("the daemon after its restart: {l}");
    }
    eprintln!("the daemon after its restart: {line}");
    let short = &newest["short_id"].as_str().unwrap();
    assert!(
        line.contains("source=\"repository\"") || line.contains("source=repository"),
        "{line}"
    );
    assert!(line.contains(short), "{line}");

    // A repository that cannot be read (an empty directory at /repository):
    // one warning says why, and /healthz says starting, as before.
    let empty = tempfile::tempdir().unwrap();
    mount_repository(&mut stack, empty.path());
    let warning = wait_for("the daemon's warning about the repository", 60, || {
        sidecar_logs(&stack, "").lines().find_map(|l| {
            l.contains("cannot read the last successful backup from the repository")
                .then(|| l.to_string())
        })
    });
    eprintln!("the daemon on an empty directory: {warning}");
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(warning.contains("repository=/repository"), "{warning}");
    let port = stack.http_port();
    let health = wait_for("/healthz to answer", 30, || healthz(port));
    assert_eq!(
        (&health["status"], &health["healthy"]),
        (&Value::from("starting"), &Value::from(true)),
        "{health}"
    );
    assert_eq!(health["last_success"], Value::Null, "{health}");
}

/// The sidecar's log (stdout and stderr) since `since` (all of it when empty).
fn sidecar_logs(stack: &Stack, since: &str) -> String {
    let container = stack.container("backup");
    let mut args = vec!["logs"];
    if !since.is_empty() {
        args.extend(["--since", since]);
    }
    args.push(&container);
    let logs = output(&mut docker(&args));
    format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    )
}

/// The `StartedAt` of each container of the stack, by service.
fn started(stack: &Stack, services: &[&str]) -> Vec<String> {
    services
        .iter()
        .map(|s| {
            run(&mut docker(&[
                "inspect",
                "-f",
                "{{.State.StartedAt}}",
                &stack.container(s),
            ]))
        })
        .collect()
}

/// The repository's id, as plain restic reads it.
fn repository_id(stack: &Stack) -> String {
    let out = stack.restic(&[], &["cat", "config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    config["id"].as_str().unwrap().to_string()
}

/// Points the sidecar's `/repository` at `dir` and recreates the sidecar
/// (its `/cache` volume, where the state lives, stays).
fn mount_repository(stack: &mut Stack, dir: &Path) {
    stack.set_env("E2E_REPOSITORY", dir.to_str().unwrap());
    stack.compose_ok(&["up", "-d", "--no-build", "backup"]);
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn a_replaced_repository_is_refused_until_accepted() {
    let first = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let compose = root().join("tests/stack/docker-compose.yml");
    let mut stack = Stack::up_with(
        "stackshot-e2e-repoid",
        &[&compose],
        &[("E2E_REPOSITORY", first.path().to_str().unwrap())],
    );
    stack.wait_for_databases();
    let stopped = ["app", "sidekick"];

    // The first run ever creates the repository, as before.
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["repository_initialised"], true, "{report}");
    let first_id = repository_id(&stack);

    // The NAS did not mount: an empty directory at /repository.
    mount_repository(&mut stack, empty.path());
    let before = started(&stack, &stopped);
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 1, "{report}\n{stderr}");
    let reason = report["reason"].as_str().unwrap();
    eprintln!("refused: {reason}");
    assert!(!reason.contains('\n'), "{reason}");
    for part in [
        "no restic repository at /repository,",
        &first_id[..8],
        "is the storage mounted?",
        "ACCEPT_NEW_REPOSITORY=true",
    ] {
        assert!(reason.contains(part), "{part:?} missing from: {reason}");
    }
    assert!(report["window"].is_null(), "{report}");
    assert_eq!(report["repository_initialised"], false, "{report}");
    assert!(
        is_empty(empty.path()),
        "the refused run initialised a repository"
    );
    assert_eq!(
        started(&stack, &stopped),
        before,
        "a container was restarted"
    );

    // Accepted on purpose: created, written to, and remembered from now on.
    let (code, report, stderr) = stack.backup(&[("ACCEPT_NEW_REPOSITORY", "true")]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["repository_initialised"], true, "{report}");
    let second_id = repository_id(&stack);
    assert_ne!(second_id, first_id);
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");

    // The old repository back at the same place: another id, refused.
    mount_repository(&mut stack, first.path());
    let before = started(&stack, &stopped);
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 1, "{report}\n{stderr}");
    let reason = report["reason"].as_str().unwrap();
    eprintln!("refused: {reason}");
    assert!(!reason.contains('\n'), "{reason}");
    for part in [
        "the restic repository at /repository has id",
        &first_id[..8],
        &second_id[..8],
        "ACCEPT_NEW_REPOSITORY=true",
    ] {
        assert!(reason.contains(part), "{part:?} missing from: {reason}");
    }
    assert!(report["window"].is_null(), "{report}");
    assert_eq!(
        started(&stack, &stopped),
        before,
        "a container was restarted"
    );
}
