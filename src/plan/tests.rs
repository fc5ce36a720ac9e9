//! Plan rules, on `docker inspect` JSON recorded from the end-to-end test stack
//! (tests/fixtures/stack-inspect.json: projects `stackshot-e2e` and
//! `stackshot-e2e-other`), varied per rule.

use super::*;
use crate::container::{Mount, ROLE_LABEL, from_inspect_json};

pub(super) fn fixture() -> Vec<ContainerInfo> {
    from_inspect_json(include_str!("../../tests/fixtures/stack-inspect.json"))
        .expect("fixture parses")
}

pub(super) fn svc<'a>(cs: &'a mut [ContainerInfo], service: &str) -> &'a mut ContainerInfo {
    cs.iter_mut()
        .find(|c| c.service == service)
        .unwrap_or_else(|| panic!("no {service} in fixture"))
}

pub(super) fn opts(cs: &[ContainerInfo]) -> PlanOptions {
    PlanOptions {
        project: "stackshot-e2e".into(),
        host: "stackshot-e2e".into(),
        atomic: true,
        include_all_projects: false,
        exclude_bind_mounts: false,
        self_id: cs
            .iter()
            .find(|c| c.service == "backup")
            .map(|c| c.id.clone()),
        full_window: None,
        append_only: false,
        copy: None,
        freeze: false,
    }
}

fn services<T>(items: &[T], f: impl Fn(&T) -> &ContainerRef) -> Vec<String> {
    items.iter().map(|i| f(i).service.clone()).collect()
}

fn excluded(plan: &Plan, service: &str, mount: Option<&str>) -> Option<ExcludeReason> {
    plan.excluded
        .iter()
        .find(|e| e.container.service == service && e.mount.as_deref() == mount)
        .map(|e| e.reason)
}

/// Asserts that one of the plan's errors contains `needle`, on one line.
fn assert_error(plan: &Plan, needle: &str) {
    assert!(
        plan.errors
            .iter()
            .any(|e| e.contains(needle) && !e.contains('\n')),
        "no one-line error with {needle:?}: {:?}",
        plan.errors
    );
}

/// The fixture's plan with each `(service, label, value)` added.
fn labelled(labels: &[(&str, &str, &str)]) -> Plan {
    let mut cs = fixture();
    for (service, key, value) in labels {
        svc(&mut cs, service)
            .labels
            .insert(key.to_string(), value.to_string());
    }
    build(&opts(&cs), &cs)
}

/// The plan's dump of `service`.
fn dump<'a>(plan: &'a Plan, service: &str) -> &'a DumpPlan {
    plan.dumps
        .iter()
        .find(|d| d.container.service == service)
        .unwrap_or_else(|| panic!("no dump of {service}: {:?}", plan.dumps))
}

fn paths(plan: &Plan) -> Vec<String> {
    plan.volumes
        .iter()
        .map(|v| v.snapshot_path.clone())
        .collect()
}

#[test]
fn fixture_stack() {
    let cs = fixture();
    let plan = build(&opts(&cs), &cs);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    let stop: Vec<(String, usize)> = plan
        .stop
        .iter()
        .map(|s| (s.container.service.clone(), s.wave))
        .collect();
    assert_eq!(stop, [("sidekick".into(), 0), ("app".into(), 1)]);
    assert_eq!(
        services(&plan.dumps, |d| &d.container),
        ["mariadb", "postgres"]
    );
    assert_eq!(plan.dumps[0].outputs, ["/databases/mariadb/shop.sql"]);
    assert_eq!(
        plan.dumps[1].outputs,
        ["/databases/postgres/postgres-all.sql"]
    );
    assert_eq!(
        plan.dumps[1].credentials,
        Credentials {
            user: CredentialSource::Env {
                var: "POSTGRES_USER".into()
            },
            password: CredentialSource::Env {
                var: "POSTGRES_PASSWORD".into()
            },
        }
    );
    assert_eq!(
        paths(&plan),
        [
            "/volumes/app/data",
            "/volumes/app/uploads",
            "/volumes/legacy/srv/legacy",
            "/volumes/postgres/docker-entrypoint-initdb.d"
        ]
    );
    assert_eq!(
        excluded(&plan, "app", Some("/data-cache")),
        Some(ExcludeReason::Excluded)
    );
    assert_eq!(
        excluded(&plan, "postgres", Some("/var/lib/postgresql/data")),
        Some(ExcludeReason::DatabaseDataDirectory)
    );
    assert_eq!(
        excluded(&plan, "bystander", None),
        Some(ExcludeReason::NoLabel)
    );
    let all = serde_json::to_string(&plan).unwrap();
    assert!(!all.contains("intruder"), "other project leaked: {all}");
    assert!(
        !all.contains("\"backup\""),
        "the sidecar itself is in the plan: {all}"
    );
    assert!(
        !all.contains("pg-secret-password"),
        "a secret leaked: {all}"
    );
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(plan.warnings[0].contains("stack-back.volumes=true"));
}

