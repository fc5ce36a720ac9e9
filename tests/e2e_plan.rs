//! End to end: `stackshot plan --json` run inside the sidecar container of a real
//! compose stack on the real engine.

mod common;

use common::{Stack, root, stop_waves};
use serde_json::Value;

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("plan has no {key} array: {v}"))
        .iter()
        .map(|e| e["service"].as_str().unwrap().to_string())
        .collect()
}

fn plan_json(stack: &Stack, env: &[(&str, &str)]) -> Value {
    let out = stack.exec("backup", env, &["stackshot", "plan", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "plan failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}): {stdout}"))
}

#[test]
fn plan_inside_the_sidecar() {
    let other = Stack::up(
        "stackshot-e2e-other",
        &root().join("tests/stack/other/docker-compose.yml"),
    );
    let stack = Stack::up(
        "stackshot-e2e",
        &root().join("tests/stack/docker-compose.yml"),
    );
    // The bench's database images honour the official variables (_FILE included).
    stack.wait_for_databases();
    let out = stack.exec(
        "mariadb",
        &[("MYSQL_PWD", "wrong")],
        &["mariadb", "-uroot", "-e", "select 1"],
    );
    assert!(!out.status.success(), "MariaDB root must need its password");

    let plan = plan_json(&stack, &[]);

    assert_eq!(plan["project"], "stackshot-e2e");
    assert_eq!(plan["host"], "stackshot-e2e");
    assert_eq!(plan["atomic"], true);

    // Stopped: sidekick (shares app's network) before app; databases never.
    let stop = stop_waves(&plan);
    assert_eq!(stop, [("sidekick".to_string(), 0), ("app".to_string(), 1)]);
    assert_eq!(plan["stop"][1]["id"], stack.container("app"));

    // Dumped: both database servers, with credentials named, never their values.
    let dumps = &plan["dumps"];
    assert_eq!(names(&plan, "dumps"), ["mariadb", "postgres"]);
    assert_eq!(dumps[0]["engine"], "mariadb");
    assert_eq!(dumps[0]["databases"], serde_json::json!(["shop"]));
    assert_eq!(
        dumps[0]["outputs"],
        serde_json::json!(["/databases/mariadb/shop.sql"])
    );
    assert_eq!(
        dumps[0]["credentials"]["password"],
        serde_json::json!({"from": "file_in_container", "var": "MARIADB_ROOT_PASSWORD_FILE"})
    );
    assert_eq!(dumps[1]["engine"], "postgres");
    assert_eq!(
        dumps[1]["outputs"],
        serde_json::json!(["/databases/postgres/postgres-all.sql"])
    );
    assert_eq!(
        dumps[1]["credentials"]["user"],
        serde_json::json!({"from": "env", "var": "POSTGRES_USER"})
    );
    assert_eq!(
        dumps[1]["credentials"]["password"],
        serde_json::json!({"from": "env", "var": "POSTGRES_PASSWORD"})
    );

    // Backed up: app's volume and bind mount, postgres's init scripts, legacy's volume.
    let vols: Vec<(String, String, String)> = plan["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["service"].as_str().unwrap().to_string(),
                v["kind"].as_str().unwrap().to_string(),
                v["snapshot_path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("app", "volume", "/volumes/app/data"),
        ("app", "bind", "/volumes/app/uploads"),
        ("legacy", "volume", "/volumes/legacy/srv/legacy"),
        (
            "postgres",
            "bind",
            "/volumes/postgres/docker-entrypoint-initdb.d",
        ),
    ];
    let mut got = vols.clone();
    got.sort();
    let mut want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let app_data = plan["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["destination"] == "/data")
        .unwrap();
    assert_eq!(app_data["source"], "stackshot-e2e_app-data");

    // Left out, each with its reason.
    let excluded: Vec<(String, String, String)> = plan["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap().to_string(),
                e["mount"].as_str().unwrap_or("(container)").to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("app", "/data-cache", "excluded"),
        (
            "postgres",
            "/var/lib/postgresql/data",
            "database_data_directory",
        ),
        ("mariadb", "/var/lib/mysql", "no_label"),
        ("bystander", "(container)", "no_label"),
    ] {
        assert!(
            excluded
                .iter()
                .any(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str()) == want),
            "{want:?} not in {excluded:?}"
        );
    }

    // The unlabelled container is in no list that acts; the other project and the sidecar are nowhere.
    let text = plan.to_string();
    for acting in ["stop", "dumps", "volumes"] {
        assert!(!names(&plan, acting).contains(&"bystander".to_string()));
    }
    assert!(
        !text.contains("intruder") && !text.contains("stackshot-e2e-other"),
        "{text}"
    );
    assert!(!names(&plan, "excluded").contains(&"backup".to_string()));
    assert!(!text.contains("pg-secret-password") && !text.contains("maria-root-secret"));

    // The predecessor label is honoured and reported.
    let warnings = plan["warnings"].to_string();
    assert!(warnings.contains("stack-back.volumes=true"), "{warnings}");
    assert_eq!(plan["errors"], serde_json::json!([]));

    // The readable table names the same things.
    let out = stack.exec("backup", &[], &["stackshot", "plan"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    for needle in [
        "Stopped during the backup",
        "sidekick",
        "/databases/mariadb/shop.sql",
        "/volumes/app/uploads",
        "database data directory",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }

    // INCLUDE_ALL_COMPOSE_PROJECTS widens the scope, with the project in the path.
    let wide = plan_json(&stack, &[("INCLUDE_ALL_COMPOSE_PROJECTS", "true")]);
    let intruder = wide["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["service"] == "intruder")
        .unwrap_or_else(|| panic!("intruder missing: {wide}"));
    assert_eq!(
        intruder["snapshot_path"],
        "/volumes/stackshot-e2e-other/intruder/var/intruder"
    );
    assert!(names(&wide, "stop").contains(&"intruder".to_string()));
    assert!(
        wide["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["snapshot_path"] == "/volumes/stackshot-e2e/app/data")
    );
    drop(other);
}

#[test]
fn bad_configuration_is_one_line_in_the_sidecar_image() {
    common::bench();
    let base = [
        ("RESTIC_REPOSITORY", "/repository"),
        ("RESTIC_PASSWORD", "restic-test-password"),
    ];
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("BACKUP_CRON", "every night")],
            "BACKUP_CRON=\"every night\": not a cron schedule",
        ),
        (&[("KEEP_DAILY", "-3")], "KEEP_DAILY=\"-3\": negative count"),
        (
            &[("STOP_TIMEOUT", "soon")],
            "STOP_TIMEOUT=\"soon\": not a duration",
        ),
        (
            &[("RESTIC_PASSWORD_FILE", "/run/secrets/pw")],
            "RESTIC_PASSWORD and RESTIC_PASSWORD_FILE are both set",
        ),
        (&[("RESTIC_REPOSITORY", "")], "RESTIC_REPOSITORY is not set"),
    ];
    for (extra, want) in cases {
        let mut cmd = common::docker(&[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
        ]);
        for (k, v) in base
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .chain(extra.iter())
        {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        cmd.args(["stackshot-test/sidecar:local", "plan"]);
        let out = common::output(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{extra:?}: one line expected: {stderr}"
        );
        assert!(
            stderr.starts_with("stackshot: configuration error: "),
            "{stderr}"
        );
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
        assert!(!stderr.contains("restic-test-password"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn example_stack_plans_and_backs_up() {
    // docker-compose.example.yml, with the bench's images in place of registry ones.
    common::bench();
    let file = root().join("docker-compose.example.yml");
    let project = "stackshot-e2e-example";
    let env = [
        ("STACKSHOT_IMAGE", "stackshot-test/sidecar:local"),
        ("APP_IMAGE", "stackshot-test/base:local"),
        ("POSTGRES_IMAGE", "stackshot-test/postgres:local"),
        ("MARIADB_IMAGE", "stackshot-test/mariadb:local"),
    ];
    let compose = |args: &[&str]| {
        let mut c = std::process::Command::new("docker-compose");
        c.args(["-p", project, "-f"])
            .arg(&file)
            .args(args)
            .envs(env);
        c
    };
    common::output(&mut compose(&["down", "-v"]));
    common::run(&mut compose(&["up", "-d", "--no-build"]));
    // The example backs up as it stands, once its databases serve on TCP
    // (not the entrypoints' temporary init servers, which listen on no port):
    // one backup, which must succeed.
    for (service, ping) in [
        (
            "postgres",
            "PGPASSWORD=$POSTGRES_PASSWORD psql -h 127.0.0.1 -U $POSTGRES_USER -d $POSTGRES_DB -Atc 'select 1'",
        ),
        (
            "mariadb",
            "MYSQL_PWD=$MARIADB_ROOT_PASSWORD mariadb -h 127.0.0.1 -uroot -Ne 'select 1'",
        ),
    ] {
        common::wait_for(&format!("the example's {service} to serve"), 90, || {
            let p = common::output(&mut compose(&["exec", "-T", service, "sh", "-c", ping]));
            (p.status.success() && String::from_utf8_lossy(&p.stdout).trim() == "1").then_some(())
        });
    }
    // The plan of the stack as it runs (taken once the databases serve: right
    // after `up -d` on a loaded engine, a container can still be starting).
    let out = common::output(&mut compose(&[
        "exec",
        "-T",
        "backup",
        "stackshot",
        "plan",
        "--json",
    ]));
    let backup = common::output(&mut compose(&[
        "exec",
        "-T",
        "backup",
        "stackshot",
        "backup",
    ]));
    common::output(&mut compose(&["down", "-v"]));
    let summary = String::from_utf8_lossy(&backup.stdout);
    assert!(
        backup.status.success() && summary.contains("succeeded") && summary.contains("(atomic)"),
        "{summary}\n{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(names(&plan, "stop"), ["app"], "{plan}");
    assert_eq!(names(&plan, "dumps"), ["mariadb", "postgres"], "{plan}");
    assert_eq!(plan["volumes"][0]["snapshot_path"], "/volumes/app/data");
    assert_eq!(plan["volumes"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["errors"], serde_json::json!([]));
}
