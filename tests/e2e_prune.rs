//! End to end: a prune started elsewhere never eats a short-window run.
//! rustic, which writes the window's pass and the merge, takes no restic
//! lock; the run holds one throughout. The drill holds a run at each of its
//! steps in turn (the test-only pause, `STACKSHOT_TEST_PAUSE_DIR`) and there
//! starts, from another host, `restic prune` and `restic forget --prune` of
//! an unrelated snapshot against the same repository. While the run's lock
//! is held both must be refused; once it is let go (before the parts are
//! forgotten) both run. The run then succeeds, `check --read-data` passes,
//! and its snapshot restores byte for byte. On a local repository and on S3.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use stackshot::backup::pause;

#[test]
fn a_prune_at_each_step_of_a_short_window_run_waits_for_it() {
    let _serial = serial();
    let stack = Stack::up(
        "stackshot-e2e-prune",
        &root().join("tests/stack/docker-compose.yml"),
    );
    drill(&stack);
}

#[test]
fn a_prune_at_each_step_of_a_short_window_run_on_s3_waits_for_it() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let rclone = rclone();
    let files = [
        root().join("tests/stack/docker-compose.yml"),
        root().join("tests/stack/s3.override.yml"),
    ];
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let stack = Stack::up_with(
        "stackshot-e2e-prune-s3",
        &files,
        &[
            ("E2E_RCLONE", rclone.to_str().unwrap()),
            ("E2E_S3_DATA", data.path().to_str().unwrap()),
        ],
    );
    assert!(stack.on_s3());
    drill(&stack);
}

fn drill(stack: &Stack) {
    stack.wait_for_databases();
    let seeded = Seeded::take(stack);
    // A first run creates the repository (and the parents); then an
    // unrelated snapshot for the other host's `forget --prune` to remove.
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let unrelated = stack.restic(
        &[],
        &[
            "backup",
            "--json",
            "--host",
            "elsewhere",
            "--tag",
            "unrelated",
            "/etc/hostname",
        ],
    );
    assert!(unrelated.status.success(), "{}", text(&unrelated));
    let unrelated = String::from_utf8_lossy(&unrelated.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["snapshot_id"].as_str().map(String::from))
        .expect("the unrelated snapshot's id");

    // The sidecar's cache volume, seen from the host: the pause files.
    let pauses = stack.volume_dir("restic-cache").join("pause");
    let _ = std::fs::remove_dir_all(&pauses);
    std::fs::create_dir(&pauses).unwrap();
    let (code, report, stderr) = std::thread::scope(|s| {
        // A failed assertion below removes the directory (the guard's drop)
        // before the scope waits for the run: the run then goes on through
        // every step instead of being held.
        let _release = Release(&pauses);
        let run = s.spawn(|| stack.backup(&[(pause::DIR_VAR, "/cache/pause")]));
        for &step in pause::STEPS {
            let file = pauses.join(step);
            let t = Instant::now();
            while !file.exists() {
                assert!(
                    !run.is_finished(),
                    "the run ended before it reached the step {step}"
                );
                assert!(t.elapsed() < Duration::from_secs(300), "no step {step}");
                std::thread::sleep(Duration::from_millis(50));
            }
            let prune = stack.restic(&[], &["prune"]);
            let forget = stack.restic(&[], &["forget", &unrelated, "--prune"]);
            if step == "released" {
                // The lock is gone; the parts are not forgotten yet.
                assert!(prune.status.success(), "prune at {step}: {}", text(&prune));
                assert!(
                    forget.status.success(),
                    "forget --prune at {step}: {}",
                    text(&forget)
                );
            } else {
                for (what, out) in [("prune", &prune), ("forget --prune", &forget)] {
                    assert!(
                        !out.status.success() && text(out).contains("locked"),
                        "{what} at the step {step} was not refused by the run's lock: {}",
                        text(out)
                    );
                }
            }
            eprintln!(
                "drill: at {step}: prune and forget --prune {}",
                if step == "released" { "ran" } else { "refused" }
            );
            std::fs::remove_file(&file).unwrap();
        }
        run.join().unwrap()
    });
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["window_mode"], "short", "{report}");

    let check = stack.restic(&[], &["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
    let left = stack.restic(&[], &["snapshots", "--json", "--tag", "unrelated"]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "[]",
        "the forget --prune at `released` did not run"
    );
    let id = report["snapshots"][0]["id"].as_str().unwrap();
    let restored = stack.restore(id);
    seeded.assert_in_snapshot(restored.path());
}
