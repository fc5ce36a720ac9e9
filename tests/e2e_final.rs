//! End to end: `stackshot backup --no-restart`, the final backup before a
//! migration. On the real engine, with the sidecar running as the daemon: the
//! app and its sidekick are stopped and never started again, the databases
//! are stopped after their dumps, a restarted daemon leaves them all down and
//! says so, and the snapshot restores (files byte for byte, each dump into a
//! fresh server) once the stack is started by hand.

mod common;

use std::time::Duration;

use common::*;

const LEFT_DOWN: [&str; 4] = ["app", "sidekick", "postgres", "mariadb"];

#[test]
fn a_final_backup_leaves_the_stack_down_through_a_daemon_restart() {
    let _serial = serial();
    let project = "stackshot-e2e-final";
    let stack = Stack::up_overridden(project, "daemon.override.yml");
    stack.wait_for_daemon();
    let (blob_sha, photo_sha) = seed_app_files(&stack);
    // Ids first: a stopped container's id is read the same way afterwards.
    let ids: Vec<(&str, String)> = LEFT_DOWN
        .iter()
        .chain(&["bystander", "legacy", "backup"])
        .map(|s| (*s, stack.container(s)))
        .collect();
    let id = |svc: &str| ids.iter().find(|(s, _)| *s == svc).unwrap().1.clone();
    let mut want: Vec<String> = LEFT_DOWN.iter().map(|s| stack.container_name(s)).collect();
    want.sort();

    let watch = stack.watch();
    let out = stack.exec(
        "backup",
        &[],
        &["stackshot", "backup", "--no-restart", "--json"],
    );
    // The stack stays down: nothing may start in the seconds after the run.
    std::thread::sleep(Duration::from_secs(3));
    let events = watch.finish();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["window_mode"], "full", "{report}");
    let mut left: Vec<String> = report["window"]["left_down"]
        .as_array()
        .unwrap_or_else(|| panic!("no left_down in {report}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    left.sort();
    assert_eq!(left, want, "{report}");
    assert!(report["window"]["started"].as_array().unwrap().is_empty());

    // The engine's events: each one died and none started again; the
    // databases died only after their dumps' execs.
    for svc in LEFT_DOWN {
        let actions = events.actions(&id(svc));
        assert!(actions.iter().any(|a| a == "die"), "{svc}: {actions:?}");
        assert!(!actions.iter().any(|a| a == "start"), "{svc}: {actions:?}");
    }
    let pg = id("postgres");
    assert!(
        events.first(&pg, "die") > events.last_exec(&pg, "pg_dump"),
        "postgres stopped before its dump"
    );
    for svc in ["bystander", "legacy"] {
        assert_eq!(
            events.actions(&id(svc)),
            Vec::<String>::new(),
            "{svc} was touched"
        );
    }
    for svc in LEFT_DOWN {
        assert_eq!(stack.state(svc), "exited", "{svc}");
    }

    // The daemon restarted: it starts none of them, and says so.
    run(&mut docker(&["restart", "-t", "30", &id("backup")]));
    stack.wait_for_daemon();
    std::thread::sleep(Duration::from_secs(2));
    for svc in LEFT_DOWN {
        assert_eq!(
            stack.state(svc),
            "exited",
            "{svc} after the daemon's restart"
        );
    }
    let logs = output(&mut docker(&["logs", &id("backup")]));
    let logs =
        String::from_utf8_lossy(&logs.stderr).to_string() + &String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("left down by `stackshot backup --no-restart`; not starting them"),
        "{logs}"
    );
    let status = stack.exec("backup", &[], &["stackshot", "status"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "stackshot status: {status:?}"
    );
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    let line = status
        .lines()
        .find(|l| l.starts_with("left down by backup --no-restart"))
        .unwrap_or_else(|| panic!("status does not say what was left down:\n{status}"));
    for name in &want {
        assert!(line.contains(name.as_str()), "{line}");
    }

    // The migration's other end: the snapshot restores. Files first.
    let restored = stack.restore("latest");
    let r = restored.path();
    assert_eq!(sha256_file(&r.join("volumes/app/data/blob.bin")), blob_sha);
    assert_eq!(
        sha256_file(&r.join("volumes/app/uploads/photo.bin")),
        photo_sha
    );
    // The app stayed down: its log in the snapshot is the whole log.
    let live = output(std::process::Command::new("sh").args([
        "-c",
        &format!("docker cp {}:/data/log.txt - | tar -xO", id("app")),
    ]));
    assert!(live.status.success() && !live.stdout.is_empty());
    let snap_log = std::fs::read(r.join("volumes/app/data/log.txt")).unwrap();
    assert!(
        live.stdout == snap_log,
        "the app's log differs from the snapshot's: it ran after the backup"
    );

    // Started by hand, they are no longer reported; the dumps match them.
    stack.compose_ok(&["start"]);
    stack.wait_for_databases();
    let status = stack.exec("backup", &[], &["stackshot", "status"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "stackshot status: {status:?}"
    );
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    // It still reports (the daemon, the plan): only that line is gone.
    assert!(status.contains("daemon up since"), "{status}");
    assert!(!status.contains("left down"), "{status}");
    assert_pg_dump_restores(
        &stack,
        &r.join("databases/postgres/postgres-all.sql"),
        "stackshot-e2e-final-pg",
    );
    assert_maria_dump_restores(
        &stack,
        &r.join("databases/mariadb/shop.sql"),
        "stackshot-e2e-final-maria",
    );
}