#[test]
fn all_projects_widen_scope_and_paths() {
    let cs = fixture();
    let mut o = opts(&cs);
    o.include_all_projects = true;
    let plan = build(&o, &cs);
    assert!(
        paths(&plan).contains(&"/volumes/stackshot-e2e-other/intruder/var/intruder".to_string())
    );
    assert!(paths(&plan).contains(&"/volumes/stackshot-e2e/app/data".to_string()));
    assert_eq!(
        plan.dumps[0].outputs,
        ["/databases/stackshot-e2e/mariadb/shop.sql"]
    );
    assert!(services(&plan.stop, |s| &s.container).contains(&"intruder".to_string()));
}

#[test]
fn never_ourselves_workers_or_one_offs() {
    let mut cs = fixture();
    svc(&mut cs, "app").oneoff = true;
    svc(&mut cs, "legacy")
        .labels
        .insert(ROLE_LABEL.into(), "worker".into());
    let mut o = opts(&cs);
    let plan = build(&o, &cs);
    let all = serde_json::to_string(&plan).unwrap();
    assert!(
        !all.contains("\"app\"") && !all.contains("\"legacy\""),
        "{all}"
    );
    // Without self_id the sidecar would be an unlabelled container like any other.
    o.self_id = None;
    let plan = build(&o, &cs);
    assert_eq!(
        excluded(&plan, "backup", None),
        Some(ExcludeReason::NoLabel)
    );
}

#[test]
fn database_is_never_stopped() {
    let mut cs = fixture();
    svc(&mut cs, "postgres")
        .labels
        .insert("stackshot.stop-during-backup".into(), "true".into());
    let plan = build(&opts(&cs), &cs);
    assert!(!services(&plan.stop, |s| &s.container).contains(&"postgres".to_string()));
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("stop label ignored on a database container"))
    );
}

#[test]
fn exclude_bind_mounts() {
    let cs = fixture();
    let mut o = opts(&cs);
    o.exclude_bind_mounts = true;
    let plan = build(&o, &cs);
    assert_eq!(
        paths(&plan),
        ["/volumes/app/data", "/volumes/legacy/srv/legacy"]
    );
    assert_eq!(
        excluded(&plan, "app", Some("/uploads")),
        Some(ExcludeReason::BindMountExcluded)
    );
}

