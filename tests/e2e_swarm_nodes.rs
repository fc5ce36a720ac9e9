//! End to end on a two-node Docker Swarm: the test engine is the manager,
//! a second engine (Debian's docker.io in a container of the test engine,
//! tests/bench/node-image.sh) joins as a worker, and the stack of
//! tests/stack/swarm/nodes.yml runs stackshot on both (global mode), as the
//! Swarm guide (docs/swarm.md) deploys it.
//!
//! Each node's stackshot sees and backs up only the tasks on its own node,
//! as host `<stack>-<node>`, into the one shared repository: the manager's
//! snapshot holds the manager's app and not the worker's volume, and the
//! other way round (plain restic restores each, byte for byte). The app
//! labelled stop-during-backup runs on the manager: the worker's backup
//! leaves its service alone (no service update, the same task), the
//! manager's scales it to 0 and back. Both nodes back up at once, as their
//! schedules would. On the worker, whose engine cannot read services,
//! `plan` says so, an in-place restore of a running task's volume is refused
//! in one line (only a manager may scale the service to 0) and touches
//! nothing, and `--to-volume` restores the worker's volume there.
//!
//! The stack sets `SWARM_MODE=true` (the single-node test's detects it);
//! `SWARM_MODE=false` in a task is refused in one line.
//!
//! The engine leaves the swarm and the second node is removed at the end,
//! whatever the outcome.

mod common;

use std::process::Output;

use common::swarm::*;
use common::*;

const STACK: &str = "stackshot-e2e-nodes";
const WORKER: &str = "stackshot-e2e-node2";

