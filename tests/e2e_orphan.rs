//! End to end: a `docker exec`'d restore killed (SIGKILL) inside its stop
//! window, beside the running daemon (issue 38). The daemon sees the
//! journal's owner gone and, within seconds, removes the dead restore's
//! worker and starts the app again; it is never restarted itself, and the
//! app's data is whole (the old or the restored copy, which are the same).

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn a_restore_killed_inside_its_window_is_recovered_by_the_running_daemon() {
    let stack = Stack::up_daemon("stackshot-e2e-orphan");
    // Enough data that the restore's window lasts a few seconds.
    let seed = stack.exec(
        "app",
        &[],
        &[
            "sh",
            "-c",
            "head -c 150000000 /dev/urandom > /data/big.bin && sha256sum /data/big.bin",
        ],
    );
    assert!(seed.status.success());
    let sha = String::from_utf8_lossy(&seed.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let snapshot = report["snapshots"][0]["id"]
        .as_str()
        .expect("the backup's snapshot id")
        .to_string();
    let daemon = stack.started_at("backup");
    // Held inside its window: the restore's restic is stopped (from the host)
    // as soon as it starts, by a thread watching /proc from before the
    // restore, so that a restore that ends quickly on a busy machine cannot
    // close the window first. The daemon's recovery removes its worker,
    // restic with it.
    let held = std::thread::spawn(move || stop_restic_restore_of(&snapshot, 120));

    let mut restore = Command::new("docker")
        .args([
            "exec",
            &stack.container("backup"),
            "stackshot",
            "restore",
            "volumes",
            "--yes",
            "--service",
            "app",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut opened = false;
    for _ in 0..600 {
        if stack.state("app") == "exited" {
            opened = true;
            break;
        }
        if restore.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !opened {
        let out = restore.wait_with_output().unwrap();
        panic!(
            "the restore's window never opened: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    held.join().expect("the restore's restic, stopped");
    stack.signal("backup", "KILL", "stackshot restore volumes");
    let _ = restore.wait();

    wait_for("the app started again by the daemon", 10, || {
        (stack.state("app") == "running").then_some(())
    });
    assert_eq!(
        stack.started_at("backup"),
        daemon,
        "the daemon was never restarted"
    );
    // The daemon started it, not the restore before it died.
    let logs = output(&mut docker(&["logs", &stack.container("backup")]));
    let logs =
        String::from_utf8_lossy(&logs.stderr).to_string() + &String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("started the containers of a run that died inside its stop window"),
        "the daemon says it recovered the window: {logs}"
    );
    assert!(
        workers(&stack.project).is_empty(),
        "the dead restore's worker is gone: {:?}",
        workers(&stack.project)
    );
    let journal = stack.beside(
        "backup",
        &["test", "-e", "/cache/stackshot/window-journal.json"],
    );
    assert_eq!(journal.status.code(), Some(1), "the journal is cleared");
    let now = stack.exec("app", &[], &["sha256sum", "/data/big.bin"]);
    assert!(
        String::from_utf8_lossy(&now.stdout).starts_with(&sha),
        "the app's data is whole: {}",
        String::from_utf8_lossy(&now.stdout)
    );
    // The daemon runs on: a backup through it succeeds.
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
}
