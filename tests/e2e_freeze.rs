//! End to end: freeze mode. The writer (rows to PostgreSQL and MariaDB, then
//! its counter file) and `web`, an HTTP server on loopback, are frozen for
//! the short window instead of stopped; the app and its sidekick are stopped
//! beside them (tests/stack/web.override.yml, freeze.override.yml).
//!
//! 1. Requests to `web` sent through the backup all succeed: those sent while
//!    it is frozen wait and are answered after the thaw. The engine's events
//!    show a pause and an unpause, never a stop, of the frozen two, and a
//!    stop of the others.
//! 2. The snapshot is one moment: the writer's counter and both dumps agree
//!    as they do after a power cut (each row written at most one step ahead
//!    of the next), read back from a plain restic restore.
//! 3. stackshot killed (SIGKILL) inside a frozen window leaves the two
//!    paused; the sidecar's long-running stackshot (`idle`, as the daemon)
//!    sees the window's owner gone and thaws them within seconds. (A
//!    start-up's recovery thaws the same journal: unit-tested.)
//! 4. A container the engine will not pause (paused already, by hand) is
//!    stopped instead, the report says why, and it runs afterwards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;
use stackshot::backup::pause;

/// One request to `web`: when it began and ended (ns since the epoch, the
/// engine's clock on this host), and what went wrong, if anything.
struct Request {
    began: i64,
    ended: i64,
    error: Option<String>,
}

fn epoch_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Clients on the host sending GET / to `port` one after another, each on
/// its own thread, until `stop` is set.
fn load(port: u16, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Vec<Request>>> {
    (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut done = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let began = epoch_ns();
                    let error = match http_get(port, "/") {
                        Some((200, body)) if body.contains("frozen-not-down") => None,
                        Some((status, body)) => Some(format!("HTTP {status}: {body}")),
                        None => Some("no answer (refused, reset or timed out)".into()),
                    };
                    done.push(Request {
                        began,
                        ended: epoch_ns(),
                        error,
                    });
                    std::thread::sleep(Duration::from_millis(5));
                }
                done
            })
        })
        .collect()
}

/// `.State.Paused` and `.State.Running` of a container.
fn paused_running(id: &str) -> (bool, bool) {
    let out = run(&mut docker(&[
        "inspect",
        "-f",
        "{{.State.Paused}} {{.State.Running}}",
        id,
    ]));
    let mut words = out.split_whitespace().map(|w| w == "true");
    (words.next().unwrap(), words.next().unwrap())
}

