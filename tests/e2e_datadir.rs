//! End to end: `stackshot.volumes.data-dir=true` on PostgreSQL. The backup
//! runs in the full window; after its dump the server is stopped, its data
//! directory is copied as files into the same snapshot as the dump, and it
//! is started again. Both copies are proven: the data directory, restored
//! with plain restic, starts a fresh server with the same rows, and the dump
//! loads into another.

mod common;

use common::*;

#[test]
fn a_data_directory_is_copied_with_its_server_stopped_after_its_dump() {
    let _serial = serial();
    let stack = Stack::up_overridden("stackshot-e2e-datadir", "data-dir.override.yml");
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan.contains("stackshot.volumes.data-dir on postgres"),
        "the plan does not say why the window is full:\n{plan}"
    );
    let pg = stack.container("postgres");
    let maria = stack.container("mariadb");
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 0, "backup failed: {report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["window_mode"], "full", "{report}");

    // The server stopped after its dump's exec, and started again.
    events.assert_saw(&pg, &["die", "start"]);
    assert!(
        events.first(&pg, "die") > events.last_exec(&pg, "pg_dump"),
        "stopped before its dump"
    );
    assert_eq!(stack.state("postgres"), "running");
    // MariaDB, without the label, is dumped live and never stopped.
    assert_eq!(events.actions(&maria), Vec::<String>::new());

    // One snapshot holds the dump and the data directory.
    let restored = stack.restore("latest");
    let r = restored.path();
    let data = r.join("volumes/postgres/var/lib/postgresql/data");
    assert!(
        data.join("PG_VERSION").is_file(),
        "no data directory in the snapshot"
    );
    // Copied while the server was down: a running server's directory holds
    // its postmaster.pid, which a clean shutdown removes.
    assert!(
        !data.join("postmaster.pid").exists(),
        "the data directory was copied while its server ran (postmaster.pid)"
    );
    assert!(r.join("databases/postgres/postgres-all.sql").is_file());
    // MariaDB's data directory stays out.
    assert!(!r.join("volumes/mariadb").exists());

    // The copied directory starts a server with the same rows.
    let name = "stackshot-e2e-datadir-fresh";
    let _ = output(&mut docker(&["rm", "-f", "-v", name]));
    run(&mut docker(&[
        "run",
        "-d",
        "--name",
        name,
        "-e",
        "POSTGRES_PASSWORD=unused",
        "-v",
        &format!("{}:/var/lib/postgresql/data", data.display()),
        "stackshot-test/postgres:local",
    ]));
    let fresh = FreshDb {
        name: name.to_string(),
    };
    let want = stack.psql(PG_QUERY).expect("source query");
    let got = wait_for("the copied data directory to serve", 90, || {
        let out = fresh.exec(&[], &["psql", "-U", "app", "-d", "appdb", "-Atc", PG_QUERY]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    assert_eq!(got, want, "the data directory's rows differ");
    drop(fresh);
    assert_pg_dump_restores(
        &stack,
        &r.join("databases/postgres/postgres-all.sql"),
        "stackshot-e2e-datadir-dump",
    );
}
