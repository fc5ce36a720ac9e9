//! `stackshot::restic` against the real restic binary, in temporary directories.
//! restic must be installed: these tests fail (they do not skip) without it.
//! `scripts/test` runs them on the host's restic 0.14, then on Debian
//! trixie's 0.18.0 and forky's 0.19 (first on PATH, with
//! `STACKSHOT_EXPECT_RESTIC` naming the version put there).

use std::path::Path;

use stackshot::config::ResticSettings;
use stackshot::env::Secret;
use stackshot::restic::{
    BackupEvent, BackupExit, RepoOpened, Restic, ResticError, Version, backup_args,
    classify_backup_exit, parse_backup_line,
};
use tempfile::TempDir;

const PASSWORD: &str = "correct-horse-battery-staple";

/// Fails the test with a clear message when restic is not on PATH.
fn require_restic() {
    match std::process::Command::new("restic").arg("version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "tests/restic.rs needs the restic binary (0.14 or newer) on PATH, e.g. `apt-get install restic`; running `restic version` gave {other:?}"
        ),
    }
}

/// A restic for `repository`, with its cache inside `dir`.
fn restic(dir: &Path, repository: &str, password: &str) -> Restic {
    require_restic();
    let cache = dir.join("cache").display().to_string();
    Restic::new(&ResticSettings {
        repository: Secret::new(repository),
        env: vec![
            ("RESTIC_CACHE_DIR".into(), Secret::new(cache)),
            ("RESTIC_PASSWORD".into(), Secret::new(password)),
            ("RESTIC_REPOSITORY".into(), Secret::new(repository)),
        ],
        preflight_timeout: stackshot::restic::reach::PREFLIGHT_TIMEOUT,
    })
}

fn repo_path(dir: &TempDir) -> String {
    dir.path().join("repo").display().to_string()
}

#[tokio::test]
async fn version_is_read_and_cached() {
    let dir = TempDir::new().unwrap();
    let r = restic(dir.path(), &repo_path(&dir), PASSWORD);
    let v = r.version().await.unwrap();
    assert!(v >= Version::new(0, 14, 0), "restic {v} is older than 0.14");
    // scripts/test runs these tests once more with newer restics first on PATH,
    // and says which version it put there.
    if let Ok(expected) = std::env::var("STACKSHOT_EXPECT_RESTIC") {
        assert_eq!(v.to_string(), expected, "the restic on PATH");
    }
    assert_eq!(r.version().await.unwrap(), v);
}

#[tokio::test]
async fn missing_repository_is_initialised_once() {
    let dir = TempDir::new().unwrap();
    let repo = repo_path(&dir);
    let r = restic(dir.path(), &repo, PASSWORD);
    assert_eq!(r.open_or_init().await.unwrap(), RepoOpened::Initialised);
    assert!(Path::new(&repo).join("config").is_file());
    assert_eq!(r.open_or_init().await.unwrap(), RepoOpened::Existing);
    // An empty directory (a freshly mounted volume) is "missing" too.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = restic(dir.path(), &empty.display().to_string(), PASSWORD);
    assert_eq!(r.open_or_init().await.unwrap(), RepoOpened::Initialised);
}

#[tokio::test]
async fn open_gives_the_repository_id_or_none() {
    let dir = TempDir::new().unwrap();
    let repo = repo_path(&dir);
    let r = restic(dir.path(), &repo, PASSWORD);
    assert_eq!(r.open().await.unwrap(), None);
    assert!(!Path::new(&repo).exists(), "open must not create anything");
    let created = r.init().await.unwrap();
    assert_eq!(created.len(), 64, "{created}");
    assert_eq!(r.open().await.unwrap().as_deref(), Some(created.as_str()));
    // The id restic itself reads from the config.
    let out = std::process::Command::new("restic")
        .args(["--no-lock", "cat", "config"])
        .env("RESTIC_REPOSITORY", &repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["id"], created.as_str());
    // Another repository at another place has another id.
    let other = restic(
        dir.path(),
        &dir.path().join("other").display().to_string(),
        PASSWORD,
    );
    assert_ne!(other.init().await.unwrap(), created);
}