#[test]
fn include_filter_on_destination_or_volume_name() {
    let mut cs = fixture();
    let app = svc(&mut cs, "app");
    app.labels.insert(
        "stackshot.volumes.include".into(),
        "*app-data, /nowhere".into(),
    );
    let plan = build(&opts(&cs), &cs);
    assert!(paths(&plan).contains(&"/volumes/app/data".to_string()));
    assert_eq!(
        excluded(&plan, "app", Some("/uploads")),
        Some(ExcludeReason::NotIncluded)
    );
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("\"/nowhere\" matches no mount")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn pgdata_moves_the_data_directory() {
    let mut cs = fixture();
    let pg = svc(&mut cs, "postgres");
    pg.pgdata = Some("/docker-entrypoint-initdb.d/pgdata".into());
    let plan = build(&opts(&cs), &cs);
    assert_eq!(
        excluded(&plan, "postgres", Some("/docker-entrypoint-initdb.d")),
        Some(ExcludeReason::DatabaseDataDirectory)
    );
    assert!(paths(&plan).contains(&"/volumes/postgres/var/lib/postgresql/data".to_string()));
}

#[test]
fn same_volume_twice_is_backed_up_once() {
    let mut cs = fixture();
    let app_data = svc(&mut cs, "app")
        .mounts
        .iter()
        .find(|m| m.destination == "/data")
        .unwrap()
        .clone();
    svc(&mut cs, "legacy").mounts.push(Mount {
        destination: "/mnt/shared".into(),
        ..app_data
    });
    let plan = build(&opts(&cs), &cs);
    assert_eq!(
        excluded(&plan, "legacy", Some("/mnt/shared")),
        Some(ExcludeReason::Duplicate)
    );
}

#[test]
fn sockets_and_tmpfs_are_left_out() {
    let mut cs = fixture();
    let legacy = svc(&mut cs, "legacy");
    legacy.mounts.push(Mount {
        kind: MountKind::Bind,
        name: None,
        source: "/var/run/docker.sock".into(),
        destination: "/var/run/docker.sock".into(),
        rw: true,
    });
    legacy.mounts.push(Mount {
        kind: MountKind::Other,
        name: None,
        source: String::new(),
        destination: "/run/tmp".into(),
        rw: true,
    });
    let plan = build(&opts(&cs), &cs);
    assert_eq!(
        excluded(&plan, "legacy", Some("/var/run/docker.sock")),
        Some(ExcludeReason::Socket)
    );
    assert_eq!(
        excluded(&plan, "legacy", Some("/run/tmp")),
        Some(ExcludeReason::UnsupportedMountType)
    );
}

#[test]
fn labelled_without_mounts_warns() {
    let mut cs = fixture();
    let b = svc(&mut cs, "bystander");
    b.mounts.clear();
    b.labels.insert("stackshot.volumes".into(), "true".into());
    let plan = build(&opts(&cs), &cs);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("bystander") && w.contains("no volumes or bind mounts"))
    );
}

#[test]
fn compose_v2_depends_on_orders_waves_transitively() {
    let mut cs = fixture();
    // bystander → legacy → app (compose v2 labels); app and bystander stop, legacy does not.
    svc(&mut cs, "bystander").depends_on = vec!["legacy".into()];
    svc(&mut cs, "bystander")
        .labels
        .insert("stackshot.stop-during-backup".into(), "true".into());
    svc(&mut cs, "legacy").depends_on = vec!["app".into()];
    let plan = build(&opts(&cs), &cs);
    let stop: Vec<(String, usize)> = plan
        .stop
        .iter()
        .map(|s| (s.container.service.clone(), s.wave))
        .collect();
    assert_eq!(
        stop,
        [
            ("bystander".into(), 0),
            ("sidekick".into(), 0),
            ("app".into(), 1)
        ]
    );
    // bystander starts after app (through legacy, which is not stopped); so
    // does sidekick (its own depends_on); app after nothing.
    let app_id = plan.stop[2].container.id.clone();
    let after: Vec<&[String]> = plan.stop.iter().map(|s| s.after.as_slice()).collect();
    assert_eq!(
        after,
        [
            std::slice::from_ref(&app_id),
            std::slice::from_ref(&app_id),
            &[]
        ]
    );
}

#[test]
fn depends_on_label_is_parsed() {
    let mut raw: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../tests/fixtures/stack-inspect.json")).unwrap();
    raw[0]["Config"]["Labels"]["com.docker.compose.depends_on"] =
        "db:service_healthy:false,cache:service_started:true".into();
    let c = crate::container::from_inspect_json(&serde_json::to_string(&raw).unwrap()).unwrap();
    assert_eq!(c[0].depends_on, ["db", "cache"]);
}

