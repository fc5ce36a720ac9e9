//! The Docker engine restarted inside a stop window (`systemctl restart
//! docker`, or SIGTERM to `dockerd` and a new one). The engine closes its API,
//! then stops every container: the sidecar, told to stop, cannot start the
//! app again and keeps its journal. When the engine is back it starts the
//! containers whose restart policy says so, the sidecar among them; the app
//! and sidekick, stopped by stackshot, are started by the sidecar from its
//! journal.

mod common;

use common::*;
use std::process::{Command, Stdio};

/// Restarts the engine the way this machine runs it, as `systemctl restart
/// docker` would: with systemd, that; without, `dockerd` gets SIGTERM (it
/// stops every container, then exits) and is started again with the command
/// line and environment it had. Returns when `docker info` answers.
fn restart_the_engine() {
    let systemd = Command::new("systemctl")
        .args(["is-active", "--quiet", "docker"])
        .status()
        .is_ok_and(|s| s.success());
    if systemd {
        run(Command::new("systemctl").args(["restart", "docker"]));
    } else {
        let pid = run(Command::new("pgrep").args(["-x", "dockerd"]))
            .trim()
            .to_string();
        assert!(!pid.is_empty(), "no dockerd process");
        let split = |file: &str| -> Vec<String> {
            std::fs::read(format!("/proc/{pid}/{file}"))
                .unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"))
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        let argv = split("cmdline");
        let environ = split("environ");
        run(Command::new("kill").args(["-TERM", &pid]));
        // Long: a test that gave up while dockerd was still on its way out
        // would leave the machine with no engine for every test after it.
        wait_for("dockerd to stop its containers and exit", 600, || {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
        let log = std::fs::File::create("/tmp/stackshot-e2e-dockerd.log").unwrap();
        // `setsid --fork`: dockerd in a session of its own, outliving this test.
        let mut c = Command::new("setsid");
        c.arg("--fork")
            .arg(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(environ.iter().filter_map(|kv| kv.split_once('=')))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let forked = c.status().expect("start dockerd again");
        assert!(forked.success(), "setsid --fork dockerd: {forked}");
    }
    wait_for("the engine to answer again", 120, || {
        output(&mut docker(&["info", "--format", "{{.ServerVersion}}"]))
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn the_engine_restarted_inside_a_window() {
    let _serial = serial();
    let stack = Stack::up_with(
        "stackshot-e2e-engine",
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/daemon.override.yml"),
            &root().join("tests/stack/engine-restart.override.yml"),
        ],
        &[("E2E_STOP_WINDOW", "full")],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    // The full window stays open through a big dump, long enough to hit.
    stack
        .psql("CREATE TABLE big AS SELECT g AS id, repeat('x', 250) AS payload FROM generate_series(1, 1000000) g")
        .unwrap();
    let (blob, photo) = seed_app_files(&stack);

    let child = stack.spawn_daemon_backup();
    wait_for("the window to open", 120, || {
        (stack.state("app") == "exited" && stack.state("sidekick") == "exited").then_some(())
    });
    let journal = stack.beside("backup", &["cat", "/cache/stackshot/window-journal.json"]);
    let journal = String::from_utf8_lossy(&journal.stdout).into_owned();
    for svc in ["app", "sidekick"] {
        assert!(
            journal.contains(&stack.container(svc)),
            "the journal names {svc} inside the window: {journal}"
        );
    }

    restart_the_engine();
    let _ = child.wait_with_output();

    // The sidecar is back by policy, and its daemon starts what the journal
    // names before it answers.
    wait_for("the sidecar's daemon after the engine restart", 120, || {
        stack.daemon_answers().then_some(())
    });
    for svc in ["backup", "postgres", "mariadb", "app", "sidekick"] {
        assert_eq!(
            stack.state(svc),
            "running",
            "{svc} after the engine restart"
        );
    }
    // No policy, and not stopped by stackshot: the engine leaves them down.
    for svc in ["bystander", "legacy"] {
        assert_eq!(stack.state(svc), "exited", "{svc} has no restart policy");
    }
    let journal = stack.beside(
        "backup",
        &["test", "-e", "/cache/stackshot/window-journal.json"],
    );
    assert_eq!(journal.status.code(), Some(1), "the journal is cleared");
    let status = stack.exec("backup", &[], &["stackshot", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let recovered = status.to_string();
    for svc in ["app", "sidekick"] {
        assert!(
            recovered.contains(&stack.container_name(svc))
                || recovered.contains(&stack.container(svc)),
            "the status says {svc} was recovered: {status}"
        );
    }

    // Nothing lost: the bystanders started by hand, a backup succeeds and
    // restores the app's files byte for byte.
    stack.compose_ok(&["start", "bystander", "legacy"]);
    stack.wait_for_databases();
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "after the engine restart: {report}\n{stderr}");
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