/// The loopback port container `id`'s port 80 is published on (a new one
/// after each start).
fn published(id: &str) -> u16 {
    run(&mut docker(&["port", id, "80/tcp"]))
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .expect("web's published port")
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["container"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn frozen_apps_answer_every_request_and_a_killed_run_is_thawed() {
    let _serial = serial();
    let stack = writer::stack_on(
        "stackshot-e2e-freeze",
        &["web.override.yml", "freeze.override.yml"],
        &[],
    );
    let (writer, web) = (stack.container("writer"), stack.container("web"));
    let port = published(&web);
    wait_for("web to answer", 60, || {
        http_get(port, "/").filter(|(s, _)| *s == 200).map(|_| ())
    });
    wait_for("the writer to write", 60, || {
        (writer::counter(&stack) >= 10).then_some(())
    });

    // 1. The backup with clients sending requests through it.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(port, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let requests: Vec<Request> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["window_mode"], "short", "{report}");
    let mut frozen = names(&report["window"]["frozen"]);
    frozen.sort();
    let mut want = vec![stack.container_name("web"), stack.container_name("writer")];
    want.sort();
    assert_eq!(frozen, want, "{report}");
    let stopped = names(&report["window"]["stopped"]);
    assert_eq!(stopped.len(), 2, "the app and its sidekick: {report}");
    for id in [&writer, &web] {
        // `actions` lists the lifecycle only: the pauses are read by their times.
        for action in ["pause", "unpause"] {
            assert_eq!(
                events.times(id, action).len(),
                1,
                "one {action} of {id}: {:?}",
                events.actions(id)
            );
        }
        let actions = events.actions(id);
        assert!(
            !actions.iter().any(|a| a == "stop" || a == "die"),
            "a frozen container was stopped: {actions:?}"
        );
    }
    events.assert_saw(&stack.container("app"), &["stop", "die", "start"]);

    let failed: Vec<&Request> = requests.iter().filter(|r| r.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, the first: {:?}",
        failed.len(),
        requests.len(),
        failed[0].error
    );
    // A request sent to `web` while it is frozen waits for the thaw: one
    // overlapping the freeze took at least half of it, which an unfrozen
    // nginx serving a static page never takes. (The engine stamps its
    // events after the pause and the thaw, so a request may end a moment
    // before the `unpause` event.)
    let (paused, unpaused) = (events.first(&web, "pause"), events.first(&web, "unpause"));
    let frozen_for = unpaused - paused;
    let waited: Vec<&Request> = requests
        .iter()
        .filter(|r| r.began < unpaused && r.ended > paused)
        .filter(|r| r.ended - r.began >= frozen_for / 2)
        .collect();
    assert!(
        !waited.is_empty(),
        "no request waited through web's freeze ({:.3} s): {} requests",
        frozen_for as f64 / 1e9,
        requests.len()
    );
    let worst = requests
        .iter()
        .map(|r| (r.ended - r.began) as f64 / 1e9)
        .fold(0.0, f64::max);
    eprintln!(
        "freeze: {} requests, none failed, {} answered after the thaw; web frozen {:.2} s, worst latency {worst:.2} s; window {:.2} s",
        requests.len(),
        waited.len(),
        frozen_for as f64 / 1e9,
        report["window"]["seconds"].as_f64().unwrap_or_default()
    );

    // 2. One moment, as after a power cut.
    let writer::Moment {
        counter: n,
        pg,
        maria,
        ..
    } = writer::moment(&stack, "latest");
    let (p, m) = (pg.len() as u64, maria.len() as u64);
    assert_eq!(pg, (1..=p).collect(), "PostgreSQL rows not 1..{p}");
    assert_eq!(maria, (1..=m).collect(), "MariaDB rows not 1..{m}");
    assert!(
        n >= 10 && n <= m && m <= p && p <= n + 1,
        "not one moment of the writer: counter {n}, MariaDB up to {m}, PostgreSQL up to {p}"
    );

    // 3. stackshot killed inside the frozen window.
    let pauses = stack.volume_dir("restic-cache").join("pause");
    let _ = std::fs::remove_dir_all(&pauses);
    std::fs::create_dir(&pauses).unwrap();
    let release = Release(&pauses);
    let held = std::thread::scope(|s| {
        let run = s.spawn(|| {
            stack.exec(
                "backup",
                &[(pause::DIR_VAR, "/cache/pause"), (pause::AT_VAR, "window")],
                &["stackshot", "backup", "--json"],
            )
        });
        let t = Instant::now();
        while !pauses.join("window").exists() {
            assert!(!run.is_finished(), "the run ended before its window");
            assert!(t.elapsed() < Duration::from_secs(300), "no window");
            std::thread::sleep(Duration::from_millis(50));
        }
        let held = (paused_running(&writer), paused_running(&web));
        stack.signal("backup", "KILL", "stackshot backup");
        let killed = run.join().unwrap();
        assert!(!killed.status.success(), "{}", text(&killed));
        held
    });
    drop(release);
    assert_eq!(held, ((true, true), (true, true)), "frozen in the window");
    // The sidecar's long-running stackshot (`idle` here, as the daemon)
    // sees the window's owner gone and thaws them within seconds.
    wait_for(
        "the killed run's containers thawed by the sidecar",
        60,
        || {
            (paused_running(&writer) == (false, true) && paused_running(&web) == (false, true))
                .then_some(())
        },
    );
    // Its line comes once it has started the stopped ones too, which can be
    // after the thaw seen above (seen in a CI run on a loaded machine).
    let backup = stack.container("backup");
    let recovered = wait_for(
        "the sidecar's line saying it recovered the window",
        60,
        || {
            let logs = text(&output(&mut docker(&["logs", &backup])));
            logs.lines()
                .find(|l| {
                    l.contains("started the containers of a run that died inside its stop window")
                })
                .map(str::to_string)
        },
    );
    for name in [stack.container_name("writer"), stack.container_name("web")] {
        assert!(
            recovered.contains(&name),
            "{name} not recovered: {recovered}"
        );
    }
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(http_get(port, "/").map(|(s, _)| s), Some(200));

    // 4. A container the engine will not pause is stopped instead.
    run(&mut docker(&["pause", &web]));
    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let fell_back = report["window"]["freeze_fell_back"].to_string();
    assert!(
        fell_back.contains(&stack.container_name("web")) && fell_back.contains("paused"),
        "{report}"
    );
    assert!(
        names(&report["window"]["stopped"]).contains(&stack.container_name("web")),
        "{report}"
    );
    assert_eq!(
        paused_running(&web),
        (false, true),
        "web runs again: {report}"
    );
    let port = published(&web);
    wait_for("web to answer after its start", 30, || {
        http_get(port, "/").filter(|(s, _)| *s == 200).map(|_| ())
    });
}
