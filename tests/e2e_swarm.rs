//! End to end on a single-node Docker Swarm: the test engine joins a swarm of
//! its own (`docker swarm init`), the stack of tests/stack/swarm/stack.yml is
//! deployed with `docker stack deploy`, and stackshot runs as a task of it.
//! `plan` names the node and the tasks it sees and takes the app's labels
//! from its service (`deploy.labels`); a backup dumps PostgreSQL through
//! `docker exec` into its task and snapshots the app's volume as host
//! `<stack>-<node>`; plain restic restores both, and `restore database
//! --replace` brings a dropped table back. A `stackshot.stop-during-backup`
//! label on a swarm service (not supported yet) is refused in one line with
//! no container touched. The engine leaves the swarm at the end, whatever
//! the outcome ([`Swarm`]'s `Drop`).

mod common;

use std::process::Output;

use common::*;

const STACK: &str = "stackshot-e2e-swarm";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The engine in a swarm of its own for the test's length; `Drop` removes
/// the stack, leaves the swarm and removes the stack's volumes.
struct Swarm;

impl Swarm {
    fn init() -> Swarm {
        let state = run(&mut docker(&[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}}",
        ]));
        assert_eq!(
            state.trim(),
            "inactive",
            "the engine is already in a swarm; this test would leave it (docker swarm leave --force) at its end, so it refuses to run"
        );
        run(&mut docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
        ]));
        Swarm
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if std::env::var_os("STACKSHOT_KEEP_STACK").is_some() {
            eprintln!("STACKSHOT_KEEP_STACK: the swarm and the stack stay up");
            return;
        }
        let _ = output(&mut docker(&["stack", "rm", STACK]));
        // The tasks' containers go after the services; the volumes after them.
        for _ in 0..60 {
            let left = output(&mut docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.stack.namespace={STACK}"),
            ]));
            if left.stdout.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        let left = output(&mut docker(&["swarm", "leave", "--force"]));
        if !left.status.success() {
            eprintln!("docker swarm leave --force: {}", text(&left));
        }
        let volumes = output(&mut docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.stack.namespace={STACK}"),
        ]));
        for v in String::from_utf8_lossy(&volumes.stdout).split_whitespace() {
            let _ = output(&mut docker(&["volume", "rm", "-f", v]));
        }
    }
}

/// The running task container of `service`.
fn task(service: &str) -> String {
    wait_for(&format!("a running task of {service}"), 120, || {
        let out = output(&mut docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.swarm.service.name={STACK}_{service}"),
            "--filter",
            "status=running",
        ]));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!id.is_empty() && !id.contains('\n')).then_some(id)
    })
}

fn exec(container: &str, cmd: &[&str]) -> Output {
    let mut c = docker(&["exec", container]);
    c.args(cmd);
    output(&mut c)
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
    let _swarm = Swarm::init();
    let deploy = output(
        docker(&[
            "stack",
            "deploy",
            "-c",
            root().join("tests/stack/swarm/stack.yml").to_str().unwrap(),
            STACK,
        ])
        .env("E2E_REPOSITORY", repo.path())
        .env("E2E_SECRETS", secrets.path()),
    );
    assert!(deploy.status.success(), "{}", text(&deploy));
    let (app, pg, backup) = (task("app"), task("postgres"), task("backup"));
    wait_for("PostgreSQL in its task", 120, || psql(&pg, "select 1"));
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
    let restic = |args: &[&str]| {
        let mut c = docker(&[
            "run",
            "--rm",
            "-v",
            &mount,
            "-v",
            &target,
            "-e",
            &format!("RESTIC_PASSWORD={RESTIC_PASSWORD}"),
            "-e",
            "RESTIC_REPOSITORY=/repository",
            "stackshot-test/base:local",
            "restic",
        ]);
        c.args(args);
        output(&mut c)
    };
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

    // stop-during-backup on a swarm service: refused in one line, before
    // anything is touched.
    run(&mut docker(&[
        "service",
        "update",
        "--label-add",
        "stackshot.stop-during-backup=true",
        &format!("{STACK}_app"),
    ]));
    let watch = EventWatch::start();
    let out = exec(&backup, &["stackshot", "backup"]);
    let events = watch.finish();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "app: stackshot.stop-during-backup on the swarm service {STACK}_app: a stopped swarm task is replaced by a new one, and scaling services to 0 for the stop window is not supported yet"
        )),
        "{}",
        text(&out)
    );
    let touched = events.touched_in(STACK);
    assert!(touched.is_empty(), "containers were touched: {touched:?}");
    assert_eq!(task("app"), app, "the app's task was replaced");
}
