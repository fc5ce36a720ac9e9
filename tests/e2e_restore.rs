//! End to end: restore and verify. A disaster drill (the stack and its volumes
//! destroyed, `stackshot restore all --yes` brings files and databases back),
//! a tampered dump refused, and a database with data left alone without --replace.

mod common;

use std::process::Command;

use common::*;

#[test]
fn disaster_drill_and_refusals() {
    let _serial = serial();
    let repo = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let compose = root().join("tests/stack/docker-compose.yml");
    let repo_path = repo.path().to_str().unwrap().to_string();
    let mut stack = Stack::up_with(
        "stackshot-e2e-restore",
        &[&compose],
        &[("E2E_REPOSITORY", &repo_path)],
    );
    stack.wait_for_databases();
    let (blob_sha, photo_sha) = seed_app_files(&stack);
    let legacy = stack.exec(
        "legacy",
        &[],
        &["sh", "-c", "echo legacy-data > /srv/legacy/keep.txt"],
    );
    assert!(legacy.status.success());
    let pg_rows = stack.psql(PG_QUERY).unwrap();
    let maria_rows = stack.mariadb(MARIA_QUERY).unwrap();
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");

    // `snapshots` lists the run with its services.
    let out = stack.exec("backup", &[], &["stackshot", "snapshots", "--json"]);
    let runs: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["mode"], "atomic");
    assert_eq!(
        runs[0]["services"],
        serde_json::json!(["app", "legacy", "mariadb", "postgres"])
    );
    let table = stack.exec("backup", &[], &["stackshot", "snapshots"]);
    assert!(text(&table).contains("atomic"), "{}", text(&table));

    // The disaster: containers and volumes gone, the bind mount emptied; the
    // stack comes back with empty databases.
    stack.disaster(empty.path());
    assert_eq!(
        stack
            .exec("app", &[], &["test", "-e", "/data/blob.bin"])
            .status
            .code(),
        Some(1), // absent; not 126/127 (could not run)
        "/data/blob.bin is there"
    );

    // Without --yes, restore shows what it would overwrite and changes nothing.
    let show = stack.exec("backup", &[], &["stackshot", "restore", "volumes"]);
    assert_eq!(show.status.code(), Some(1), "{}", text(&show));
    assert!(
        text(&show).contains("/volumes/app/data") && text(&show).contains("add --yes"),
        "{}",
        text(&show)
    );
    assert_eq!(
        stack
            .exec("app", &[], &["test", "-e", "/data/blob.bin"])
            .status
            .code(),
        Some(1), // absent; not 126/127 (could not run)
        "/data/blob.bin is there"
    );

    // One command brings it all back; no app starts before the last dump is loaded.
    let watch = stack.watch();
    let all = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    let events = watch.finish();
    assert!(all.status.success(), "{}", text(&all));
    let app = stack.container("app");
    events.assert_saw(&app, &["die", "start"]);
    let app_start = events.first(&app, "start");
    let dbs = [stack.container("postgres"), stack.container("mariadb")];
    let loads: Vec<i64> = events
        .0
        .iter()
        .filter(|e| {
            dbs.contains(&e.id)
                && (e.action.starts_with("exec_start") || e.action.starts_with("exec_die"))
        })
        .map(|e| e.time_nano)
        .collect();
    assert!(!loads.is_empty(), "no database load seen: {:?}", events.0);
    let last_load = *loads.iter().max().unwrap();
    assert!(
        last_load < app_start,
        "the app started {:.2}s before the last database exec (a load) ended",
        (last_load - app_start) as f64 / 1e9
    );

    let out = stack.exec("app", &[], &["sha256sum", "/data/blob.bin"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&blob_sha),
        "{}",
        text(&out)
    );
    let nested = stack.exec("app", &[], &["cat", "/data/tree/a/b/c.txt"]);
    assert_eq!(String::from_utf8_lossy(&nested.stdout), "nested\n");
    assert_eq!(
        sha256_file(&stack.dir.path().join("uploads/photo.bin")),
        photo_sha
    );
    assert_eq!(stack.psql(PG_QUERY).as_deref(), Some(pg_rows.as_str()));
    assert_eq!(
        stack.mariadb(MARIA_QUERY).as_deref(),
        Some(maria_rows.as_str())
    );
    assert_eq!(
        stack
            .psql("select rolname from pg_roles where rolname = 'reporting'")
            .as_deref(),
        Some("reporting")
    );
    for svc in ["app", "sidekick", "postgres", "mariadb", "bystander"] {
        assert_eq!(stack.state(svc), "running", "{svc}");
    }
    assert_eq!(
        stack
            .exec("app", &[], &["test", "-e", "/data/.stackshot-restore"])
            .status
            .code(),
        Some(1), // absent; not 126/127 (could not run)
        "the staging directory is gone after the swap"
    );

    // A database that has data is left alone without --replace.
    stack
        .psql("INSERT INTO customers (name, balance) VALUES ('marker', 1)")
        .unwrap();
    let refused = stack.exec(
        "backup",
        &[],
        &["stackshot", "restore", "database", "--service", "postgres"],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("already has data"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        stack
            .psql("select count(*) from customers where name = 'marker'")
            .as_deref(),
        Some("1"),
        "nothing changed"
    );
    // With --replace it is overwritten by the dump.
    let replaced = stack.exec(
        "backup",
        &[],
        &[
            "stackshot",
            "restore",
            "database",
            "--service",
            "postgres",
            "--replace",
        ],
    );
    assert!(replaced.status.success(), "{}", text(&replaced));
    assert_eq!(stack.psql(PG_QUERY).as_deref(), Some(pg_rows.as_str()));

    // verify: the run's dumps match, restic check passes.
    stack.assert_verify(2);

    // A dump altered in a copy of the snapshot, backed up again as a run of its own.
    let copy = stack.restore("latest");
    let dump = copy.path().join("databases/postgres/postgres-all.sql");
    let mut bytes = std::fs::read(&dump).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&dump, bytes).unwrap();
    let volumes = format!("{}:/volumes:ro", copy.path().join("volumes").display());
    let databases = format!("{}:/databases:ro", copy.path().join("databases").display());
    let tags = "stackshot,project=stackshot-e2e-restore,mode=atomic,run=tampered,service=postgres,service=mariadb";
    let out = stack.restic(
        &[&volumes, &databases],
        &[
            "backup",
            "-q",
            "--host",
            "stackshot-e2e-restore",
            "--tag",
            tags,
            "/volumes",
            "/databases",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let verify = stack.exec(
        "backup",
        &[],
        &["stackshot", "verify", "--snapshot", "tampered"],
    );
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains("postgres/postgres-all.sql: SHA-256"),
        "{}",
        text(&verify)
    );
    stack
        .psql("INSERT INTO customers (name, balance) VALUES ('marker2', 2)")
        .unwrap();
    let refused = stack.exec(
        "backup",
        &[],
        &[
            "stackshot",
            "restore",
            "database",
            "--service",
            "postgres",
            "--snapshot",
            "tampered",
            "--replace",
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("the dump is damaged"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        stack
            .psql("select count(*) from customers where name = 'marker2'")
            .as_deref(),
        Some("1"),
        "nothing changed"
    );

    // The restore drill: the latest run (the tampered one) fails and says why;
    // the good run passes. No throwaway container or volume is left either way.
    drills(&stack);

    // --to-volume restores one mount elsewhere, for inspection.
    let inspect = "stackshot-e2e-restore-inspect";
    let _ = output(&mut docker(&["volume", "rm", "-f", inspect]));
    let to = stack.exec(
        "backup",
        &[],
        &[
            "stackshot",
            "restore",
            "volumes",
            "--service",
            "legacy",
            "--to-volume",
            inspect,
            "--yes",
        ],
    );
    assert!(to.status.success(), "{}", text(&to));
    let cat = output(&mut docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{inspect}:/v"),
        "stackshot-test/base:local",
        "cat",
        "/v/keep.txt",
    ]));
    let _ = output(&mut docker(&["volume", "rm", "-f", inspect]));
    assert_eq!(
        String::from_utf8_lossy(&cat.stdout),
        "legacy-data\n",
        "{}",
        text(&cat)
    );

    // A volume restore killed halfway leaves the volume exactly as it was.
    killed_restore_changes_nothing(&stack);

    // verify reads what it verifies: one byte damaged in the largest data pack
    // (the app's 5 MB of random data; the dumps are far smaller), which
    // `restic check` without --read-data never reads.
    let good = stack
        .snapshots()
        .into_iter()
        .rev()
        .find(|s| !s["tags"].to_string().contains("run=tampered"))
        .expect("the drill's own backup");
    let good = good["id"].as_str().unwrap().to_string();
    let verify_good = |quick: bool| {
        let mut cmd = vec!["stackshot", "verify", "--snapshot", good.as_str()];
        if quick {
            cmd.push("--quick");
        }
        stack.exec("backup", &[], &cmd)
    };
    let verify = verify_good(false);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        text(&verify).contains("bytes of file data: every blob authenticated"),
        "{}",
        text(&verify)
    );
    let repo = format!("{repo_path}:/repository");
    let damage = output(&mut docker(&[
        "run",
        "--rm",
        "-v",
        &repo,
        "stackshot-test/base:local",
        "sh",
        "-c",
        "f=$(find /repository/data -type f -printf '%s %p\\n' | sort -n | tail -1 | cut -d' ' -f2) && \
         s=$(stat -c %s \"$f\") && chmod u+w \"$f\" && \
         printf '\\377\\000' | dd of=\"$f\" bs=1 seek=$((s / 2)) conv=notrunc 2>/dev/null && echo \"$f\"",
    ]));
    assert!(damage.status.success(), "{}", text(&damage));
    let verify = verify_good(false);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains("reading /volumes: restic dump /volumes from snapshot"),
        "the damage is not named: {}",
        text(&verify)
    );
    let quick = verify_good(true);
    assert!(quick.status.success(), "{}", text(&quick));
    assert!(
        text(&quick).contains("--quick: did not read the file data of /volumes in snapshot"),
        "{}",
        text(&quick)
    );
}