#[test]
fn dependency_cycle_is_reported_not_fatal() {
    let mut cs = fixture();
    svc(&mut cs, "app").depends_on = vec!["sidekick".into()];
    let plan = build(&opts(&cs), &cs);
    assert_eq!(plan.stop.len(), 2);
    assert!(
        plan.warnings.iter().any(|w| w.contains("dependency cycle")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn bad_labels_are_errors() {
    let mut cs = fixture();
    svc(&mut cs, "app")
        .labels
        .insert("stackshot.volumes".into(), "yes please".into());
    svc(&mut cs, "legacy")
        .labels
        .insert("stackshot.volumes.exclude".into(), "[unclosed".into());
    svc(&mut cs, "postgres")
        .labels
        .insert("stackshot.databases".into(), "appdb,../etc".into());
    let plan = build(&opts(&cs), &cs);
    assert!(!plan.is_ok());
    assert_eq!(plan.errors.len(), 3, "{:?}", plan.errors);
    assert!(plan.errors[0].contains("stackshot.volumes=\"yes please\" is not a boolean"));
    assert!(
        plan.errors
            .iter()
            .any(|e| e.contains("bad glob \"[unclosed\""))
    );
    assert!(plan.errors.iter().any(|e| e.contains("\"../etc\"")));
}

#[test]
fn replicas_get_numbered_paths() {
    let mut cs = fixture();
    let mut second = svc(&mut cs, "legacy").clone();
    second.id = "f".repeat(64);
    second.name = "stackshot-e2e_legacy_2".into();
    second.number = 2;
    second.mounts[0].name = Some("anon-volume".into());
    cs.push(second);
    let plan = build(&opts(&cs), &cs);
    let p = paths(&plan);
    assert!(
        p.contains(&"/volumes/legacy-1/srv/legacy".to_string()),
        "{p:?}"
    );
    assert!(
        p.contains(&"/volumes/legacy-2/srv/legacy".to_string()),
        "{p:?}"
    );
}

#[test]
fn mysql_credentials_fall_back_and_warn() {
    let mut cs = fixture();
    let m = svc(&mut cs, "mariadb");
    m.env_names = vec!["MYSQL_USER".into(), "MYSQL_PASSWORD_FILE".into()];
    let plan = build(&opts(&cs), &cs);
    assert_eq!(
        plan.dumps[0].credentials,
        Credentials {
            user: CredentialSource::Env {
                var: "MYSQL_USER".into()
            },
            password: CredentialSource::FileInContainer {
                var: "MYSQL_PASSWORD_FILE".into()
            },
        }
    );
    svc(&mut cs, "mariadb").env_names.clear();
    let plan = build(&opts(&cs), &cs);
    assert_eq!(plan.dumps[0].credentials.password, CredentialSource::None);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("without a password"))
    );
}

#[test]
fn stopped_database_warns_and_stopped_app_stays_stopped() {
    let mut cs = fixture();
    svc(&mut cs, "postgres").running = false;
    svc(&mut cs, "app").running = false;
    let plan = build(&opts(&cs), &cs);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("postgres") && w.contains("its dump will fail"))
    );
    assert!(
        !plan
            .stop
            .iter()
            .find(|s| s.container.service == "app")
            .unwrap()
            .running
    );
}

#[test]
fn nothing_to_back_up_warns() {
    let cs: Vec<ContainerInfo> = fixture()
        .into_iter()
        .filter(|c| c.service == "bystander" || c.service == "backup")
        .collect();
    let plan = build(&opts(&cs), &cs);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.starts_with("nothing to back up"))
    );
}

