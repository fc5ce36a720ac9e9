//! End to end: a prune started elsewhere never eats a short-window run. While
//! a run writes through rustic (which takes no restic lock), the run holds a
//! restic lock; a host keeps starting `restic prune` and `restic forget
//! --prune` of an unrelated snapshot against the same repository, back to
//! back, through the whole run. Each one either runs (before the run's lock
//! or after it) or is refused; the run succeeds, or fails and keeps its
//! parts. Whatever happened, `check --read-data` passes, and a reported
//! success restores byte for byte.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

#[test]
fn prunes_beside_a_short_window_run_take_nothing_it_needs() {
    let _serial = serial();
    let stack = Stack::up(
        "stackshot-e2e-prune",
        &root().join("tests/stack/docker-compose.yml"),
    );
    stack.wait_for_databases();
    let seeded = Seeded::take(&stack);
    // A first run creates the repository; then an unrelated snapshot for the
    // other host's `forget --prune` to remove.
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
    assert!(
        unrelated.status.success(),
        "{}",
        String::from_utf8_lossy(&unrelated.stderr)
    );
    let unrelated = String::from_utf8_lossy(&unrelated.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["snapshot_id"].as_str().map(String::from))
        .expect("the unrelated snapshot's id");

    // The other host: prune, forget --prune of the unrelated snapshot (once
    // it went, prune again)… until told to stop.
    let stop = AtomicBool::new(false);
    let (code, report, stderr, ran, refused) = std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            // From the moment the run holds its lock (a preflight or lock
            // that meets a running prune refuses the run before anything is
            // written, which is not what this drill is about).
            // A lock that stays 2 s is the run's (a listing's comes and goes).
            let locks = repository_dir(&stack).join("locks");
            let mut seen: std::collections::HashMap<std::ffi::OsString, std::time::Instant> =
                Default::default();
            while !stop.load(Ordering::Relaxed) {
                let now: Vec<_> = std::fs::read_dir(&locks)
                    .map(|d| d.flatten().map(|e| e.file_name()).collect())
                    .unwrap_or_default();
                seen.retain(|name, _| now.contains(name));
                for name in now {
                    seen.entry(name).or_insert_with(std::time::Instant::now);
                }
                if seen.values().any(|t| t.elapsed().as_secs_f64() >= 2.0) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let (mut ran, mut refused) = (0, 0);
            let mut forgotten = false;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let forget = !forgotten && i % 2 == 1;
                let args: Vec<&str> = if forget {
                    vec!["forget", unrelated.as_str(), "--prune"]
                } else {
                    vec!["prune"]
                };
                i += 1;
                let out = stack.restic(&[], &args);
                let said = String::from_utf8_lossy(&out.stderr).to_string();
                if out.status.success() {
                    ran += 1;
                    forgotten |= forget;
                } else if said.contains("locked") {
                    refused += 1;
                } else {
                    panic!("restic {args:?} failed otherwise: {said}");
                }
            }
            (ran, refused)
        });
        let (code, report, stderr) = stack.backup(&[]);
        stop.store(true, Ordering::Relaxed);
        let (ran, refused) = pruner.join().unwrap();
        (code, report, stderr, ran, refused)
    });
    eprintln!(
        "beside the run: {ran} prune(s) ran, {refused} refused; run: {}",
        report["result"]
    );
    assert!(refused > 0, "no prune met the run's lock: {report}");

    let check = stack.restic(&[], &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    if code == 0 {
        assert_eq!(report["result"], "success", "{report}");
        assert_eq!(report["window_mode"], "short", "{report}");
        let id = report["snapshots"][0]["id"].as_str().unwrap();
        let restored = stack.restore(id);
        seeded.assert_in_snapshot(restored.path());
    } else {
        // A failed run keeps its parts: they are listed.
        let parts = stack.restic(&[], &["snapshots", "--tag", "stackshot-part", "--json"]);
        let parts: serde_json::Value = serde_json::from_slice(&parts.stdout).unwrap();
        assert!(
            !parts.as_array().unwrap().is_empty(),
            "the run failed ({report}) and kept no part: {stderr}"
        );
    }
}

/// Where the engine keeps the stack's repository volume on this host.
fn repository_dir(stack: &Stack) -> std::path::PathBuf {
    let out = run(&mut docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Mountpoint}}",
        &format!("{}_repository", stack.project),
    ]));
    std::path::PathBuf::from(out.trim())
}
