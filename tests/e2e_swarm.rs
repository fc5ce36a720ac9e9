//! End to end on a single-node Docker Swarm: the test engine joins a swarm of
//! its own (`docker swarm init`), the stack of tests/stack/swarm/stack.yml is
//! deployed with `docker stack deploy`, and stackshot runs as a task of it.
//! `plan` names the node and the tasks it sees and takes the app's labels
//! from its service (`deploy.labels`); a backup dumps PostgreSQL through
//! `docker exec` into its task and snapshots the app's volume as host
//! `<stack>-<node>`; plain restic restores both, and `restore database
//! --replace` brings a dropped table back. Then the app's service gets
//! `stackshot.stop-during-backup`: a backup scales it to 0 and back (the
//! service's update events, the old task's `die`, a new task, the labels
//! gone, the task template unchanged), its snapshot restores byte for byte,
//! `restore volumes` scales it down and back around the restore, eight
//! holders racing through the service API lose no hold, and after
//! a SIGKILL of stackshot's task inside the window the service stays at 0
//! until the daemon's next start scales it back from its journal. The
//! engine leaves the swarm at the end, whatever the outcome ([`common::swarm::Swarm`]'s
//! `Drop`).

mod common;

use std::process::Output;

use common::swarm::*;
use common::*;

const STACK: &str = "stackshot-e2e-swarm";

/// The running task container of `service`.
fn task(service: &str) -> String {
    Engine::Host.task(STACK, service)
}

fn exec(container: &str, cmd: &[&str]) -> Output {
    Engine::Host.exec(container, cmd)
}

