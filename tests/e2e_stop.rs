//! The engine's stop, done at the container's `die` (src/engine/stop.rs), on
//! the real engine: a dozen containers stopped at once, each with a child
//! process beside its main one, which takes a moment to exit after the
//! stop's signal. When each stop returns, every process that
//! was in the container is gone (the window's work may read its volumes);
//! the engine's tear-down, handed back, then ends without error, and each
//! container starts again.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use stackshot::engine::Engine;
use stackshot::window::ContainerControl;

const N: usize = 12;

/// Host PIDs of every process in container `id` (`docker top`).
fn pids(id: &str) -> Vec<u32> {
    run(&mut docker(&["top", id, "-eo", "pid"]))
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// True while `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        let mut args = vec!["rm", "-f"];
        args.extend(self.0.iter().map(String::as_str));
        let _ = output(&mut docker(&args));
    }
}

#[test]
fn a_stop_returns_when_every_process_of_the_container_is_gone() {
    let _serial = serial();
    bench();
    let label = format!("stackshot-e2e-stop={}", std::process::id());
    let ids = Containers(
        (0..N)
            .map(|_| {
                run(&mut docker(&[
                    "run",
                    "-d",
                    "--label",
                    &label,
                    "stackshot-test/base:local",
                    "bash",
                    "-c",
                    // A child that ignores SIGTERM, beside a main process that
                    // takes a second and a half to exit on it (a clean shutdown).
                    "(trap '' TERM; exec sleep 1000) & trap 'sleep 1.5; exit 0' TERM; while :; do sleep 1 & wait $!; done",
                ]))
                .trim()
                .to_string()
            })
            .collect(),
    );
    let before: BTreeMap<&str, Vec<u32>> = ids
        .0
        .iter()
        .map(|id| {
            let p = wait_for("the container's two processes", 30, || {
                let p = pids(id);
                (p.len() >= 2).then_some(p)
            });
            (id.as_str(), p)
        })
        .collect();
    // The PIDs are the host's and seen alive here: "gone at the stop's
    // return" below cannot pass on PIDs this process cannot see. (A `sleep
    // 1` of the main loop may have ended meanwhile: only the ones alive now
    // are checked, the main process and its SIGTERM-proof child at least.)
    let before: BTreeMap<&str, Vec<u32>> = before
        .into_iter()
        .map(|(id, procs)| {
            let alive_now: Vec<u32> = procs.into_iter().filter(|p| alive(*p)).collect();
            assert!(
                alive_now.len() >= 2,
                "{id}: fewer than two of its `docker top` PIDs are alive in /proc here: {alive_now:?}"
            );
            (id, alive_now)
        })
        .collect();

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(stop_all_then_start(&ids.0, &before));
}

/// Stops every container at once; checks each at its stop's return.
async fn stop_all_then_start(ids: &[String], before: &BTreeMap<&str, Vec<u32>>) {
    let engine = Engine::connect(None).await.expect("the engine");
    let stops = ids.iter().map(|id| {
        let engine = engine.clone();
        let procs = before[id.as_str()].clone();
        async move {
            let rest = engine
                .stop(id, Duration::from_secs(10))
                .await
                .unwrap_or_else(|e| panic!("stop {id}: {e:#}"));
            // Checked at the stop's return, before anything else awaits.
            let left: Vec<u32> = procs.iter().copied().filter(|p| alive(*p)).collect();
            (id.clone(), left, rest)
        }
    });
    let stopped = futures_util::future::join_all(stops).await;

    let mut early = 0;
    for (id, left, rest) in stopped {
        assert!(
            left.is_empty(),
            "the stop of {id} returned with its processes {left:?} still running"
        );
        if let Some(rest) = rest {
            early += 1;
            rest.await
                .unwrap_or_else(|e| panic!("the tear-down of {id}: {e:#}"));
        }
        assert_eq!(
            run(&mut docker(&["inspect", "-f", "{{.State.Running}}", &id])).trim(),
            "false",
            "{id}"
        );
    }
    // With a dozen stopped at once the engine tears them down one by one:
    // the later ones died well before their stop call returned.
    assert!(
        early > 0,
        "no stop returned at its container's die: every one waited for its tear-down"
    );
    for id in ids {
        engine
            .start(id)
            .await
            .unwrap_or_else(|e| panic!("start {id} again: {e:#}"));
        assert!(engine.is_running(id).await.unwrap(), "{id} runs again");
    }
    eprintln!(
        "{early} of {N} stops returned at the container's die, before the engine's tear-down"
    );
}
