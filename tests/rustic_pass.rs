//! The stop window's armed file pass (`stackshot worker rustic`, rustic_core
//! with stackshot's patch, vendor/README.md) on the host against the real
//! restic: over more entries than one of the archiver's batches holds, with
//! files changed, added and removed since the parent, the snapshot it writes
//! restores with plain restic to exactly the source tree, and its summary
//! counts every file. restic must be installed: this test fails (it does not
//! skip) without it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use stackshot::dumps::stream::hex;
use tempfile::TempDir;

const PASSWORD: &str = "correct-horse-battery-staple";

fn restic(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", dir.join("repo"))
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap_or_else(|e| panic!("this test needs restic on PATH (apt-get install restic): {e}"));
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every entry under `root`: its relative path and what it is (a file's
/// bytes, a link's target, or a directory).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            let what = if t.is_symlink() {
                format!("link {}", std::fs::read_link(e.path()).unwrap().display())
            } else if t.is_dir() {
                stack.push(e.path());
                "dir".to_string()
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                format!("file {} {}", bytes.len(), hex(&Sha256::digest(&bytes)))
            };
            out.insert(rel, what);
        }
    }
    out
}

fn write(path: &Path, seed: u32, len: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) as u8 ^ (i >> 9) as u8)
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// Runs the armed pass as the sidecar does: settings, `ready`, `go`; returns
/// its events.
fn armed_pass(dir: &Path, parent: &str, source: &Path) -> Vec<serde_json::Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackshot"))
        .args([
            "worker", "rustic", "backup", "--json", "--host", "h", "--tag", "files",
        ])
        .args(["--parent", parent, source.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let settings = serde_json::json!({ "env": [
        ["RESTIC_REPOSITORY", dir.join("repo").display().to_string()],
        ["RESTIC_PASSWORD", PASSWORD],
    ]});
    writeln!(stdin, "{settings}").unwrap();
    let mut events = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let ev: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if ev["event"] == "ready" {
            writeln!(stdin, "go").unwrap();
        }
        events.push(ev);
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "{events:#?}");
    events
}

#[test]
fn the_armed_pass_over_many_entries_restores_to_the_source_tree() {
    let dir = TempDir::new().unwrap();
    let src = dir.path().join("volumes");
    // 3 directories of 700 files (more than one batch of 512 each, and a
    // last batch that is not full), nested directories, an empty one, links,
    // and a file of several chunks.
    for d in ["a", "b/deep/er", "c"] {
        for i in 0..700 {
            write(
                &src.join(d).join(format!("f{i:04}")),
                i,
                64 + i as usize % 300,
            );
        }
    }
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::os::unix::fs::symlink("../a/f0001", src.join("c/link")).unwrap();
    write(&src.join("b/big"), 7, 6 << 20);
    restic(dir.path(), &["init"]);
    let out = restic(
        dir.path(),
        &["backup", "--json", "--host", "h", src.to_str().unwrap()],
    );
    let parent = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| m["message_type"] == "summary")
        .and_then(|m| m["snapshot_id"].as_str().map(String::from))
        .expect("restic's summary");

    // Since the parent: 40 files changed (spread over every directory), 30
    // new ones (some in a new directory), 20 removed, the big file changed in
    // its middle.
    for i in (0..700).step_by(50) {
        for d in ["a", "b/deep/er", "c"] {
            if i % 100 == 0 || d != "c" {
                write(&src.join(d).join(format!("f{i:04}")), i + 1, 500);
            }
        }
    }
    let changed = (0..700).step_by(50).count() * 2 + (0..700).step_by(100).count();
    for i in 0..15 {
        write(&src.join("a").join(format!("new{i}")), i, 100);
        write(&src.join("d/new").join(format!("n{i}")), i, 100);
    }
    for i in 0..20 {
        std::fs::remove_file(src.join("c").join(format!("f{:04}", 1 + i * 7))).unwrap();
    }
    let mut big = std::fs::read(src.join("b/big")).unwrap();
    big[3 << 20] ^= 0xff;
    std::fs::write(src.join("b/big"), &big).unwrap();

    let events = armed_pass(dir.path(), &parent, &src);
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {events:#?}"));
    assert!(
        !events.iter().any(|e| e["event"] == "file_error"),
        "{events:#?}"
    );
    let total = 3 * 700 - 20 + 1 + 30 + 1; // the files, the big one, the new ones, the link
    // Changed: those above, the big file, and the link: restic records a
    // link with no size, rustic with its target's length, so against a
    // restic parent rustic counts a link as changed (it has nothing to read).
    let changed = changed + 2;
    assert_eq!(summary["files_changed"], changed as u64, "{summary}");
    assert_eq!(summary["files_new"], 30, "{summary}");
    assert_eq!(summary["total_files_processed"], total, "{summary}");
    assert_eq!(
        summary["files_unmodified"],
        (total - 30 - changed) as u64,
        "{summary}"
    );

    let id = summary["snapshot_id"].as_str().unwrap();
    let target = dir.path().join("restored");
    restic(
        dir.path(),
        &["restore", id, "--target", target.to_str().unwrap()],
    );
    let restored = target.join(src.strip_prefix("/").unwrap());
    let (want, got) = (tree(&src), tree(&restored));
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (k, v) in &want {
        assert_eq!(&got[k], v, "{k} restored differently");
    }
    restic(dir.path(), &["check", "--read-data"]);
}