fn psql(pg: &str, sql: &str) -> Option<String> {
    let out = exec(pg, &["psql", "-U", "app", "-d", "appdb", "-Atc", sql]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn a_single_node_swarm_stack_backs_up_and_restores() {
    let _serial = serial();
    bench();
    let repo = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("pg-password"), "swarm-pg-secret\n").unwrap();
    std::fs::write(
        secrets.path().join("restic-password"),
        format!("{RESTIC_PASSWORD}\n"),
    )
    .unwrap();
    // Each step's time on stderr (shown when the test fails): CI once took
    // four times as long as a machine running this test alone.
    let t0 = std::time::Instant::now();
    let step = |what: &str| eprintln!("swarm: {what} at {:.1} s", t0.elapsed().as_secs_f64());
    let swarm = Swarm::init(STACK, "127.0.0.1");
    swarm.deploy("stack.yml", repo.path(), secrets.path());
    let (app, pg, backup) = (task("app"), task("postgres"), task("backup"));
    // Over TCP: the entrypoint's first server, while it initialises, answers
    // on the socket alone, and is stopped right after.
    wait_for("PostgreSQL in its task", 120, || {
        let out = exec(&pg, &strs(&psql_tcp("swarm-pg-secret", "select 1")));
        out.status.success().then_some(())
    });
    psql(
        &pg,
        "create table notes (id int primary key, body text); insert into notes select g, 'note ' || g from generate_series(1, 500) g",
    )
    .expect("seed");
    let rows = psql(&pg, "select count(*), sum(id) from notes").unwrap();
    let seeded = exec(
        &app,
        &[
            "sh",
            "-c",
            "head -c 200000 /dev/urandom > /data/seed.bin && sha256sum /data/seed.bin",
        ],
    );
    assert!(seeded.status.success(), "{}", text(&seeded));
    let seed_sha = String::from_utf8_lossy(&seeded.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let node = run(&mut docker(&["info", "--format", "{{.Name}}"]))
        .trim()
        .to_string();
    let host = format!("{STACK}-{node}");

    step("deployed and seeded");
    // plan: the node, the tasks it sees, the service's labels read.
    let plan = exec(&backup, &["stackshot", "plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let said = text(&plan);
    let first = said.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("swarm node {node} (")), "{said}");
    assert!(
        first.ends_with(&format!(
            "stack {STACK}: 3 task(s) on this node: app.1, backup.1, postgres.1; backed up as host {host}"
        )),
        "{said}"
    );
    assert!(said.contains("/volumes/app/data"), "{said}");

    // The backup: the dump through exec in the task, the app's volume, one
    // snapshot as this node's host; nothing stopped.
    let watch = EventWatch::start();
    let out = exec(&backup, &["stackshot", "backup", "--json"]);
    let events = watch.finish();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", text(&out)));
    assert_eq!(report["result"], "success", "{report}\n{}", text(&out));
    assert_eq!(report["dumps"].as_array().unwrap().len(), 1, "{report}");
    events.assert_saw_exec(&pg, "pg_dumpall");
    let touched = events.touched_in(STACK);
    assert!(touched.is_empty(), "containers were touched: {touched:?}");

    // Plain restic: one snapshot of this node, the file and the dump in it.
    let mount = format!("{}:/repository", repo.path().display());
    let restored = tempfile::tempdir().unwrap();
    let target = format!("{}:/restore", restored.path().display());
    let restic = |args: &[&str]| restic_with(&mount, &target, args);
    let snaps = restic(&["snapshots", "--json"]);
    let snaps: serde_json::Value = serde_json::from_slice(&snaps.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    assert_eq!(snaps[0]["hostname"], host.as_str(), "{snaps}");
    let r = restic(&["restore", "latest", "--target", "/restore"]);
    assert!(r.status.success(), "{}", text(&r));
    assert_eq!(
        sha256_file(&restored.path().join("volumes/app/data/seed.bin")),
        seed_sha
    );
    let dump = std::fs::read_to_string(restored.path().join("databases/postgres/postgres-all.sql"))
        .unwrap();
    assert!(
        dump.contains("CREATE TABLE public.notes"),
        "no notes table in the dump"
    );

    step("first backup checked");
    // restore database --replace, in the swarm, from this node's run.
    psql(&pg, "drop table notes").unwrap();
    let back = exec(
        &backup,
        &[
            "stackshot",
            "restore",
            "database",
            "--service",
            "postgres",
            "--replace",
        ],
    );
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(
        psql(&pg, "select count(*), sum(id) from notes").as_deref(),
        Some(rows.as_str())
    );

    step("database restored");
    // stop-during-backup on a swarm service: the window scales it to 0 and
    // back. (A label on the service is no part of its tasks: adding it
    // replaces no task.)
    let app_svc = format!("{STACK}_app");
    run(&mut docker(&[
        "service",
        "update",
        "--label-add",
        "stackshot.stop-during-backup=true",
        &app_svc,
    ]));
    assert_eq!(task("app"), app, "a service label replaced the app's task");
    let template = service_field(&app_svc, "{{json .Spec.TaskTemplate}}");
    let plan = exec(&backup, &["stackshot", "plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout)
        .unwrap_or_else(|e| panic!("no plan ({e}): {}", text(&plan)));
    assert_eq!(
        plan["stop"][0]["id"],
        format!("swarm-service:{app_svc}"),
        "{plan}"
    );
    let written = exec(
        &app,
        &[
            "sh",
            "-c",
            "head -c 300000 /dev/urandom > /data/window.bin && sha256sum /data/window.bin",
        ],
    );
    let window_sha = String::from_utf8_lossy(&written.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("{}", text(&written)))
        .to_string();
    let watch = EventWatch::start();
    let out = exec(&backup, &["stackshot", "backup", "--json"]);
    let events = watch.finish();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", text(&out)));
    assert_eq!(report["result"], "success", "{report}\n{}", text(&out));
    eprintln!(
        "swarm, {} window: {} s from the scale-down to a running task again (scaled down and its task gone in {} s, back and running in {} s)",
        report["window_mode"],
        report["window"]["seconds"],
        report["window"]["stopped"][0]["seconds"],
        report["window"]["started"][0]["seconds"]
    );
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|t| t["container"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&report["window"]["stopped"]),
        [app_svc.as_str()],
        "{report}"
    );
    assert_eq!(
        names(&report["window"]["started"]),
        [app_svc.as_str()],
        "{report}"
    );
    // The engine saw the service scaled down and up (service updates), the
    // old task's container die, and a new task start; the database's task
    // was not touched.
    let updates = events
        .0
        .iter()
        .filter(|e| e.kind == "service" && e.action == "update" && e.name == app_svc)
        .count();
    assert!(updates >= 2, "{updates} update event(s) of {app_svc}");
    events.assert_saw(&app, &["die"]);
    let new_app = task("app");
    assert_ne!(new_app, app, "the app's task was not replaced");
    assert_eq!(
        events.actions(&pg),
        Vec::<String>::new(),
        "PostgreSQL was touched"
    );
    assert_scaled_back(&app_svc, &template);
    step("window backup done");
    // The snapshot holds the file as it was, the dump beside it.
    let restored = tempfile::tempdir().unwrap();
    let target = format!("{}:/restore", restored.path().display());
    let r = restic_with(
        &mount,
        &target,
        &["restore", "latest", "--target", "/restore"],
    );
    assert!(r.status.success(), "{}", text(&r));
    assert_eq!(
        sha256_file(&restored.path().join("volumes/app/data/window.bin")),
        window_sha
    );
    assert!(
        restored
            .path()
            .join("databases/postgres/postgres-all.sql")
            .exists()
    );

    step("window snapshot checked");
    // restore volumes: the app's service is scaled to 0 while its volume is
    // put back, then scaled back.
    let spoiled = exec(&new_app, &["sh", "-c", "echo spoiled > /data/window.bin"]);
    assert!(spoiled.status.success(), "{}", text(&spoiled));
    let back = exec(
        &backup,
        &[
            "stackshot",
            "restore",
            "volumes",
            "--service",
            "app",
            "--yes",
        ],
    );
    assert!(back.status.success(), "{}", text(&back));
    assert!(
        text(&back).contains(&format!("stopped and started again: {app_svc}")),
        "{}",
        text(&back)
    );
    assert_scaled_back(&app_svc, &template);
    let third_app = task("app");
    assert_ne!(
        third_app, new_app,
        "the app was not stopped for the restore"
    );
    let sha = exec(&third_app, &["sha256sum", "/data/window.bin"]);
    assert!(
        String::from_utf8_lossy(&sha.stdout).starts_with(&window_sha),
        "{}",
        text(&sha)
    );

    step("volumes restored");
    // Several nodes holding the service at once, against the engine's own
    // version check.
    race_of_holders(&app_svc, &template);

    step("race of holders done");
    // SIGKILL drill: stackshot's task dies inside the window (the app takes
    // 8 s to stop); the service stays at 0, held by this node, until
    // stackshot starts again: the daemon's start-up lets go from its journal
    // and scales the service back.
    let slow = exec(&task("app"), &["touch", "/data/slow-stop"]);
    assert!(slow.status.success(), "{}", text(&slow));
    // Its output goes to a file: if the run ends before the hold is seen,
    // the test says why instead of waiting out its time.
    let said = tempfile::NamedTempFile::new().unwrap();
    let mut child = docker(&["exec", &backup, "stackshot", "backup"])
        .stdout(said.reopen().unwrap())
        .stderr(said.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut held_at_0 = false;
    for _ in 0..120 {
        held_at_0 = service_field(&app_svc, "{{.Spec.Mode.Replicated.Replicas}}") == "0"
            && held_by(&app_svc).is_some();
        if held_at_0 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let ended = child.try_wait().unwrap();
    assert!(
        held_at_0,
        "the app's service was not held at 0 ({}); the backup said:\n{}\nthe service: {}",
        match ended {
            Some(status) => format!("the backup ended first: {status}"),
            None => "not within 120 s".to_string(),
        },
        std::fs::read_to_string(said.path()).unwrap_or_default(),
        service_field(&app_svc, "{{json .Spec.Labels}} {{json .Spec.Mode}}")
    );
    run(&mut docker(&["kill", &backup]));
    let _ = child.wait();
    let node_id = run(&mut docker(&["info", "--format", "{{.Swarm.NodeID}}"]))
        .trim()
        .to_string();
    assert_eq!(held_by(&app_svc), Some(node_id), "held by this node");
    assert_eq!(
        service_field(&app_svc, "{{.Spec.Mode.Replicated.Replicas}}"),
        "0",
        "the kill came after the window closed"
    );
    step("killed inside the window");
    // The task comes back as the daemon (what a stack runs), on the same
    // node and cache volume: its start-up recovers.
    run(&mut docker(&[
        "service",
        "update",
        "--detach",
        "--args",
        "daemon",
        &format!("{STACK}_backup"),
    ]));
    wait_for("the app's service scaled back by the daemon", 180, || {
        (service_field(&app_svc, "{{.Spec.Mode.Replicated.Replicas}}") == "1"
            && held_by(&app_svc).is_none())
        .then_some(())
    });
    assert_scaled_back(&app_svc, &template);
    let daemon = task("backup");
    assert_ne!(daemon, backup);
    let logs = text(&output(&mut docker(&["logs", &daemon])));
    assert!(
        logs.contains("a previous run died inside its stop window"),
        "{logs}"
    );
    step("scaled back by the daemon");
    // The journal goes once the service runs a task again (the daemon waits
    // for one before it closes the journal).
    wait_for("the daemon to remove its journal", 90, || {
        // From beside the daemon's task: its image has no shell nor `test`.
        let journal = beside(
            &daemon,
            &["test", "-e", "/cache/stackshot/window-journal.json"],
        );
        (journal.status.code() == Some(1)).then_some(())
    });
}

/// Eight holders (as eight nodes would) race to hold `service` at 0 through
/// the service API, then let go: every hold is kept (none lost to another
/// node's update: the compare-and-swap), the first one's replica count is
/// recorded, and the service stays at 0 until the last one lets go.
fn race_of_holders(service: &str, template: &str) {
    use stackshot::engine::scale::{self, Release};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let nodes: Vec<String> = (0..8).map(|i| format!("race-node-{i}")).collect();
    let race = |nodes: &[String], hold: bool| {
        let mut set = tokio::task::JoinSet::new();
        for node in nodes {
            let (docker, service, node) = (docker.clone(), service.to_string(), node.clone());
            set.spawn(async move {
                if hold {
                    scale::hold_as(&docker, &service, &node)
                        .await
                        .map(|n| format!("{n:?}"))
                } else {
                    scale::release_as(&docker, &service, &node)
                        .await
                        .map(|r| format!("{r:?}"))
                }
            });
        }
        let mut out: Vec<String> = rt
            .block_on(set.join_all())
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{e:#}")))
            .collect();
        out.sort();
        out
    };
    let held = race(&nodes, true);
    // One holder found the service at 1 replica, the others at 0.
    assert_eq!(
        held.iter().filter(|n| *n == "Some(1)").count(),
        1,
        "{held:?}"
    );
    assert_eq!(
        held.iter().filter(|n| *n == "Some(0)").count(),
        7,
        "{held:?}"
    );
    let mut by: Vec<String> = held_by(service)
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    by.sort();
    assert_eq!(by, nodes, "a hold was lost");
    let labels = service_field(service, "{{json .Spec.Labels}}");
    assert!(
        labels.contains(r#""stackshot.scaled.from":"1""#),
        "{labels}"
    );
    assert_eq!(
        service_field(service, "{{.Spec.Mode.Replicated.Replicas}}"),
        "0"
    );
    let released = race(&nodes[..7], false);
    assert!(
        released.iter().all(|r| r.starts_with("StillHeld(")),
        "{released:?}"
    );
    assert_eq!(held_by(service).as_deref(), Some("race-node-7"));
    assert_eq!(
        service_field(service, "{{.Spec.Mode.Replicated.Replicas}}"),
        "0"
    );
    let last = rt
        .block_on(scale::release_as(&docker, service, "race-node-7"))
        .unwrap();
    assert_eq!(last, Release::ScaledBack(1));
    assert_scaled_back(service, template);
}