/// Writes `bytes` random bytes to `path` in `container` on `engine`; their
/// SHA-256.
fn seed(engine: Engine, container: &str, path: &str, bytes: usize) -> String {
    let out = engine.exec(
        container,
        &[
            "sh",
            "-c",
            &format!("head -c {bytes} /dev/urandom > {path} && sha256sum {path}"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `stackshot backup --json` in `backup` on `engine`: its report, which
/// must say success.
fn backup_on(engine: Engine, backup: &str) -> serde_json::Value {
    report_of(&engine.exec(backup, &["stackshot", "backup", "--json"]))
}

fn report_of(out: &Output) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", text(out)));
    assert_eq!(report["result"], "success", "{report}\n{}", text(out));
    report
}

/// The first line of `stackshot plan` in `backup` on `engine`, and all of it.
fn plan_on(engine: Engine, backup: &str) -> (String, String) {
    let out = engine.exec(backup, &["stackshot", "plan"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    let first = said
        .lines()
        .find(|l| l.starts_with("swarm node "))
        .unwrap_or_default()
        .to_string();
    (first, said)
}

#[test]
fn each_node_of_a_two_node_swarm_backs_up_its_own_tasks() {
    let _serial = serial();
    bench();
    let repo = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(
        secrets.path().join("restic-password"),
        format!("{RESTIC_PASSWORD}\n"),
    )
    .unwrap();
    // Declared before the swarm: the swarm is left first, then the node
    // stopped and removed.
    let node = SecondNode::start(
        WORKER,
        &[repo.path(), secrets.path()],
        &["stackshot-test/base:local", "stackshot-test/sidecar:local"],
    );
    // The manager advertises the address the node reaches it at.
    let gateway = node.gateway();
    let swarm = Swarm::init(STACK, &gateway);
    node.join(&format!("{gateway}:2377"));
    swarm.deploy("nodes.yml", repo.path(), secrets.path());
    let (manager, worker) = (Engine::Host, node.engine());
    let app_svc = format!("{STACK}_app");
    let app = manager.task(STACK, "app");
    let files = worker.task(STACK, "files");
    let backup_m = manager.task(STACK, "backup");
    let backup_w = worker.task(STACK, "backup");
    let app_sha = seed(manager, &app, "/data/app.bin", 200_000);
    let files_sha = seed(worker, &files, "/data/files.bin", 300_000);
    let (m_name, w_name) = (manager.name(), worker.name());
    assert_eq!(w_name, WORKER);
    let (m_host, w_host) = (format!("{STACK}-{m_name}"), format!("{STACK}-{w_name}"));

    // plan on each node: its own tasks only, its own host name; the worker
    // says it cannot read services.
    let (first, said) = plan_on(manager, &backup_m);
    assert!(
        first.starts_with(&format!("swarm node {m_name} (")),
        "{said}"
    );
    assert!(
        first.contains(&format!(
            "stack {STACK}: 2 task(s) on this node: app.1, backup."
        )) && first.ends_with(&format!("; backed up as host {m_host}")),
        "{said}"
    );
    assert!(said.contains("/volumes/app/data"), "{said}");
    assert!(!said.contains("/volumes/files"), "{said}");
    let (first, said) = plan_on(worker, &backup_w);
    assert!(
        first.starts_with(&format!("swarm node {w_name} (")),
        "{said}"
    );
    assert!(
        first.contains(&format!("stack {STACK}: 2 task(s) on this node: backup.")),
        "{said}"
    );
    assert!(
        first.contains(&format!(
            ", files.1; backed up as host {w_host}; a worker node"
        )),
        "{said}"
    );
    assert!(said.contains("/volumes/files/data"), "{said}");
    assert!(!said.contains("/volumes/app"), "{said}");
    // The stack sets SWARM_MODE=true; false contradicts the task stackshot
    // runs in: one line, nothing done.
    let contradicted = manager.exec_env(&backup_m, &["SWARM_MODE=false"], &["stackshot", "plan"]);
    assert!(!contradicted.status.success(), "{}", text(&contradicted));
    let said = String::from_utf8_lossy(&contradicted.stderr);
    assert!(
        said.trim().lines().last().unwrap_or_default().contains(&format!(
            "SWARM_MODE=false, but stackshot runs as a task of the swarm stack {STACK}, whose containers belong to no compose project"
        )),
        "{said}"
    );

    // The worker's backup: its own volume, and the manager's app (labelled
    // stop-during-backup, running on the manager) left alone.
    let template = service_field(&app_svc, "{{json .Spec.TaskTemplate}}");
    let watch = EventWatch::start();
    let report = backup_on(worker, &backup_w);
    let events = watch.finish();
    assert!(
        report["window"]["stopped"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let updates = |events: &Events| {
        events
            .0
            .iter()
            .filter(|e| e.kind == "service" && e.action == "update" && e.name == app_svc)
            .count()
    };
    assert_eq!(updates(&events), 0, "the worker's backup updated {app_svc}");
    assert_eq!(
        manager.task(STACK, "app"),
        app,
        "the app's task was replaced"
    );

    // The manager's backup: the app's service scaled to 0 and back; the
    // worker's task untouched.
    let watch = EventWatch::start();
    let report = backup_on(manager, &backup_m);
    let events = watch.finish();
    let stopped: Vec<&str> = report["window"]["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["container"].as_str().unwrap())
        .collect();
    assert_eq!(stopped, [app_svc.as_str()], "{report}");
    assert!(
        updates(&events) >= 2,
        "{} update(s) of {app_svc}",
        updates(&events)
    );
    events.assert_saw(&app, &["die"]);
    assert_scaled_back(&app_svc, &template);
    assert_eq!(
        worker.task(STACK, "files"),
        files,
        "the worker's task was replaced"
    );

    // Both nodes at once, as their schedules would run them.
    let both: Vec<Output> = std::thread::scope(|s| {
        let m = s.spawn(|| manager.exec(&backup_m, &["stackshot", "backup", "--json"]));
        let w = s.spawn(|| worker.exec(&backup_w, &["stackshot", "backup", "--json"]));
        vec![m.join().unwrap(), w.join().unwrap()]
    });
    let reports: Vec<serde_json::Value> = both.iter().map(report_of).collect();
    // At once: each run started before the other finished (the same kernel
    // clock on both nodes).
    let at = |r: &serde_json::Value, key: &str| {
        chrono::DateTime::parse_from_rfc3339(r[key].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{key} of {r}: {e}"))
    };
    let (m, w) = (&reports[0], &reports[1]);
    assert!(
        at(m, "started_at") < at(w, "finished_at") && at(w, "started_at") < at(m, "finished_at"),
        "the two nodes' runs did not overlap: manager {}..{}, worker {}..{}",
        at(m, "started_at"),
        at(m, "finished_at"),
        at(w, "started_at"),
        at(w, "finished_at")
    );
    assert_scaled_back(&app_svc, &template);

    // The one repository: each node's runs under its own host, each
    // snapshot with that node's volume only, byte for byte.
    let mount = format!("{}:/repository", repo.path().display());
    let snaps = restic_with(&mount, "/tmp:/unused", &["snapshots", "--json"]);
    let snaps: serde_json::Value = serde_json::from_slice(&snaps.stdout)
        .unwrap_or_else(|e| panic!("no snapshots ({e}): {}", text(&snaps)));
    let hosts = |host: &str| {
        snaps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["hostname"] == host)
            .count()
    };
    assert_eq!(
        (
            hosts(&m_host),
            hosts(&w_host),
            snaps.as_array().unwrap().len()
        ),
        (2, 2, 4),
        "{snaps}"
    );
    for (host, mine, sha, theirs) in [
        (
            &m_host,
            "volumes/app/data/app.bin",
            &app_sha,
            "volumes/files",
        ),
        (
            &w_host,
            "volumes/files/data/files.bin",
            &files_sha,
            "volumes/app",
        ),
    ] {
        let restored = tempfile::tempdir().unwrap();
        let target = format!("{}:/restore", restored.path().display());
        let r = restic_with(
            &mount,
            &target,
            &["restore", "latest", "--host", host, "--target", "/restore"],
        );
        assert!(r.status.success(), "{}", text(&r));
        assert_eq!(&sha256_file(&restored.path().join(mine)), sha, "{host}");
        assert!(
            !restored.path().join(theirs).exists(),
            "{host}'s snapshot holds {theirs}"
        );
    }

    // On the worker, a restore in place would have to stop the running
    // task, which only a manager may do: refused in one line, nothing
    // touched. Into a new volume it stops nothing, and works.
    let spoiled = worker.exec(&files, &["sh", "-c", "echo spoiled > /data/files.bin"]);
    assert!(spoiled.status.success(), "{}", text(&spoiled));
    let watch = EventWatch::start();
    let refused = worker.exec(
        &backup_w,
        &[
            "stackshot",
            "restore",
            "volumes",
            "--service",
            "files",
            "--yes",
        ],
    );
    let events = watch.finish();
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    let last = said.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("cannot restore the mounts of files: it must be stopped meanwhile")
            && last.contains("only a manager node may do, and this is a worker node; restore into a new volume instead (--to-volume NAME)"),
        "{said}"
    );
    assert!(
        events.touched_in(STACK).is_empty(),
        "{:?}",
        events.touched_in(STACK)
    );
    assert_eq!(worker.task(STACK, "files"), files);
    // The watch above sees the manager's engine only: the worker's volume
    // itself shows that the refused restore wrote nothing.
    let still = worker.exec(&files, &["cat", "/data/files.bin"]);
    assert!(
        still.status.success() && still.stdout == b"spoiled\n",
        "the refused restore changed the volume: /data/files.bin holds {} bytes, not \"spoiled\\n\" ({})",
        still.stdout.len(),
        String::from_utf8_lossy(&still.stderr)
    );
    let into = format!("{STACK}_files-restored");
    let restored = worker.exec(
        &backup_w,
        &[
            "stackshot",
            "restore",
            "volumes",
            "--service",
            "files",
            "--to-volume",
            &into,
            "--yes",
        ],
    );
    assert!(restored.status.success(), "{}", text(&restored));
    let check = output(&mut worker.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{into}:/v:ro"),
        "stackshot-test/base:local",
        "sha256sum",
        "/v/files.bin",
    ]));
    assert!(
        String::from_utf8_lossy(&check.stdout).starts_with(&files_sha),
        "{}",
        text(&check)
    );
    assert_eq!(worker.task(STACK, "files"), files);
}
