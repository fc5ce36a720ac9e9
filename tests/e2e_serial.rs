//! End to end: maintenance and backups one at a time (issue 38). A
//! `docker exec`'d `stackshot drill` holds the run lock (shared): a restore
//! beside it is refused in one line and stops nothing, and a backup asked
//! of the daemon meanwhile is delayed, counted as delayed, and runs when the
//! drill has ended (its window opens after the drill's end, never beside
//! it).

mod common;

use std::process::{Command, Stdio};

use common::*;

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[test]
fn a_backup_waits_for_a_drill_and_a_restore_beside_it_is_refused() {
    let stack = Stack::up_daemon("stackshot-e2e-serial");
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");

    let drill = Command::new("docker")
        .args(["exec", &stack.container("backup"), "stackshot", "drill"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The drill is under way once its throwaway containers exist.
    let of_project = format!("label=stackshot.project={}", stack.project);
    wait_for("the drill's throwaway containers", 60, || {
        let ids = run(&mut docker(&[
            "ps",
            "-q",
            "--filter",
            "label=stackshot.role=drill",
            "--filter",
            &of_project,
        ]));
        (!ids.trim().is_empty()).then_some(())
    });

    // A restore (it would stop the app) is refused beside the drill, in one
    // line, touching nothing.
    let restore = stack.exec(
        "backup",
        &[],
        &[
            "stackshot",
            "restore",
            "volumes",
            "--yes",
            "--service",
            "app",
        ],
    );
    let said = String::from_utf8_lossy(&restore.stderr).to_string();
    assert_eq!(restore.status.code(), Some(1), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    assert!(
        said.contains("another stackshot backup, restore, verify or drill is running"),
        "{said}"
    );
    assert_eq!(
        stack.state("app"),
        "running",
        "the refused restore stopped nothing"
    );
    let watch = stack.watch();
    let backup = stack.spawn_daemon_backup();
    let drilled = drill.wait_with_output().unwrap();
    let drill_ended = now_nanos();
    let backed_up = backup.wait_with_output().unwrap();
    let events = watch.finish();
    assert!(
        backed_up.status.success(),
        "the delayed backup ran: {}",
        String::from_utf8_lossy(&backed_up.stderr)
    );
    let app_stopped = events.first(&stack.container("app"), "die");
    assert!(
        app_stopped > drill_ended,
        "the backup's window opened {:.2} s before the drill ended: {}",
        (drill_ended - app_stopped) as f64 / 1e9,
        String::from_utf8_lossy(&drilled.stdout)
    );
    let metrics = http_get(stack.http_port(), "/metrics").expect("/metrics").1;
    assert_eq!(
        sample(&metrics, r#"stackshot_runs_delayed_total{task="backup"}"#),
        Some(1.0),
        "{metrics}"
    );
    for svc in ["app", "sidekick", "postgres", "mariadb"] {
        assert_eq!(stack.state(svc), "running", "{svc}");
    }
}
