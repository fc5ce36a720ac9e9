//! End to end with the repository on an append-only REST server
//! (`rclone serve restic --append-only`, tests/stack/rest.override.yml), the
//! kind careful people use against ransomware: nothing in it can be deleted
//! but locks. With `APPEND_ONLY=true` a short-window run succeeds, forgets
//! nothing (its part snapshots stay, tagged `stackshot-part`) and leaves
//! retention to the server; plain restic restores the one merged snapshot
//! byte for byte, and `check --read-data` passes. A second run succeeds too.

mod common;

use common::*;

fn tags(s: &serde_json::Value) -> Vec<String> {
    s["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_short_window_run_succeeds_on_an_append_only_rest_server() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let rclone = rclone();
    let stack = Stack::up_with(
        "stackshot-e2e-rest",
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/daemon.override.yml"),
            &root().join("tests/stack/rest.override.yml"),
        ],
        &[
            ("E2E_RCLONE", rclone.to_str().unwrap()),
            ("E2E_REST_DATA", data.path().to_str().unwrap()),
            ("E2E_REST_FLAGS", "--append-only"),
            ("E2E_APPEND_ONLY", "true"),
        ],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let seeded = Seeded::take(&stack);

    // The plan says what an append-only repository means for a run.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(
        text(&plan).contains("Repository: append-only (APPEND_ONLY=true)"),
        "{}",
        text(&plan)
    );

    let mut merged = Vec::new();
    for run in [1, 2] {
        let (code, report, stderr) = stack.backup(&[]);
        assert_eq!(code, 0, "run {run}: {report}\n{stderr}");
        assert_eq!(report["result"], "success", "run {run}: {report}");
        assert_eq!(report["window_mode"], "short", "run {run}: {report}");
        assert_eq!(report["retention"]["outcome"], "server", "{report}");
        assert!(
            report["notes"]
                .to_string()
                .contains("the repository is append-only (APPEND_ONLY=true): this run's 3 part snapshot(s) stay, tagged stackshot-part"),
            "run {run}: {report}"
        );
        let all = format!("{report}{stderr}");
        assert!(
            !all.contains(REST_SECRET) && !all.contains(RESTIC_PASSWORD),
            "{all}"
        );
        merged.push(report["snapshots"][0]["id"].as_str().unwrap().to_string());
    }

    // What stays: per run one snapshot tagged stackshot, and its parts (the
    // pre-pass, the window's files, the dumps) tagged stackshot-part only.
    let snaps = stack.snapshots();
    let (backups, parts): (Vec<_>, Vec<_>) = snaps
        .iter()
        .partition(|s| tags(s).iter().any(|t| t == "stackshot"));
    assert_eq!(backups.len(), 2, "{snaps:?}");
    assert_eq!(parts.len(), 6, "{snaps:?}");
    assert!(
        parts
            .iter()
            .all(|s| tags(s).iter().any(|t| t == "stackshot-part")),
        "{parts:?}"
    );
    let newest = &merged[1];
    assert!(
        backups
            .iter()
            .any(|s| s["short_id"].as_str() == Some(newest.as_str())),
        "{snaps:?}"
    );

    // Plain restic restores the merged snapshot byte for byte, dumps
    // included, and reads every pack back.
    let restored = stack.restore(newest);
    let r = restored.path();
    seeded.assert_in_snapshot(r);
    let sums = std::fs::read_to_string(r.join("databases/SHA256SUMS")).unwrap();
    assert!(
        sums.contains("postgres") && sums.contains("mariadb"),
        "{sums}"
    );
    let check = stack.restic(&[], &["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
    // Nothing was deleted, locks aside: the server refused nothing we asked.
    let locks = std::fs::read_dir(data.path().join("stackshot/locks"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(locks, 0, "a lock stayed behind on the server");
}