#[test]
fn table_names_every_section() {
    let cs = fixture();
    let text = render_table(&build(&opts(&cs), &cs));
    for needle in [
        "Plan for compose project \"stackshot-e2e\" (restic host \"stackshot-e2e\", atomic: one snapshot of /volumes and /databases)\n",
        "  0     sidekick",
        "/databases/postgres/postgres-all.sql",
        "password MARIADB_ROOT_PASSWORD_FILE (file in container)",
        "/volumes/app/uploads",
        "database data directory",
        "Warnings:",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn dumps_are_pinned_unless_the_window_is_full() {
    let mut cs = fixture();
    let plan = build(&opts(&cs), &cs);
    assert_eq!(plan.window, "short");
    assert!(
        plan.dumps
            .iter()
            .all(|d| d.pinned && d.window_reason.is_none())
    );
    assert!(render_table(&plan).contains("pinned at the stop, dumped after the window"));

    // One database labelled stackshot.window=full is dumped inside the window.
    svc(&mut cs, "mariadb")
        .labels
        .insert("stackshot.window".into(), "full".into());
    let plan = build(&opts(&cs), &cs);
    let maria = plan
        .dumps
        .iter()
        .find(|d| d.container.service == "mariadb")
        .unwrap();
    assert!(!maria.pinned);
    assert_eq!(
        maria.window_reason.as_deref(),
        Some("label stackshot.window=full")
    );
    assert!(
        plan.dumps
            .iter()
            .find(|d| d.container.service == "postgres")
            .unwrap()
            .pinned
    );
    assert!(render_table(&plan).contains("inside the window: label stackshot.window=full"));

    // STOP_WINDOW=full: everything inside, and the plan says why.
    let mut o = opts(&cs);
    o.full_window = Some("STOP_WINDOW=full".into());
    let plan = build(&o, &cs);
    assert_eq!(plan.window, "full");
    assert!(plan.dumps.iter().all(|d| !d.pinned));
    assert!(
        render_table(&plan)
            .contains("Stop window: full (dumps and files inside it): STOP_WINDOW=full")
    );

    // APPEND_ONLY=true: the plan says what stays and whose retention is.
    assert!(!render_table(&plan).contains("append-only"));
    o.append_only = true;
    let plan = build(&o, &cs);
    assert!(plan.append_only);
    assert!(render_table(&plan).contains(
        "Repository: append-only (APPEND_ONLY=true): a short-window run's part snapshots stay, tagged stackshot-part; retention belongs on the server"
    ));

    // COPY_REPOSITORY: the plan names the copy, when it runs, what it keeps.
    assert!(!render_table(&plan).contains("Copy:"));
    assert!(!serde_json::to_string(&plan).unwrap().contains("\"copy\""));
    o.copy = Some(crate::config::copy::CopyShown {
        repository: "s3:http://s3:8333/offsite".into(),
        when: "after each successful run".into(),
        retention: "--keep-last 3".into(),
    });
    let plan = build(&o, &cs);
    assert!(render_table(&plan).contains(
        "Copy: each successful run copied to s3:http://s3:8333/offsite (after each successful run), retention there: --keep-last 3"
    ));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["copy"]["repository"], "s3:http://s3:8333/offsite");
}

#[test]
fn crafted_names_are_refused_before_anything_is_planned() {
    let mut cs = fixture();
    svc(&mut cs, "app").service = "../../etc".into();
    let plan = build(&opts(&cs), &cs);
    assert!(!plan.is_ok());
    assert!(
        plan.errors.iter().any(|e| e.starts_with("container \"stackshot-e2e_app_1\": compose service label \"../../etc\" cannot be used: it contains '/'; accepted: ")),
        "{:?}",
        plan.errors
    );
    assert!(
        plan.volumes.iter().all(|v| !v.snapshot_path.contains("..")),
        "{:?}",
        paths(&plan)
    );
    assert!(plan.stop.iter().all(|s| s.container.service != "../../etc"));

    let mut cs = fixture();
    svc(&mut cs, "app").mounts[0].destination = "/data/../../srv".into();
    let plan = build(&opts(&cs), &cs);
    assert!(
        plan.errors.iter().any(|e| e.contains(
            "mount destination \"/data/../../srv\" cannot be used: it has a '.' or '..' component"
        )),
        "{:?}",
        plan.errors
    );

    let mut cs = fixture();
    svc(&mut cs, "app")
        .labels
        .insert("stackshot.volumes.exclude".into(), "../*,/data\nx".into());
    let plan = build(&opts(&cs), &cs);
    let globs: Vec<&String> = plan.errors.iter().filter(|e| e.contains("glob")).collect();
    assert_eq!(globs.len(), 2, "{:?}", plan.errors);
    assert!(
        globs.iter().all(|e| !e.contains('\n')),
        "one line each: {globs:?}"
    );
}

#[test]
fn database_names_with_quotes_and_spaces_are_planned_control_characters_are_not() {
    let mut cs = fixture();
    svc(&mut cs, "postgres")
        .labels
        .insert("stackshot.databases".into(), "my shop,o'brien".into());
    let plan = build(&opts(&cs), &cs);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    let pg = plan
        .dumps
        .iter()
        .find(|d| d.container.service == "postgres")
        .unwrap();
    assert_eq!(pg.databases, ["my shop", "o'brien"]);
    let mut cs = fixture();
    svc(&mut cs, "postgres")
        .labels
        .insert("stackshot.databases".into(), "shop\u{7}".into());
    assert!(!build(&opts(&cs), &cs).is_ok());
}

#[test]
fn redis_is_one_rdb_dumped_inside_the_window() {
    let mut cs = fixture();
    let r = svc(&mut cs, "bystander");
    r.labels.insert("stackshot.redis".into(), "true".into());
    r.env_names = vec!["REDIS_PASSWORD_FILE".into()];
    let plan = build(&opts(&cs), &cs);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    let d = dump(&plan, "bystander");
    assert_eq!(d.engine, Engine::Redis);
    assert_eq!(d.outputs, ["/databases/bystander/dump.rdb"]);
    assert_eq!(
        d.credentials.password,
        CredentialSource::FileInContainer {
            var: "REDIS_PASSWORD_FILE".into()
        }
    );
    assert!(!d.pinned);
    assert!(
        d.window_reason
            .as_deref()
            .unwrap()
            .starts_with("Redis has no snapshot to pin"),
        "{:?}",
        d.window_reason
    );
    // Databases are not a Redis notion: one line says so.
    svc(&mut cs, "bystander")
        .labels
        .insert("stackshot.databases".into(), "0".into());
    let plan = build(&opts(&cs), &cs);
    assert_error(&plan, "stackshot.databases does not apply to Redis");
}

#[test]
fn a_data_directory_copy_is_planned_in_the_full_window() {
    let plan = labelled(&[("postgres", "stackshot.volumes.data-dir", "true")]);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    assert!(paths(&plan).contains(&"/volumes/postgres/var/lib/postgresql/data".to_string()));
    assert_eq!(plan.window, "full");
    assert!(
        plan.window_reason
            .as_deref()
            .unwrap()
            .starts_with("stackshot.volumes.data-dir on postgres"),
        "{:?}",
        plan.window_reason
    );
    let d = dump(&plan, "postgres");
    assert!(d.data_dir && !d.pinned);
    // Not on an app, and not without stackshot.volumes=true.
    let plan = labelled(&[
        ("app", "stackshot.volumes.data-dir", "true"),
        ("mariadb", "stackshot.volumes.data-dir", "true"),
    ]);
    assert_error(&plan, "applies to a database service");
    assert_error(&plan, "needs stackshot.volumes=true");
}

#[test]
fn sqlite_files_are_copied_and_left_out_of_the_file_pass() {
    let plan = labelled(&[(
        "app",
        "stackshot.sqlite",
        "/data/app.db, /uploads/x/other.sqlite",
    )]);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    let d = dump(&plan, "app");
    assert_eq!(d.engine, Engine::Sqlite);
    assert_eq!(d.databases, ["/data/app.db", "/uploads/x/other.sqlite"]);
    assert_eq!(
        d.outputs,
        ["/databases/app/app.db", "/databases/app/other.sqlite"]
    );
    assert!(!d.pinned);
    // The files stay out of the file pass; the rest of their mounts stays in.
    assert!(paths(&plan).contains(&"/volumes/app/data".to_string()));
    assert!(
        plan.excludes
            .contains(&"/volumes/app/data/app.db".to_string())
    );
    assert!(
        plan.excludes
            .contains(&"/volumes/app/data/app.db-wal".to_string())
    );
    assert!(
        plan.excludes
            .contains(&"/volumes/app/uploads/x/other.sqlite-shm".to_string()),
        "{:?}",
        plan.excludes
    );
    assert!(render_table(&plan).contains(
        "\nFiles left out of the file pass (SQLite: its copy in /databases is the consistent one):\n  /volumes/app/data/app.db\n"
    ));

    // Hostile or useless paths: one line each, naming the path.
    for bad in [
        "data/app.db",
        "/data/../etc/passwd",
        "/elsewhere/app.db",
        "/data/a*.db",
        "/data/x\nb",
        "/data/",
    ] {
        let plan = labelled(&[("app", "stackshot.sqlite", bad)]);
        assert_error(&plan, &format!("label stackshot.sqlite names {bad:?}"));
    }
    let plan = labelled(&[("app", "stackshot.sqlite", "/data/a.db,/uploads/a.db")]);
    assert_error(&plan, "same file name");
}

#[test]
fn redis_requirepass_on_the_command_line_is_honoured() {
    let mut cs = fixture();
    let r = svc(&mut cs, "bystander");
    r.labels.insert("stackshot.redis".into(), "true".into());
    r.cmd_flags = vec!["--appendonly".into(), "--requirepass".into()];
    let plan = build(&opts(&cs), &cs);
    let d = dump(&plan, "bystander");
    assert_eq!(
        d.credentials.password,
        CredentialSource::CommandArg {
            flag: "--requirepass".into()
        }
    );
    // The variable wins over the command line.
    let r = svc(&mut cs, "bystander");
    r.env_names = vec!["REDIS_PASSWORD".into()];
    let plan = build(&opts(&cs), &cs);
    let d = dump(&plan, "bystander");
    assert_eq!(
        d.credentials.password,
        CredentialSource::Env {
            var: "REDIS_PASSWORD".into()
        }
    );
    let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        flag_value(
            &a(&["redis-server", "--requirepass", "pw"]),
            "--requirepass"
        )
        .as_deref(),
        Some("pw")
    );
    assert_eq!(
        flag_value(&a(&["redis-server", "--requirepass=pw2"]), "--requirepass").as_deref(),
        Some("pw2")
    );
    assert_eq!(
        flag_value(&a(&["redis-server", "--requirepass"]), "--requirepass"),
        None
    );
    assert_eq!(flag_value(&a(&["--requirepassx=1"]), "--requirepass"), None);
}

