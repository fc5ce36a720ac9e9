//! Stopping a container, done at its `die`.
//!
//! The engine's stop call returns only after the container's tear-down (its
//! network and mounts released), and the engine tears containers down one at
//! a time: with thirty stopped at once, the last call returns about a second
//! after the last container died. Nothing of that tear-down touches the data
//! in the container's volumes. So [`stop`] returns as soon as the engine
//! reports the container's `die` after the stop's `kill`: its processes are
//! gone then (the engine deletes the container's task, and with it every
//! process of its PID namespace, before it reports `die`). The rest of the
//! call is handed back as a [`StopRest`], which the stop window awaits before
//! it starts anything again.
//!
//! When the event stream fails or ends before the `die`, the call's own
//! return is waited for. A socket proxy that refuses `/events` outright
//! never gets here: the access probe ([`super::access`]) fails the backup or
//! restore before anything is stopped.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{EventsOptions, StopContainerOptions};
use futures_util::{Stream, StreamExt};

/// Stops container `id`, giving it `timeout` before the engine kills it.
/// Returns when the container died, with the rest of the stop call when the
/// call had not returned by then.
pub async fn stop(docker: &Docker, id: &str, timeout: Duration) -> Result<Option<StopRest>> {
    let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
    let opts = StopContainerOptions {
        t: Some(t),
        ..Default::default()
    };
    // Events since just before the call: the stream may subscribe after the
    // container died, and the engine replays what it missed. (The sidecar
    // runs on the engine it drives: one clock.)
    let events = docker.events(Some(EventsOptions {
        since: Some(unix_now()),
        until: None,
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("container".to_string(), vec![id.to_string()]),
            (
                "event".to_string(),
                vec!["kill".to_string(), "die".to_string()],
            ),
        ])),
    }));
    let call = {
        let docker = docker.clone();
        let id = id.to_string();
        tokio::spawn(async move { docker.stop_container(&id, Some(opts)).await })
    };
    let mut call = call;
    tokio::select! {
        biased;
        r = &mut call => return outcome(id, r).map(|()| None),
        true = died_after_kill(events) => {}
    }
    tracing::debug!(container = id, "died; the engine is still tearing it down");
    let id = id.to_string();
    Ok(Some(Box::pin(async move { outcome(&id, call.await) })))
}

/// True once a `die` follows a `kill` in `events` (this stop's signal, then
/// the death it caused; a death before the signal is not this stop's). False
/// when the stream ends or fails first.
async fn died_after_kill<S>(events: S) -> bool
where
    S: Stream<Item = Result<bollard::models::EventMessage, BollardError>>,
{
    let mut events = std::pin::pin!(events);
    let mut killed = false;
    while let Some(Ok(ev)) = events.next().await {
        match ev.action.as_deref() {
            Some("kill") => killed = true,
            Some("die") if killed => return true,
            _ => {}
        }
    }
    false
}

/// The stop call's result: "not modified" (already stopped) is success.
fn outcome(
    id: &str,
    joined: Result<Result<(), BollardError>, tokio::task::JoinError>,
) -> Result<()> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(BollardError::DockerResponseServerError {
            status_code: 304, ..
        })) => Ok(()),
        Ok(Err(e)) => Err(e).with_context(|| format!("cannot stop container {id}")),
        Err(e) => Err(anyhow!("the stop call for container {id} failed: {e}")),
    }
}

/// Now as the engine's `since` takes it: seconds and nanoseconds.
fn unix_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// The rest of a stop call that returned as soon as its container was down:
/// the engine's tear-down, which does not touch the volumes' data, runs on
/// beside the window's work, and is awaited before any start.
pub type StopRest = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventMessage;

    fn ev(action: &str) -> Result<EventMessage, BollardError> {
        Ok(EventMessage {
            action: Some(action.into()),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_die_counts_only_after_the_kill() {
        let s = futures_util::stream::iter(vec![ev("die"), ev("kill"), ev("die")]);
        assert!(died_after_kill(s).await);
        // A death before this stop's signal (a crash) is not taken for it.
        let s = futures_util::stream::iter(vec![ev("die"), ev("start")]);
        assert!(!died_after_kill(s).await);
        let s = futures_util::stream::iter(vec![ev("kill"), ev("kill")]);
        assert!(!died_after_kill(s).await);
    }

    #[tokio::test]
    async fn a_failed_stream_falls_back_to_the_call() {
        let s = futures_util::stream::iter(vec![
            ev("kill"),
            Err(BollardError::DockerResponseServerError {
                status_code: 403,
                message: "events refused by the proxy".into(),
            }),
            ev("die"),
        ]);
        assert!(!died_after_kill(s).await);
    }

    /// Recorded from Podman 4.3.1's Docker-compatible event stream: a
    /// container stopped (its process ignored SIGTERM and was killed after
    /// the timeout), then started again. Podman reports `stop` and `die`,
    /// never `kill`, and answers a stream filtered on `event=kill,die` with
    /// nothing at all (event filters work there only from Podman 4.4). So the
    /// stop is never taken as done from the stream: it waits for the stop
    /// call's own return, the safe way.
    #[tokio::test]
    async fn podman_4_3_sends_no_kill_so_the_stop_waits_for_its_call() {
        let recorded: Vec<Result<EventMessage, BollardError>> =
            include_str!("../../tests/fixtures/podman/events-4.3-stop-start.jsonl")
                .lines()
                .map(|l| Ok(serde_json::from_str::<EventMessage>(l).unwrap()))
                .collect();
        let actions: Vec<&str> = recorded
            .iter()
            .filter_map(|e| e.as_ref().ok()?.action.as_deref())
            .collect();
        assert_eq!(
            actions,
            [
                "create", "init", "start", "stop", "die", "cleanup", "cleanup", "init", "start"
            ]
        );
        assert!(actions.contains(&"die") && !actions.contains(&"kill"));
        assert!(!died_after_kill(futures_util::stream::iter(recorded)).await);
    }

    #[test]
    fn since_is_seconds_and_nanoseconds() {
        let s = unix_now();
        let (secs, nanos) = s.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
        assert_eq!(nanos.len(), 9);
    }
}