/// Backs up 240 MB in the app's volume, changes the volume, then kills the
/// restic of `restore volumes --service app` once part of the data is written:
/// the volume holds exactly the files it held before, and the app runs again.
fn killed_restore_changes_nothing(stack: &Stack) {
    let big = stack.exec(
        "app",
        &[],
        &[
            "sh",
            "-c",
            "mkdir -p /data/big && for i in 1 2 3 4 5 6; do head -c 40000000 /dev/urandom > /data/big/f$i; done",
        ],
    );
    assert!(big.status.success(), "{}", text(&big));
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let changed = stack.exec(
        "app",
        &[],
        &[
            "sh",
            "-c",
            "rm /data/big/f6 && echo after > /data/after.txt",
        ],
    );
    assert!(changed.status.success(), "{}", text(&changed));
    // Every name, and every file's hash but log.txt's: the running app
    // appends to it every second.
    let listing = || {
        let out = stack.exec(
            "app",
            &[],
            &[
                "sh",
                "-c",
                "cd /data && find . | sort && find . -type f ! -name log.txt | sort | xargs sha256sum",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = listing();
    assert!(before.contains("./after.txt"), "{before}");
    let volume = run(&mut docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Destination \"/data\"}}{{.Source}}{{end}}{{end}}",
        &stack.container("app"),
    ]));
    let staging = std::path::Path::new(volume.trim()).join(".stackshot-restore");

    let restore = Command::new("docker")
        .args(["exec", &stack.container("backup")])
        .args([
            "stackshot",
            "restore",
            "volumes",
            "--service",
            "app",
            "--yes",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop restic once it has written 60 MB of the 240, then kill it. What
    // it wrote is read from /proc/PID/io (`wchar`), not from the staged
    // files' sizes: restic preallocates each file at its full size. It is
    // stopped as soon as it appears and let run in 20 ms slices, so a test
    // thread that the busy CPU lets sleep cannot miss the middle.
    let start = std::time::Instant::now();
    let (pid, written) = 'found: loop {
        let pid = stop_restic_restore(&stack.project, 120);
        // A restic that ends while it is let run is passed over: look again.
        while let Some(written) = written_bytes(&pid) {
            if written > 60_000_000 {
                break 'found (pid, written);
            }
            assert!(
                start.elapsed().as_secs() < 120,
                "the restore's restic wrote only {written} bytes into {} in 120 s",
                staging.display()
            );
            signal_pid(&pid, "CONT");
            std::thread::sleep(std::time::Duration::from_millis(20));
            signal_pid(&pid, "STOP");
        }
        eprintln!("restore: restic {pid} ended while it was let run; looking again");
    };
    eprintln!("restore: restic stopped after writing {written} bytes of about 240 MB, then killed");
    assert!(
        written < 240_000_000,
        "the restore's restic had already written {written} bytes: not halfway"
    );
    assert!(signal_pid(&pid, "KILL"), "the stopped restic {pid} is gone");
    let out = restore.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("nothing was swapped"),
        "the failure says the mounts were left alone: {}",
        text(&out)
    );
    assert_eq!(stack.state("app"), "running");
    assert!(!staging.exists(), "the staging directory was removed");
    assert_eq!(listing(), before, "the volume changed");
    assert!(
        workers(&stack.project).is_empty(),
        "a worker was left: {:?}",
        workers(&stack.project)
    );
    // The killed restic's lock was removed (else `check` and `prune` would
    // find the repository locked for half an hour).
    let locks = stack.restic(&[], &["list", "locks", "--no-lock"]);
    assert!(locks.status.success(), "{}", text(&locks));
    assert_eq!(
        String::from_utf8_lossy(&locks.stdout).trim(),
        "",
        "a lock was left"
    );
}

fn drills(stack: &Stack) {
    let bad = stack.exec("backup", &[], &["stackshot", "drill"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let said = text(&bad);
    assert!(
        said.contains("drill of run tampered")
            && said.contains("postgres: postgres/postgres-all.sql")
            && said.contains("the dump is damaged")
            && said.contains("drill FAILED: 1 problem(s)"),
        "{said}"
    );
    assert_eq!(
        drill_leftovers(&stack.project),
        "",
        "the throwaways are gone after a failed drill"
    );

    let good = stack
        .snapshots()
        .into_iter()
        .find(|s| !s["tags"].to_string().contains("run=tampered"))
        .expect("the drill's own backup");
    let good = good["id"].as_str().unwrap();
    let out = stack.exec(
        "backup",
        &[],
        &["stackshot", "drill", "--snapshot", good, "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let services = report["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{report}");
    for s in services {
        assert_eq!(s["problems"], serde_json::json!([]), "{report}");
        assert!(s["tables"].as_u64().unwrap() >= 1, "{report}");
        assert!(s["rows"].as_u64().unwrap() >= 3, "{report}");
    }
    assert_eq!(
        drill_leftovers(&stack.project),
        "",
        "the throwaways are gone after a drill"
    );
}

/// What an interrupted restore leaves in a volume: never backed up, never
/// silently deleted. A `.stackshot-old` without a swap record (an older
/// stackshot's, maybe the only copy of some files) stops the restore with
/// nothing changed; one whose record says its restore committed is a stale
/// leftover: removed, and said so.
#[test]
fn swap_leftovers_are_not_backed_up_nor_silently_deleted() {
    let _serial = serial();
    let repo = tempfile::tempdir().unwrap();
    let compose = root().join("tests/stack/docker-compose.yml");
    let repo_path = repo.path().to_str().unwrap().to_string();
    let stack = Stack::up_with(
        "stackshot-e2e-leftovers",
        &[&compose],
        &[("E2E_REPOSITORY", &repo_path)],
    );
    stack.wait_for_databases();
    let app = |script: &str| {
        let out = stack.exec("app", &[], &["sh", "-c", script]);
        assert!(out.status.success(), "{script}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    app(
        "echo kept > /data/keep.txt && mkdir -p /data/.stackshot-old/sub \
         && echo only-copy > /data/.stackshot-old/sub/only.txt \
         && mkdir -p /data/.stackshot-restore && echo half > /data/.stackshot-restore/half.bin \
         && echo '{}' > /data/.stackshot-swap.tmp",
    );
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");

    // Not in the snapshot; the rest of the volume is.
    let copy = stack.restore("latest");
    let data = copy.path().join("volumes/app/data");
    assert!(
        data.join("keep.txt").is_file(),
        "the volume is in the snapshot"
    );
    for name in [
        ".stackshot-old",
        ".stackshot-restore",
        ".stackshot-swap.tmp",
    ] {
        assert!(!data.join(name).exists(), "{name} was backed up");
    }

    // A restore refuses while a `.stackshot-old` without a record is there,
    // and changes nothing.
    app("echo changed > /data/keep.txt");
    let refused = stack.exec(
        "backup",
        &[],
        &[
            "stackshot",
            "restore",
            "volumes",
            "--service",
            "app",
            "--yes",
        ],
    );
    assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
    assert!(
        text(&refused).contains("/volumes/app/data/.stackshot-old exists without a swap record"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        app("cat /data/.stackshot-old/sub/only.txt /data/keep.txt"),
        "only-copy\nchanged\n"
    );

    // The same directory, recorded as the old files of a restore that
    // committed: removed by the next restore, which says so, and restores.
    app(
        r#"printf '{"restore":"e2e-1","phase":"committed","mounts":["/volumes/app/data"],"uid":0,"gid":0,"mode":493}' > /data/.stackshot-swap"#,
    );
    let restored = stack.exec(
        "backup",
        &[],
        &[
            "stackshot",
            "restore",
            "volumes",
            "--service",
            "app",
            "--yes",
        ],
    );
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        text(&restored).contains(
            "removed /volumes/app/data/.stackshot-old: the files from before the completed restore e2e-1"
        ),
        "{}",
        text(&restored)
    );
    assert_eq!(app("cat /data/keep.txt"), "kept\n");
    assert_eq!(app("ls -A /data | grep '^.stackshot' || true"), "");
}