/// `stackshot.role` is stackshot's mark on its own containers, not a setting:
/// on a service, a value it never sets keeps the service in the plan and is
/// an error naming the label, the value and what is accepted.
#[test]
fn a_role_label_never_drops_a_service_silently() {
    let plan = labelled(&[("app", "stackshot.role", "backup-target")]);
    assert_error(
        &plan,
        "label stackshot.role=\"backup-target\" is not a setting",
    );
    assert_error(&plan, "accepted: no stackshot.role label on a service");
    assert!(
        services(&plan.volumes, |v| &v.container).contains(&"app".to_string()),
        "app left the plan: {:?}",
        plan.volumes
    );

    // A misspelled key is an unknown label, as any other.
    let plan = labelled(&[("app", "stackshot.roles", "worker")]);
    assert_error(&plan, "unknown label stackshot.roles; accepted:");

    // The mark of stackshot's own containers on a service: left out, and said.
    let plan = labelled(&[("legacy", "stackshot.role", "drill")]);
    assert!(
        !services(&plan.volumes, |v| &v.container).contains(&"legacy".to_string()),
        "{:?}",
        plan.volumes
    );
    assert!(
        plan.warnings.iter().any(|w| w
            .contains("(service legacy): label stackshot.role=\"drill\"")
            && w.contains("left out of the backup")),
        "{:?}",
        plan.warnings
    );
}
mod freeze;

