//! End to end with the repository on S3: `rclone serve s3` on the stack's
//! network (tests/stack/s3.override.yml), the sidecar (the daemon) holding
//! the access key only as `AWS_ACCESS_KEY_ID_FILE` /
//! `AWS_SECRET_ACCESS_KEY_FILE` secrets. A backup in the short window (the
//! repository created on first use, the parts merged by rustic over S3),
//! plain restic restoring it over S3 byte for byte, `verify`, retention
//! (forget and prune on S3), and after a disaster `restore all` bringing files
//! and databases back. Then the S3 server is stopped: the
//! backup fails in the preflight, in one line and in seconds (restic alone
//! may retry for 15 minutes), so does `restore all`, and no container of the
//! stack is touched.

mod common;

use std::process::Command;

use common::*;

#[test]
fn backup_restore_verify_and_retention_on_s3() {
    let _serial = serial();
    bench();
    on_s3("stackshot-e2e-s3", &[]);
}

/// The same with Debian bookworm's restic 0.14 in the sidecar, in place of
/// the one the image pins: every restic the image may carry is tested.
#[test]
fn backup_restore_verify_and_retention_on_s3_on_restic_0_14() {
    let _serial = serial();
    bench_restic_0_14();
    on_s3("stackshot-e2e-s3-r14", &[ON_RESTIC_0_14]);
}

fn on_s3(project: &str, env: &[(&str, &str)]) {
    let s3_data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let rclone = rclone();
    let mut env_all = vec![
        ("E2E_RCLONE", rclone.to_str().unwrap()),
        ("E2E_S3_DATA", s3_data.path().to_str().unwrap()),
    ];
    env_all.extend_from_slice(env);
    let mut stack = Stack::up_with(
        project,
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/daemon.override.yml"),
            &root().join("tests/stack/s3.override.yml"),
        ],
        &env_all,
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let seeded = Seeded::take(&stack);

    // The first backup creates the repository (and its bucket) on S3.
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["repository_initialised"], true, "{report}");
    // The short window on S3: rustic (OpenDAL's s3) opens the repository
    // with the keys restic gets from the _FILE secrets, and merges there.
    assert_eq!(report["window_mode"], "short", "{report}");
    assert!(
        s3_data.path().join("stackshot/config").is_file(),
        "the repository is not in the S3 server's storage"
    );
    // The secrets stay out of what stackshot prints.
    let all = format!("{report}{stderr}");
    assert!(
        !all.contains(S3_SECRET) && !all.contains(RESTIC_PASSWORD),
        "{all}"
    );

    // Plain restic over S3 restores the files byte for byte, dumps included.
    let snaps = stack.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let restored = stack.restore("latest");
    let r = restored.path();
    seeded.assert_in_snapshot(r);
    let sums = std::fs::read_to_string(r.join("databases/SHA256SUMS")).unwrap();
    assert!(sums.contains("postgres"), "{sums}");
    assert!(sums.contains("mariadb"), "{sums}");
    // The digests are the files' own, and the dumps load into fresh servers.
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(r.join("databases"))
        .output()
        .expect("sha256sum");
    assert!(
        check.status.success(),
        "sha256sum --check: {}",
        text(&check)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout)
            .matches(": OK")
            .count(),
        2,
        "{}",
        text(&check)
    );
    assert_pg_dump_restores(
        &stack,
        &r.join("databases/postgres/postgres-all.sql"),
        &format!("{project}-pg"),
    );
    assert_maria_dump_restores(
        &stack,
        &r.join("databases/mariadb/shop.sql"),
        &format!("{project}-maria"),
    );

    // verify reads the run back from S3.
    stack.assert_verify(2);

    // Retention on S3 (the daemon's, after each good run): KEEP_LAST=2 in
    // daemon.override.yml, so the third run forgets the first and prunes.
    let first = snaps[0]["short_id"].as_str().unwrap().to_string();
    for run in [2, 3] {
        let (code, report, stderr) = stack.backup(&[]);
        assert_eq!(code, 0, "run {run}: {report}\n{stderr}");
        let retention = &report["retention"];
        assert_eq!(retention["outcome"], "applied", "{report}");
        assert_eq!(retention["kept"], 2, "{report}");
        if run == 3 {
            assert_eq!(retention["removed"], serde_json::json!([first]), "{report}");
            assert_eq!(retention["pruned"], true, "{report}");
        } else {
            assert_eq!(retention["removed"], serde_json::json!([]), "{report}");
        }
    }
    let snaps = stack.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert!(
        snaps.iter().all(|s| s["short_id"] != first.as_str()),
        "{snaps:?}"
    );
    let check = stack.restic(&[], &["check"]);
    assert!(check.status.success(), "{}", text(&check));

    // The disaster: containers and volumes gone (the S3 storage is a host
    // directory and survives), the bind mount emptied, empty databases.
    stack.disaster(empty.path());

    let all = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    assert!(all.status.success(), "{}", text(&all));
    seeded.assert_back(&stack);

    // The S3 server goes away: the backup's preflight says so in one line,
    // quickly, and so does `restore all`; nothing of the stack is stopped.
    let stop = stack.compose(&["stop", "s3"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let watch = stack.watch();
    let started = std::time::Instant::now();
    let out = stack.exec("backup", &[], &["stackshot", "backup"]);
    let took = started.elapsed();
    let restore = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    let events = watch.finish();
    assert!(!restore.status.success(), "{}", text(&restore));
    assert!(
        text(&restore).contains(
            "restic repository s3:http://s3:8333/stackshot: cannot connect to s3:8333: cannot resolve s3"
        ),
        "{}",
        text(&restore)
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    let lines: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("cannot connect to s3:8333"))
        .collect();
    assert!(!lines.is_empty(), "{all}");
    assert!(
        lines[0].contains(
            "restic repository s3:http://s3:8333/stackshot: cannot connect to s3:8333: cannot resolve s3"
        ),
        "{all}"
    );
    let touched = events.touched_in(&stack.project);
    assert!(touched.is_empty(), "containers were touched: {touched:?}");
    // Not a speed check: an unresolvable endpoint is known at once, so the
    // whole command ends before the probe's own timeout could have run out
    // (a probe that waited for it would take longer than that alone).
    assert!(
        took < stackshot::restic::reach::CONNECT_TIMEOUT,
        "the dead endpoint was reported after {took:?}, not before the probe's connect timeout of {:?}",
        stackshot::restic::reach::CONNECT_TIMEOUT
    );
    eprintln!(
        "dead S3 endpoint: the backup failed in {took:?}: {}",
        lines[0]
    );
}
