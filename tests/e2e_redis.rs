//! End to end: Redis (`stackshot.redis=true`), on the real engine with
//! Debian's redis-server. A writer keeps writing to it through the whole
//! backup, each write `k:<n>` and `last=<n>` in one MULTI/EXEC. The RDB in
//! the snapshot is loaded into a fresh container: the seeded keys are
//! identical, and the writer's keys are exactly those of one moment (none
//! newer than `last`). Then `restore database` puts it back into the stack's
//! own Redis (refused while it has data, unless `--replace`), and
//! `stackshot drill` loads it into a throwaway.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

const PASSWORD: &str = "redis-secret-password";
const SEEDED: usize = 1000;

/// `redis-cli ARGS` in container `id`, with the password (if any) in the
/// environment; its stdout.
fn cli(id: &str, password: bool, args: &[&str]) -> String {
    let mut c = Command::new("docker");
    c.arg("exec");
    if password {
        c.args(["-e", &format!("REDISCLI_AUTH={PASSWORD}")]);
    }
    c.arg(id).arg("redis-cli").args(args);
    run(&mut c).trim().to_string()
}

/// `Some` once the Redis in container `id` answers PING. A refused
/// connection (it is still loading, or starting) is a `None` to wait on, not
/// a failure: `cli` would panic on it.
fn pong(id: &str, password: bool) -> Option<()> {
    let mut c = Command::new("docker");
    c.arg("exec");
    if password {
        c.args(["-e", &format!("REDISCLI_AUTH={PASSWORD}")]);
    }
    c.arg(id).args(["redis-cli", "PING"]);
    (String::from_utf8_lossy(&output(&mut c).stdout).trim() == "PONG").then_some(())
}

/// What a Redis holds, as this test reads it.
#[derive(Debug, PartialEq)]
struct Content {
    /// `seed:i` → its value, for every seeded key found.
    seeds: Vec<String>,
    /// The writer's `last`.
    last: u64,
    /// The n of every `k:<n>`.
    written: BTreeSet<u64>,
    /// DBSIZE.
    keys: usize,
}

fn content(id: &str, password: bool) -> Content {
    let names: Vec<String> = (1..=SEEDED).map(|i| format!("seed:{i}")).collect();
    let mut args = vec!["MGET"];
    args.extend(names.iter().map(String::as_str));
    let seeds = cli(id, password, &args)
        .lines()
        .map(str::to_string)
        .collect();
    let written = cli(id, password, &["--scan", "--pattern", "k:*"])
        .lines()
        .map(|k| k.trim_start_matches("k:").parse().expect("k:<n>"))
        .collect();
    Content {
        seeds,
        last: cli(id, password, &["GET", "last"]).parse().unwrap_or(0),
        written,
        keys: cli(id, password, &["DBSIZE"]).parse().expect("DBSIZE"),
    }
}

/// The dump is one moment of the writer's: `k:last` is there, none is newer.
fn assert_one_moment(c: &Content) {
    assert!(c.last > 0, "the writer had written nothing: {c:?}");
    assert!(c.written.contains(&c.last), "k:{} is missing", c.last);
    let newer: Vec<&u64> = c.written.iter().filter(|n| **n > c.last).collect();
    assert!(
        newer.is_empty(),
        "keys newer than last={}: {newer:?}",
        c.last
    );
    assert_eq!(c.keys, SEEDED + 1 + c.written.len(), "stray keys: {c:?}");
    let want: Vec<String> = (1..=SEEDED).map(|i| format!("value-{i}")).collect();
    assert_eq!(c.seeds, want, "seeded values differ");
}

/// A container removed when dropped.
struct Fresh(String);

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = output(&mut docker(&["rm", "-f", "-v", &self.0]));
    }
}

#[test]
fn redis_is_dumped_at_one_moment_and_restored() {
    let _serial = serial();
    let stack = Stack::up_overridden("stackshot-e2e-redis", "redis.override.yml");
    let redis = stack.container("redis");
    wait_for("redis", 60, || pong(&redis, true));
    let seed = format!(
        "for i in $(seq {SEEDED}); do echo \"SET seed:$i value-$i\"; done | redis-cli >/dev/null"
    );
    let out = stack.exec(
        "redis",
        &[("REDISCLI_AUTH", PASSWORD)],
        &["bash", "-c", &seed],
    );
    assert!(out.status.success());
    wait_for("the writer", 60, || {
        (cli(&redis, true, &["GET", "last"])
            .parse::<u64>()
            .unwrap_or(0)
            >= 20)
            .then_some(())
    });

    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 0, "backup failed: {report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    // Redis cannot be pinned: its dump ran inside the window, as the note says.
    assert_exec_inside_window(&stack, &events, "redis", "--rdb");
    let dump = dump_of(&report, "redis/dump.rdb");
    assert_eq!(dump["engine"], "redis");
    assert!(
        dump["server_version"].as_str().unwrap().starts_with("7."),
        "{dump}"
    );
    assert!(
        report["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("redis: dumped inside the window")),
        "{report}"
    );
    // The one with `--requirepass` on its command line logged in and dumped.
    let cmdline = dump_of(&report, "redis-cmdline/dump.rdb");
    assert!(cmdline["bytes"].as_u64() > Some(0), "{cmdline}");
    // The writer went on through the backup.
    let after: u64 = cli(&redis, true, &["GET", "last"]).parse().unwrap();

    // Plain restic and sha256sum: the RDB is in the one snapshot, checked.
    let restored = stack.restore("latest");
    let dbs = restored.path().join("databases");
    let sums = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dbs));
    assert!(sums.contains("redis/dump.rdb: OK"), "{sums}");

    // Into a fresh container of the same image, with no password.
    let fresh = Fresh(
        run(&mut docker(&[
            "create",
            "--name",
            "stackshot-e2e-redis-fresh",
            "stackshot-test/redis:local",
        ]))
        .trim()
        .to_string(),
    );
    run(&mut docker(&[
        "cp",
        dbs.join("redis/dump.rdb").to_str().unwrap(),
        &format!("{}:/data/dump.rdb", fresh.0),
    ]));
    run(&mut docker(&["start", &fresh.0]));
    wait_for("the fresh redis", 60, || pong(&fresh.0, false));
    let loaded = content(&fresh.0, false);
    assert_one_moment(&loaded);
    assert!(
        loaded.last < after,
        "the writer wrote nothing during the backup (last {} in the dump, {after} after)",
        loaded.last
    );
    drop(fresh);

    // `restore database` into the stack's own Redis: the writer stopped, the
    // data replaced by something else.
    stack.compose_ok(&["stop", "redis-writer"]);
    cli(&redis, true, &["FLUSHALL"]);
    cli(&redis, true, &["SET", "junk", "1"]);
    let refused = stack.restore_database("redis", false);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("it already has data (1 keys"), "{err}");
    assert_eq!(
        cli(&redis, true, &["GET", "junk"]),
        "1",
        "refused, yet changed"
    );

    // Redis reads its RDB at start: it is stopped and started again.
    let said = stack.replace_database("redis");
    assert!(said.contains("Restored redis/dump.rdb"), "{said}");
    wait_for("the restored redis", 60, || pong(&redis, true));
    let back = content(&redis, true);
    assert_eq!(back, loaded, "restore database gave other data");
    assert_eq!(cli(&redis, true, &["EXISTS", "junk"]), "0");

    // The drill loads it into a throwaway and counts the keys.
    let line = stack.drill_line("redis");
    assert!(
        line.contains(&format!("{} rows", loaded.keys)),
        "{line} (want {} keys)",
        loaded.keys
    );
}