/// Recorded from Podman 4.3.1: `shop_app_1` was created as podman-compose
/// 1.0.6 creates a dependent service (`--requires shop_db_1`, no
/// depends_on label). Podman's Docker-compatible inspect says nothing of
/// the order; Podman's own inspect of `shop_app_1` lists `shop_db_1`.
#[test]
fn podman_compose_requirements_order_the_waves() {
    let mut cs = from_inspect_json(include_str!(
        "../../tests/fixtures/podman/compose-inspect-4.3.json"
    ))
    .expect("fixture parses");
    let opts = PlanOptions {
        project: "shop".into(),
        host: "shop".into(),
        self_id: None,
        ..opts(&cs)
    };
    let waves = |cs: &[ContainerInfo]| -> Vec<(String, usize)> {
        build(&opts, cs)
            .stop
            .iter()
            .map(|s| (s.container.service.clone(), s.wave))
            .collect()
    };
    // Compatible inspect alone: no order, one wave.
    assert!(
        cs.iter()
            .all(|c| c.depends_on.is_empty() && c.depends_on_containers.is_empty())
    );
    assert_eq!(waves(&cs), [("app".into(), 0), ("db".into(), 0)]);
    let required = crate::engine::podman::parse_dependencies(include_bytes!(
        "../../tests/fixtures/podman/libpod-inspect-requires.json"
    ))
    .unwrap();
    crate::discovery::add_requirements(svc(&mut cs, "app"), required);
    let plan = build(&opts, &cs);
    assert_eq!(waves(&cs), [("app".into(), 0), ("db".into(), 1)]);
    // app starts again only after db.
    let db = &plan.stop[1].container.id;
    assert_eq!(plan.stop[0].after, std::slice::from_ref(db));
}