#[tokio::test]
async fn wrong_password_is_reported_without_secrets() {
    let dir = TempDir::new().unwrap();
    let repo = repo_path(&dir);
    restic(dir.path(), &repo, PASSWORD)
        .open_or_init()
        .await
        .unwrap();
    let wrong = "not-the-password-4711";
    let r = restic(dir.path(), &repo, wrong);
    let err = r.open_or_init().await.unwrap_err();
    assert_eq!(
        err,
        ResticError::WrongPassword {
            repository: repo.clone()
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("RESTIC_PASSWORD") && !msg.contains('\n'),
        "{msg}"
    );
    assert!(!msg.contains(wrong) && !msg.contains(PASSWORD), "{msg}");
    // The generic helper says the same, with the exit code and restic's words.
    let msg = format!("{:#}", r.snapshots(&[]).await.unwrap_err());
    assert!(msg.contains(&repo) && msg.contains("exit code"), "{msg}");
    assert!(msg.contains("wrong password"), "{msg}");
    assert!(!msg.contains(wrong) && !msg.contains(PASSWORD), "{msg}");
}

#[tokio::test]
async fn unreachable_repository_is_not_initialised() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a directory").unwrap();
    let repo = file.join("repo").display().to_string();
    let r = restic(dir.path(), &repo, PASSWORD);
    match r.open_or_init().await.unwrap_err() {
        ResticError::Unreachable { repository, detail } => {
            assert_eq!(repository, repo);
            assert!(detail.contains("not a directory"), "{detail}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(file.is_file());

    // A REST server that is not there, with credentials in the URL (loopback
    // port 9 only): the preflight's TCP probe says so at once, whatever
    // restic's version (0.16+ would retry for 15 minutes).
    let url = "rest:http://backup:url-secret-99@127.0.0.1:9/";
    let r = restic(dir.path(), url, PASSWORD);
    let started = std::time::Instant::now();
    let err = r.open_or_init().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ResticError::NoConnection { .. }), "{err:?}");
    assert!(
        msg.starts_with(
            "restic repository rest:http://backup:***@127.0.0.1:9/: cannot connect to 127.0.0.1:9: 127.0.0.1:9: Connection refused"
        ),
        "{msg}"
    );
    assert!(
        !msg.contains("url-secret-99") && !msg.contains('\n'),
        "{msg}"
    );
    eprintln!("refused endpoint: failed in {:?}", started.elapsed());
}

/// A server on loopback that takes connections and never answers, as a hung
/// storage server (restic 0.14 gives up on a 503 at once, 0.16+ retries it
/// for 15 minutes; both wait on a silent server).
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[tokio::test]
async fn a_backend_that_does_not_answer_is_given_up_on_after_the_preflight_timeout() {
    let dir = TempDir::new().unwrap();
    let port = silent_server();
    let url = format!("rest:http://backup:url-secret-99@127.0.0.1:{port}/");
    require_restic();
    let settings = ResticSettings {
        repository: Secret::new(&url),
        env: vec![
            (
                "RESTIC_CACHE_DIR".into(),
                Secret::new(dir.path().join("cache").display().to_string()),
            ),
            ("RESTIC_PASSWORD".into(), Secret::new(PASSWORD)),
            ("RESTIC_REPOSITORY".into(), Secret::new(&url)),
        ],
        preflight_timeout: std::time::Duration::from_secs(3),
    };
    let r = Restic::new(&settings);
    let started = std::time::Instant::now();
    let err = r.open_or_init().await.unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    let prefix = format!(
        "restic repository rest:http://backup:***@127.0.0.1:{port}/: `restic cat config` did not finish within 3 s and was stopped (restic retries a failing backend for up to 15 minutes): "
    );
    assert!(matches!(err, ResticError::TimedOut { .. }), "{err:?}");
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(
        !msg.contains("url-secret-99") && !msg.contains('\n'),
        "{msg}"
    );
    // Killed, not waited for: well under the 15 minutes (no timing
    // assertion beyond that, just the measurement).
    assert!(took < std::time::Duration::from_secs(120), "{took:?}");
    eprintln!("silent backend: given up after {took:?}: {msg}");
}

#[tokio::test]
async fn backup_then_snapshots_and_unlock() {
    let dir = TempDir::new().unwrap();
    let r = restic(dir.path(), &repo_path(&dir), PASSWORD);
    r.open_or_init().await.unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), "hello").unwrap();
    std::fs::write(data.join("sub/b.txt"), "world").unwrap();
    let data = data.display().to_string();

    let tags = ["stackshot", "project=demo", "mode=atomic"].map(String::from);
    let args = backup_args("demo-host", &tags, &[&data]).unwrap();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = r.command(&argv).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(classify_backup_exit(0), BackupExit::Success);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summaries: Vec<_> = stdout
        .lines()
        .filter_map(parse_backup_line)
        .filter_map(|e| match e {
            BackupEvent::Summary(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(summaries.len(), 1, "{stdout}");
    let summary = &summaries[0];
    assert_eq!((summary.files_new, summary.total_files_processed), (2, 2));
    assert_eq!(summary.total_bytes_processed, 10);
    let id = summary.snapshot_id.clone().expect("a snapshot id");

    let listed = r.snapshots(&["stackshot"]).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let snap = &listed[0];
    assert!(snap.matches(&id), "summary {id} vs snapshot {}", snap.id);
    assert_eq!(snap.hostname, "demo-host");
    assert_eq!(snap.tags, tags);
    assert_eq!(snap.paths, [data]);
    assert_eq!(snap.short_id, snap.id[..8]);
    // Tags are ANDed, and "=" in a tag is kept.
    assert_eq!(
        r.snapshots(&["stackshot", "project=demo"]).await.unwrap(),
        listed
    );
    assert!(r.snapshots(&["project=other"]).await.unwrap().is_empty());
    assert!(r.snapshots(&["a,b"]).await.is_err());

    // unlock removes a stale lock (its holder was killed) and leaves a live one.
    // (restic does not take a lock over an exclusive stale one, so both are
    // shared: `restic backup --stdin` holds one while it waits for data.)
    let locks_dir = Path::new(&repo_path(&dir)).join("locks");
    // Finished lock files only: restic may write one under a temporary name
    // first and rename it.
    let count = || {
        std::fs::read_dir(&locks_dir)
            .unwrap()
            .flatten()
            .filter(|e| stackshot::restic::locks::is_lock_id(&e.file_name().to_string_lossy()))
            .count()
    };
    let mut stale = hold_shared_lock(dir.path(), &repo_path(&dir));
    wait_locks(&count, 1);
    stale.kill().unwrap(); // SIGKILL: restic cannot remove its lock
    stale.wait().unwrap();
    assert_eq!(count(), 1, "the killed holder's lock stays behind");
    let mut live = hold_shared_lock(dir.path(), &repo_path(&dir));
    wait_locks(&count, 2);
    r.unlock().await.unwrap();
    let left = count();
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(
        left, 1,
        "unlock must remove the stale lock and keep the live one"
    );
}

/// `restic backup --stdin` holds a shared lock while it waits for data (it is
/// killed before its stdin closes, so it never writes a snapshot).
fn hold_shared_lock(dir: &Path, repo: &str) -> std::process::Child {
    std::process::Command::new("restic")
        .args(["backup", "--stdin", "--host", "h"])
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", dir.join("cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_locks(count: &dyn Fn() -> usize, n: usize) {
    for _ in 0..300 {
        if count() >= n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no lock appeared");
}

#[tokio::test]
async fn secrets_travel_in_the_environment_only() {
    let dir = TempDir::new().unwrap();
    // A stand-in restic that records its argv and environment.
    let fake = dir.path().join("fake-restic");
    let record = dir.path().join("record");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"argv: $*\" > {0}\necho \"password: $RESTIC_PASSWORD\" >> {0}\necho \"repository: $RESTIC_REPOSITORY\" >> {0}\necho 'restic 0.17.3 compiled with go1.23.3 on linux/amd64'\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The preflight connects to an s3: endpoint first: one that listens.
    let endpoint = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let repository = format!(
        "s3:https://key:s3-secret@127.0.0.1:{}/bucket",
        endpoint.local_addr().unwrap().port()
    );
    let settings = ResticSettings {
        repository: Secret::new(&repository),
        env: vec![("RESTIC_PASSWORD".into(), Secret::new(PASSWORD))],
        preflight_timeout: stackshot::restic::reach::PREFLIGHT_TIMEOUT,
    };
    let r = Restic::with_binary(&fake, &settings);
    assert_eq!(r.version().await.unwrap(), Version::new(0, 17, 3));
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(recorded.contains("argv: version\n"), "{recorded}");
    assert!(
        recorded.contains(&format!("password: {PASSWORD}\n")),
        "{recorded}"
    );
    assert!(recorded.contains(&format!("repository: {repository}\n")));

    // Every call stackshot makes: the secrets in the environment, never in argv.
    let every = dir.path().join("every-call");
    let log = dir.path().join("calls");
    std::fs::write(
        &every,
        format!(
            "#!/bin/sh\n{{ echo \"argv: $*\"; echo \"password: $RESTIC_PASSWORD\"; }} >> {0}\n\
             case \" $* \" in\n\
             *' version '*) echo 'restic 0.14.0 compiled with go1.19.8 on linux/amd64' ;;\n\
             *' cat config '*) [ -e {1} ] && {{ echo '{{\"version\":2,\"id\":\"0123abcd\"}}'; exit 0; }}; touch {1}; echo 'Fatal: unable to open config file: stat /r/config: no such file or directory' >&2; exit 1 ;;\n\
             *' snapshots '*|*' forget '*) echo '[]' ;;\n\
             esac\n",
            log.display(),
            dir.path().join("initialised").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&every, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Restic::with_binary(&every, &settings);
    assert_eq!(r.open_or_init().await.unwrap(), RepoOpened::Initialised);
    r.unlock().await.unwrap();
    r.snapshots(&["stackshot"]).await.unwrap();
    let policy = stackshot::config::Retention {
        last: Some(2),
        ..Default::default()
    };
    stackshot::retention::forget(&r, &policy, "h", "p", true)
        .await
        .unwrap();
    stackshot::retention::check(&r).await.unwrap();
    r.run(&["dump", "latest", "/databases/SHA256SUMS"])
        .await
        .unwrap();
    r.run(&["restore", "latest", "--target", "/restore"])
        .await
        .unwrap();
    let args = backup_args("h", &["stackshot".to_string()], &["/volumes"]).unwrap();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = r.command(&argv).status().await.unwrap();
    assert!(status.success());
    let calls = std::fs::read_to_string(&log).unwrap();
    for sub in [
        "cat config",
        "init",
        "unlock",
        "snapshots",
        "forget",
        "check",
        "dump",
        "restore",
        "backup",
    ] {
        assert!(
            calls
                .lines()
                .any(|l| l.starts_with("argv: ") && l.contains(sub)),
            "restic {sub} was not called: {calls}"
        );
    }
    for line in calls.lines() {
        if let Some(argv) = line.strip_prefix("argv: ") {
            assert!(
                !argv.contains(PASSWORD) && !argv.contains("s3-secret"),
                "a secret in argv: {argv}"
            );
        } else {
            assert_eq!(line, format!("password: {PASSWORD}"), "{calls}");
        }
    }

    // A binary that does not exist: one clear line.
    let r = Restic::with_binary(dir.path().join("no-such-restic"), &settings);
    let err = r.open_or_init().await.unwrap_err();
    assert!(matches!(err, ResticError::NotRunnable { .. }), "{err:?}");
    assert!(err.to_string().contains("install restic"), "{err}");
}

/// `restic backup --json` of `paths` (relative to `cwd`) with tags; returns the snapshot id.
fn plain_backup(dir: &Path, repo: &str, cwd: &Path, paths: &[&str], tags: &str) -> String {
    let out = std::process::Command::new("restic")
        .args(["backup", "--json", "--host", "h", "--tag", tags])
        .args(paths)
        .current_dir(cwd)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().rev().find_map(parse_backup_line) {
        Some(BackupEvent::Summary(s)) => s.snapshot_id.unwrap(),
        other => panic!("no summary: {other:?}"),
    }
}

fn plain(dir: &Path, repo: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap()
}

/// Two restic snapshots (one of `volumes`, one of `databases`) merged by
/// rustic_core into one that plain restic lists, restores byte for byte and
/// checks with --read-data, also after the parts are forgotten and pruned.
#[tokio::test]
async fn merged_snapshot_reads_with_plain_restic() {
    use stackshot::backup::merge::{MergeInto, merge_blocking};
    let dir = TempDir::new().unwrap();
    let repo = repo_path(&dir);
    let r = restic(dir.path(), &repo, PASSWORD);
    r.open_or_init().await.unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("volumes/app/data")).unwrap();
    std::fs::create_dir_all(src.join("databases/pg")).unwrap();
    let blob: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(src.join("volumes/app/data/blob.bin"), &blob).unwrap();
    std::fs::write(src.join("databases/pg/all.sql"), b"select 1;\n").unwrap();
    let a = plain_backup(dir.path(), &repo, &src, &["volumes"], "part");
    let b = plain_backup(dir.path(), &repo, &src, &["databases"], "part");

    // The run's lock, held while rustic writes: a prune started meanwhile
    // is refused.
    let mut lock = r.hold_lock().await.unwrap();
    let keys = |dir: &Path| {
        let out = plain(dir, &repo, &["key", "list", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let stop = chrono::DateTime::parse_from_rfc3339("2026-11-22T02:00:01.5Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let tags = vec!["stackshot".to_string(), "mode=atomic".to_string()];
    let backend = stackshot::restic::backend::map(&repo, &Default::default()).unwrap();
    let merged = merge_blocking(
        &backend,
        PASSWORD,
        &[a.clone(), b.clone()],
        &MergeInto {
            host: "shop",
            tags: &tags,
            time: stop,
        },
    )
    .unwrap();
    let pruned = plain(dir.path(), &repo, &["prune"]);
    assert!(
        !pruned.status.success(),
        "a prune ran beside the run's lock"
    );
    assert!(
        String::from_utf8_lossy(&pruned.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    lock.check(&r).await.unwrap();
    lock.release(&r).await.unwrap();
    assert!(
        r.lock_ids().await.unwrap().is_empty(),
        "the run's lock stayed behind"
    );
    assert_eq!(keys(dir.path()), 1, "holding the lock added a key");
    let out = plain(dir.path(), &repo, &["forget", &a, &b, "--prune"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = plain(dir.path(), &repo, &["snapshots", "--json"]);
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["id"], merged);
    assert_eq!(snaps[0]["hostname"], "shop");
    assert_eq!(snaps[0]["time"], "2026-11-22T02:00:01.5Z");
    let mut t: Vec<&str> = snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    t.sort();
    assert_eq!(t, ["mode=atomic", "stackshot"]);

    let target = dir.path().join("restored");
    let out = plain(
        dir.path(),
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // restic stores relative paths under the absolute working directory.
    let base = target.clone();
    assert_eq!(
        std::fs::read(base.join("volumes/app/data/blob.bin")).unwrap(),
        blob
    );
    assert_eq!(
        std::fs::read(base.join("databases/pg/all.sql")).unwrap(),
        b"select 1;\n"
    );
    let out = plain(dir.path(), &repo, &["check", "--read-data"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An exclusive lock held elsewhere (`restic key passwd` holds one while it
    // waits for the new password on stdin): the run's lock is refused, in
    // restic's words, naming the holder.
    let mut holder = std::process::Command::new("restic")
        .args(["key", "passwd"])
        .env("RESTIC_REPOSITORY", &repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", dir.path().join("cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if !r.lock_ids().await.unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let refused = r.hold_lock().await;
    let _ = holder.kill();
    let _ = holder.wait();
    let e = format!("{:#}", refused.unwrap_err());
    assert!(e.contains("locked exclusively"), "{e}");
    assert!(e.contains(&format!("PID {}", holder.id())), "{e}");
}

/// `stackshot::copy` on the real restic: a missing copy repository is
/// created with the primary's chunker parameters; each copy sends the
/// runs newer than the copy's newest, never another project's, never one
/// the copy's retention forgot; a wrong copy password fails the copy in
/// one line without the password.
#[tokio::test]
async fn runs_are_copied_once_and_the_copy_keeps_its_own_retention() {
    let dir = TempDir::new().unwrap();
    let primary_repo = dir.path().join("primary").display().to_string();
    let copy_repo = dir.path().join("copy").display().to_string();
    let cache = dir.path().join("cache").display().to_string();
    let config = |copy_password: &str| {
        stackshot::config::Config::from_env(&stackshot::env::Env::from_pairs([
            ("RESTIC_REPOSITORY", primary_repo.as_str()),
            ("RESTIC_PASSWORD", PASSWORD),
            ("RESTIC_CACHE_DIR", cache.as_str()),
            ("COPY_REPOSITORY", copy_repo.as_str()),
            ("COPY_PASSWORD", copy_password),
            ("COPY_KEEP_LAST", "1"),
            ("COPY_KEEP_DAILY", "0"),
            ("COPY_KEEP_WEEKLY", "0"),
            ("COPY_KEEP_MONTHLY", "0"),
            ("COPY_KEEP_YEARLY", "0"),
        ]))
        .unwrap()
    };
    let good = config("copy-password");
    let primary = restic(dir.path(), &primary_repo, PASSWORD);
    primary.init().await.unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let backup = |tags: &'static str, n: u32| {
        let primary = &primary;
        let data = data.clone();
        async move {
            std::fs::write(data.join("file"), format!("run {n}")).unwrap();
            let path = data.display().to_string();
            primary
                .run(&["backup", "--tag", tags, "--host", "h", &path])
                .await
                .unwrap();
        }
    };
    backup("stackshot,project=p", 1).await;
    backup("stackshot,project=other", 2).await;
    backup("stackshot,project=p", 3).await;
    let ours = |list: Vec<stackshot::restic::SnapshotInfo>| -> Vec<String> {
        list.into_iter()
            .filter(|s| s.tags.contains(&"project=p".to_string()))
            .map(|s| s.id)
            .collect()
    };
    let source = ours(primary.snapshots(&["stackshot"]).await.unwrap());
    assert_eq!(source.len(), 2);

    let copy_cfg = good.copy.as_ref().unwrap();
    let report = stackshot::copy::copy(&primary, copy_cfg, "h", "p").await;
    assert_eq!(
        report.outcome,
        stackshot::copy::CopyOutcome::Copied,
        "{}",
        report.line()
    );
    assert!(report.initialised, "{}", report.line());
    let short: Vec<String> = source.iter().map(|id| id[..8].to_string()).collect();
    assert_eq!(report.copied, short, "{}", report.line());
    let retention = report.retention.as_ref().unwrap();
    assert_eq!(
        (retention.kept, retention.removed.len()),
        (1, 1),
        "{}",
        report.line()
    );

    let copy = primary.with_settings(&copy_cfg.restic);
    let held = copy.snapshots(&["stackshot"]).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].original.as_deref(), Some(source[1].as_str()));
    // The same chunker parameters: what both hold deduplicates.
    let chunker = |out: String| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["chunker_polynomial"].clone()
    };
    assert_eq!(
        chunker(copy.run(&["cat", "config"]).await.unwrap()),
        chunker(primary.run(&["cat", "config"]).await.unwrap())
    );

    // Nothing new: nothing copied, and run 1 (forgotten in the copy, kept
    // in the primary) does not come back.
    let report = stackshot::copy::copy(&primary, copy_cfg, "h", "p").await;
    assert_eq!(
        report.outcome,
        stackshot::copy::CopyOutcome::Copied,
        "{}",
        report.line()
    );
    assert!(report.copied.is_empty(), "{}", report.line());
    backup("stackshot,project=p", 4).await;
    let report = stackshot::copy::copy(&primary, copy_cfg, "h", "p").await;
    let newest = ours(primary.snapshots(&["stackshot"]).await.unwrap());
    assert_eq!(
        report.copied,
        [newest[2][..8].to_string()],
        "{}",
        report.line()
    );
    assert_eq!(copy.snapshots(&["stackshot"]).await.unwrap().len(), 1);

    // A wrong password for the copy: a failed copy, in one line, without it.
    let bad = config("not-the-copy-password");
    let report = stackshot::copy::copy(&primary, bad.copy.as_ref().unwrap(), "h", "p").await;
    assert_eq!(
        report.outcome,
        stackshot::copy::CopyOutcome::Failed,
        "{}",
        report.line()
    );
    let line = report.line();
    assert!(
        !line.contains('\n') && !line.contains("not-the-copy-password"),
        "{line}"
    );
    assert!(line.contains("password"), "{line}");
}
