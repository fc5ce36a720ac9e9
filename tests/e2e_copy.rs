//! End to end with a copy repository (3-2-1): the stack's primary
//! repository is local (a volume), the copy is on S3 (`rclone serve s3` on
//! the stack's network, tests/stack/copy.override.yml), and the daemon copies
//! each successful run there with `restic copy`, keeping fewer runs there
//! (COPY_KEEP_LAST=1) than in the primary (KEEP_LAST=2).
//!
//! The test: three runs, each copying exactly its own snapshot (a run the
//! copy's retention forgot never comes back), read back with plain restic
//! from S3; `/metrics` and the status page show the copy; the S3 server
//! stopped, a run still succeeds and its copy fails, reported, and the next
//! run copies both; then the disaster takes the primary repository with the
//! stack, and `snapshots`, `verify`, `drill` and `restore all --from copy`
//! read the copy on S3 and bring everything back.

mod common;

use std::process::Output;

use common::*;

/// Plain restic (the bench's base image) against the copy repository on
/// the stack's S3 server.
fn copy_restic(stack: &Stack, args: &[&str]) -> Output {
    let mut c = docker(&["run", "--rm", "--network"]);
    c.arg(format!("{}_default", stack.project));
    for env in [
        format!("RESTIC_REPOSITORY={COPY_REPOSITORY}"),
        format!("RESTIC_PASSWORD={COPY_PASSWORD}"),
        format!("AWS_ACCESS_KEY_ID={S3_KEY_ID}"),
        format!("AWS_SECRET_ACCESS_KEY={S3_SECRET}"),
    ] {
        c.args(["-e", &env]);
    }
    c.args(["stackshot-test/base:local", "restic"]).args(args);
    output(&mut c)
}

/// The copy repository's snapshots, from plain restic.
fn copy_snapshots(stack: &Stack) -> Vec<serde_json::Value> {
    let out = copy_restic(stack, &["snapshots", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// The ids of the primary repository's snapshots, oldest first.
fn primary_ids(stack: &Stack) -> Vec<String> {
    stack
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// One backup through the daemon that must succeed; its report.
fn good_run(stack: &Stack, run: &str) -> serde_json::Value {
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{run}: {report}\n{stderr}");
    assert_eq!(report["result"], "success", "{run}: {report}");
    let all = format!("{report}{stderr}");
    for secret in [COPY_PASSWORD, S3_SECRET, RESTIC_PASSWORD] {
        assert!(
            !all.contains(secret),
            "{run}: a secret in the output: {all}"
        );
    }
    report
}

#[test]
fn each_run_is_copied_offsite_with_its_own_retention_and_restored_from_there() {
    let _serial = serial();
    bench();
    let project = "stackshot-e2e-copy";
    let s3_data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let rclone = rclone();
    let mut stack = Stack::up_with(
        project,
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/daemon.override.yml"),
            &root().join("tests/stack/copy.override.yml"),
        ],
        &[
            ("E2E_RCLONE", rclone.to_str().unwrap()),
            ("E2E_S3_DATA", s3_data.path().to_str().unwrap()),
        ],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let seeded = Seeded::take(&stack);

    // The plan names the copy.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    assert!(
        text(&plan).contains(&format!(
            "Copy: each successful run copied to {COPY_REPOSITORY} (after each successful run), retention there: --keep-last 1"
        )),
        "{}",
        text(&plan)
    );

    // Run 1 creates the copy repository on S3 and copies its snapshot.
    let report = good_run(&stack, "run 1");
    let copy = &report["copy"];
    assert_eq!(copy["outcome"], "copied", "{report}");
    assert_eq!(copy["initialised"], true, "{report}");
    assert_eq!(copy["repository"], COPY_REPOSITORY, "{report}");
    assert!(
        s3_data.path().join("offsite/config").is_file(),
        "the copy repository is not in the S3 server's storage"
    );
    let primary = primary_ids(&stack);
    assert_eq!(primary.len(), 1, "{primary:?}");
    assert_eq!(
        copy["copied"],
        serde_json::json!([&primary[0][..8]]),
        "{report}"
    );
    let copied = copy_snapshots(&stack);
    assert_eq!(copied.len(), 1, "{copied:?}");
    assert_eq!(copied[0]["original"], primary[0].as_str(), "{copied:?}");

    // Runs 2 and 3: each copies its own snapshot only. The copy keeps one
    // run, the primary two: run 2's snapshot, forgotten in the copy after
    // run 3 but still in the primary, is not copied again.
    for run in ["run 2", "run 3"] {
        let report = good_run(&stack, run);
        let copy = &report["copy"];
        assert_eq!(copy["outcome"], "copied", "{run}: {report}");
        assert_eq!(copy["initialised"], false, "{run}: {report}");
        let primary = primary_ids(&stack);
        let newest = primary.last().unwrap();
        assert_eq!(
            copy["copied"],
            serde_json::json!([&newest[..8]]),
            "{run}: {report}"
        );
        assert_eq!(copy["retention"]["outcome"], "applied", "{run}: {report}");
        assert_eq!(copy["retention"]["kept"], 1, "{run}: {report}");
        let copied = copy_snapshots(&stack);
        assert_eq!(copied.len(), 1, "{run}: {copied:?}");
        assert_eq!(copied[0]["original"], newest.as_str(), "{run}: {copied:?}");
    }
    assert_eq!(primary_ids(&stack).len(), 2);
    let check = copy_restic(&stack, &["check"]);
    assert!(check.status.success(), "{}", text(&check));

    // The copy's own metrics, and the status page.
    let port = stack.http_port();
    let (_, metrics) = http_get(port, "/metrics").expect("/metrics answers");
    for (series, want) in [
        (
            r#"stackshot_copy_runs_total{repository="copy",result="success"}"#,
            3.0,
        ),
        (r#"stackshot_copy_last_run_success{repository="copy"}"#, 1.0),
        (r#"stackshot_copy_snapshots_copied{repository="copy"}"#, 1.0),
        (r#"stackshot_maintenance_last_success{task="copy"}"#, 1.0),
    ] {
        assert_eq!(sample(&metrics, series), Some(want), "{series}\n{metrics}");
    }
    let status = stack.exec("backup", &[], &["stackshot", "status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(&format!(
            ": copy to {COPY_REPOSITORY}: copied 1 snapshot(s)"
        )),
        "{}",
        text(&status)
    );
    let (_, page) = http_get(port, "/").expect("the status page answers");
    let page = page.replace("&#x2f;", "/");
    assert!(page.contains(COPY_REPOSITORY), "{page}");
    assert!(page.contains("copied 1 snapshot(s)"), "{page}");

    // The S3 server goes away: the run succeeds, its copy fails, and says
    // why in one line, in the report, /metrics and the page.
    stack.compose_ok(&["stop", "s3"]);
    let report = good_run(&stack, "run 4 (S3 down)");
    let copy = &report["copy"];
    assert_eq!(copy["outcome"], "failed", "{report}");
    let error = copy["error"].as_str().unwrap();
    assert!(
        error.contains("cannot connect to s3:8333") && !error.contains('\n'),
        "{report}"
    );
    let (_, metrics) = http_get(port, "/metrics").expect("/metrics answers");
    for (series, want) in [
        (
            r#"stackshot_copy_runs_total{repository="copy",result="failed"}"#,
            1.0,
        ),
        (r#"stackshot_copy_last_run_success{repository="copy"}"#, 0.0),
        (r#"stackshot_backup_last_run_success"#, 1.0),
    ] {
        assert_eq!(sample(&metrics, series), Some(want), "{series}\n{metrics}");
    }
    let (_, page) = http_get(port, "/").expect("the status page answers");
    assert!(
        page.replace("&#x2f;", "/")
            .contains(&format!("copy to {COPY_REPOSITORY}: FAILED")),
        "{page}"
    );

    // Back up: the next run copies the missed run and its own.
    stack.compose_ok(&["start", "s3"]);
    let report = good_run(&stack, "run 5");
    let copy = &report["copy"];
    assert_eq!(copy["outcome"], "copied", "{report}");
    let primary = primary_ids(&stack);
    let last_two: Vec<&str> = primary[primary.len() - 2..]
        .iter()
        .map(|id| &id[..8])
        .collect();
    assert_eq!(copy["copied"], serde_json::json!(last_two), "{report}");
    let copied = copy_snapshots(&stack);
    assert_eq!(copied.len(), 1, "{copied:?}");
    assert_eq!(
        copied[0]["original"],
        primary.last().unwrap().as_str(),
        "{copied:?}"
    );

    // The disaster takes the stack and the primary repository (a volume of
    // the stack); the copy on S3 (a host directory) survives.
    stack.disaster(empty.path());
    assert!(
        stack.try_snapshots().is_err(),
        "the primary repository survived"
    );
    stack.wait_for_daemon();

    // The copy, read in place of the lost primary.
    let listed = stack.exec("backup", &[], &["stackshot", "snapshots", "--from", "copy"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let last_run = report["run_id"].as_str().unwrap();
    assert!(text(&listed).contains(last_run), "{}", text(&listed));
    let verify = stack.exec("backup", &[], &["stackshot", "verify", "--from", "copy"]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        text(&verify).contains("2 dump(s) match"),
        "{}",
        text(&verify)
    );
    let drill = stack.exec(
        "backup",
        &[],
        &["stackshot", "drill", "--from", "copy", "--json"],
    );
    assert!(drill.status.success(), "{}", text(&drill));
    let report: serde_json::Value = serde_json::from_slice(&drill.stdout)
        .unwrap_or_else(|e| panic!("drill --json printed no report ({e}): {}", text(&drill)));
    let services = report["services"].as_array().unwrap();
    let mut drilled: Vec<&str> = services
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    drilled.sort();
    assert_eq!(drilled, ["mariadb", "postgres"], "{report}");
    for s in services {
        assert_eq!(s["problems"], serde_json::json!([]), "{report}");
        assert_eq!(s["compared"], "dump-counts", "{report}");
    }
    let all = stack.exec(
        "backup",
        &[],
        &["stackshot", "restore", "all", "--from", "copy", "--yes"],
    );
    assert!(all.status.success(), "{}", text(&all));
    seeded.assert_back(&stack);
}
