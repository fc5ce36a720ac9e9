//! Stopping a swarm service for the stop window: scaled to 0, and back to
//! its replica count afterwards.
//!
//! Several nodes' stackshot tasks may hold one service down at once (its
//! tasks run on several nodes, and each node backs up its own). The service
//! itself records who holds it, in two labels of its spec:
//! `stackshot.scaled.by` (the holding nodes' ids) and
//! `stackshot.scaled.from` (the replica count before the first hold). Every
//! change is a compare-and-swap: the update carries the version the spec was
//! read at, and the engine refuses it ("update out of sequence") when another
//! node changed the service in between; then it is read and tried again. The
//! first holder scales to 0; the last one to let go scales back and removes
//! the labels. Nothing of this lives in memory: a stackshot killed inside its
//! window finds the service in its journal at its next start
//! (`window::recover`) and lets go then.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ServiceSpec, TaskState};
use bollard::query_parameters::{ListContainersOptions, ListTasksOptions, UpdateServiceOptions};

use crate::container::SWARM_SERVICE_LABEL;

/// The labels stackshot keeps on a service it holds scaled down start with
/// this; they are state, never read as settings.
pub const STATE_LABEL_PREFIX: &str = "stackshot.scaled.";
/// The ids of the nodes holding the service at 0, comma-separated.
pub const HELD_BY: &str = "stackshot.scaled.by";
/// The replica count the service had before the first hold.
pub const SCALED_FROM: &str = "stackshot.scaled.from";

/// How long a scaled-back service is watched for a running task before the
/// window closes without it (swarm goes on starting it).
const TASK_WAIT: Duration = Duration::from_secs(60);
/// How often a compare-and-swap is tried before giving up.
const ATTEMPTS: u32 = 20;

fn holders(spec: &ServiceSpec) -> Vec<String> {
    spec.labels
        .as_ref()
        .and_then(|l| l.get(HELD_BY))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn replicas_mut(spec: &mut ServiceSpec) -> Result<&mut i64> {
    let name = spec.name.clone().unwrap_or_default();
    spec.mode
        .as_mut()
        .and_then(|m| m.replicated.as_mut())
        .map(|r| r.replicas.get_or_insert(1))
        .ok_or_else(|| {
            anyhow!("the swarm service {name} is not replicated, so it cannot be scaled to 0")
        })
}

/// True when some node holds the service scaled down. Pure.
pub fn is_held(spec: &ServiceSpec) -> bool {
    !holders(spec).is_empty()
}

/// The replica count the service runs with (0 when held down). Pure.
pub fn replicas(spec: &ServiceSpec) -> Option<i64> {
    spec.mode
        .as_ref()?
        .replicated
        .as_ref()
        .map(|r| r.replicas.unwrap_or(1))
}

/// Adds `node` to the holders of `spec` and sets its replicas to 0; the
/// first holder records the replica count. Returns false when `node` held it
/// already (nothing to change). Pure.
pub fn hold(spec: &mut ServiceSpec, node: &str) -> Result<bool> {
    let mut by = holders(spec);
    if by.iter().any(|h| h == node) {
        return Ok(false);
    }
    let replicas = replicas_mut(spec)?;
    let before = *replicas;
    *replicas = 0;
    let labels = spec.labels.get_or_insert_with(HashMap::new);
    if by.is_empty() {
        labels.insert(SCALED_FROM.into(), before.to_string());
    }
    by.push(node.to_string());
    labels.insert(HELD_BY.into(), by.join(","));
    Ok(true)
}

/// What letting go of a service did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// This node did not hold it (let go already, or someone scaled it by hand).
    NotHeld,
    /// Other nodes still hold it at 0 (named); the last of them scales it back.
    StillHeld(Vec<String>),
    /// This node was the last holder: back to this many replicas.
    ScaledBack(i64),
}

/// Removes `node` from the holders of `spec`; the last holder restores the
/// recorded replica count and removes the labels. Pure.
pub fn release(spec: &mut ServiceSpec, node: &str) -> Result<Release> {
    let mut by = holders(spec);
    if !by.iter().any(|h| h == node) {
        return Ok(Release::NotHeld);
    }
    by.retain(|h| h != node);
    let name = spec.name.clone().unwrap_or_default();
    let labels = spec.labels.get_or_insert_with(HashMap::new);
    if !by.is_empty() {
        labels.insert(HELD_BY.into(), by.join(","));
        return Ok(Release::StillHeld(by));
    }
    let from = labels.get(SCALED_FROM).cloned().unwrap_or_default();
    let n: i64 = from.trim().parse().ok().filter(|n| *n >= 0).with_context(|| {
        format!(
            "the swarm service {name} has no replica count to go back to ({SCALED_FROM}={from:?}); scale it by hand: docker service scale {name}=N, then docker service update --label-rm {HELD_BY} --label-rm {SCALED_FROM} {name}"
        )
    })?;
    labels.remove(HELD_BY);
    labels.remove(SCALED_FROM);
    *replicas_mut(spec)? = n;
    Ok(Release::ScaledBack(n))
}

/// This node's id in the swarm: its name among the holders.
async fn node_id(docker: &Docker) -> Result<String> {
    docker
        .info()
        .await
        .context("cannot ask the engine which swarm node it is")?
        .swarm
        .and_then(|s| s.node_id)
        .filter(|id| !id.is_empty())
        .context("the engine is not a swarm node")
}

fn out_of_sequence(e: &BollardError) -> bool {
    e.to_string().contains("out of sequence")
}

/// Reads the service, lets `change` edit its spec, and writes it back at the
/// version it was read at, again from the read when another writer came
/// first. `change` returns what to report, and whether it changed anything.
async fn update<T>(
    docker: &Docker,
    service: &str,
    mut change: impl FnMut(&mut ServiceSpec) -> Result<(bool, T)>,
) -> Result<T> {
    for attempt in 0..ATTEMPTS {
        let found = docker
            .inspect_service(service, None)
            .await
            .with_context(|| format!("cannot inspect the swarm service {service}"))?;
        let version = found
            .version
            .and_then(|v| v.index)
            .and_then(|i| i32::try_from(i).ok())
            .with_context(|| format!("the swarm service {service} has no usable version"))?;
        // Written back whole: a missing spec would wipe the service.
        let mut spec = found
            .spec
            .with_context(|| format!("the swarm service {service} has no spec"))?;
        let (changed, out) = change(&mut spec)?;
        if !changed {
            return Ok(out);
        }
        let options = UpdateServiceOptions {
            version,
            ..Default::default()
        };
        match docker.update_service(service, spec, options, None).await {
            Ok(_) => return Ok(out),
            Err(e) if out_of_sequence(&e) => {
                tracing::debug!(
                    service,
                    attempt,
                    "the service changed meanwhile; reading it again"
                );
                tokio::time::sleep(Duration::from_millis(50 + 25 * u64::from(attempt))).await;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot update the swarm service {service}"));
            }
        }
    }
    bail!("the swarm service {service} kept changing under {ATTEMPTS} updates; try again")
}

/// The running containers of `service`'s tasks on this node.
pub async fn local_tasks(docker: &Docker, service: &str) -> Result<Vec<String>> {
    let options = ListContainersOptions {
        filters: Some(HashMap::from([
            (
                "label".to_string(),
                vec![format!("{SWARM_SERVICE_LABEL}={service}")],
            ),
            ("status".to_string(), vec!["running".to_string()]),
        ])),
        ..Default::default()
    };
    Ok(docker
        .list_containers(Some(options))
        .await
        .with_context(|| format!("cannot list the tasks of {service}"))?
        .into_iter()
        .filter_map(|c| c.id)
        .collect())
}

/// Adds `node` to the holders of `service` and scales it to 0, by
/// compare-and-swap. Returns the replica count it had.
pub async fn hold_as(docker: &Docker, service: &str, node: &str) -> Result<Option<i64>> {
    update(docker, service, |spec| {
        let n = replicas(spec);
        Ok((hold(spec, node)?, n))
    })
    .await
}

/// Removes `node` from the holders of `service`, by compare-and-swap; the
/// last holder scales it back.
pub async fn release_as(docker: &Docker, service: &str, node: &str) -> Result<Release> {
    update(docker, service, |spec| {
        let r = release(spec, node)?;
        Ok((r != Release::NotHeld, r))
    })
    .await
}

/// Holds `service` at 0 replicas as this node (joining other nodes' holds),
/// and returns once no task of it runs on this node any more.
pub async fn stop(docker: &Docker, service: &str) -> Result<()> {
    let node = node_id(docker).await?;
    let before = hold_as(docker, service, &node).await?;
    tracing::info!(service, replicas = before, "held at 0 replicas");
    while !local_tasks(docker, service).await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Lets go of `service` as this node; the last holder scales it back and
/// waits (up to a minute) for a task of it to run again.
pub async fn start(docker: &Docker, service: &str) -> Result<()> {
    let node = node_id(docker).await?;
    let released = match release_as(docker, service, &node).await {
        Ok(r) => r,
        Err(e) if is_gone(&e) => {
            tracing::warn!(
                service,
                "the swarm service no longer exists; nothing to scale back"
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match released {
        Release::NotHeld => {
            tracing::info!(service, "not held by this node (let go already)");
        }
        Release::StillHeld(by) => {
            tracing::info!(service, held_by = ?by, "let go; other nodes still hold it at 0, the last of them scales it back");
        }
        Release::ScaledBack(n) => {
            tracing::info!(service, replicas = n, "scaled back");
            if n > 0 {
                wait_for_a_task(docker, service).await?;
            }
        }
    }
    Ok(())
}

/// True when the service runs, or is held at 0 by some node (a window to
/// join): false when it is at 0 replicas by itself, or gone.
pub async fn is_up(docker: &Docker, service: &str) -> Result<bool> {
    match docker.inspect_service(service, None).await {
        Ok(s) => {
            let spec = s.spec.unwrap_or_default();
            Ok(is_held(&spec) || replicas(&spec).unwrap_or(1) > 0)
        }
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot inspect the swarm service {service}")),
    }
}

fn is_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<BollardError>(),
            Some(BollardError::DockerResponseServerError {
                status_code: 404,
                ..
            })
        )
    })
}

async fn wait_for_a_task(docker: &Docker, service: &str) -> Result<()> {
    let begun = Instant::now();
    let options = ListTasksOptions {
        filters: Some(HashMap::from([
            ("service".to_string(), vec![service.to_string()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ])),
    };
    while begun.elapsed() < TASK_WAIT {
        let tasks = docker
            .list_tasks(Some(options.clone()))
            .await
            .with_context(|| format!("cannot list the tasks of {service}"))?;
        if tasks
            .iter()
            .any(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!(
        service,
        seconds = TASK_WAIT.as_secs(),
        "scaled back, but no task runs yet; swarm goes on starting it (docker service ps {service})"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ServiceSpecMode, ServiceSpecModeReplicated};

    fn spec(replicas: i64) -> ServiceSpec {
        ServiceSpec {
            name: Some("swt_app".into()),
            labels: Some(HashMap::from([("stackshot.volumes".into(), "true".into())])),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(replicas),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn label<'a>(s: &'a ServiceSpec, k: &str) -> Option<&'a str> {
        s.labels.as_ref().unwrap().get(k).map(String::as_str)
    }

    #[test]
    fn one_node_holds_and_lets_go() {
        let mut s = spec(3);
        assert!(hold(&mut s, "n1").unwrap());
        assert_eq!(replicas(&s), Some(0));
        assert_eq!(label(&s, HELD_BY), Some("n1"));
        assert_eq!(label(&s, SCALED_FROM), Some("3"));
        assert!(is_held(&s));
        // A second hold by the same node (a retry) changes nothing.
        assert!(!hold(&mut s, "n1").unwrap());
        assert_eq!(release(&mut s, "n1").unwrap(), Release::ScaledBack(3));
        assert_eq!(s, spec(3), "labels removed, replicas back");
        // Letting go twice (a recovery after a window that closed) is harmless.
        assert_eq!(release(&mut s, "n1").unwrap(), Release::NotHeld);
        assert_eq!(s, spec(3));
    }

    #[test]
    fn the_last_of_several_holders_scales_back() {
        let mut s = spec(2);
        hold(&mut s, "n1").unwrap();
        hold(&mut s, "n2").unwrap();
        assert_eq!(label(&s, HELD_BY), Some("n1,n2"));
        assert_eq!(label(&s, SCALED_FROM), Some("2"), "the first count is kept");
        assert_eq!(
            release(&mut s, "n1").unwrap(),
            Release::StillHeld(vec!["n2".into()])
        );
        assert_eq!(replicas(&s), Some(0), "n2 still backs up");
        assert_eq!(release(&mut s, "n3").unwrap(), Release::NotHeld);
        assert_eq!(release(&mut s, "n2").unwrap(), Release::ScaledBack(2));
        assert_eq!(s, spec(2));
    }

    #[test]
    fn a_service_at_0_by_itself_goes_back_to_0() {
        let mut s = spec(0);
        hold(&mut s, "n1").unwrap();
        assert_eq!(release(&mut s, "n1").unwrap(), Release::ScaledBack(0));
        assert_eq!(s, spec(0));
    }

    #[test]
    fn a_global_service_or_a_lost_count_is_one_line() {
        let mut g = spec(1);
        g.mode = Some(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        });
        let e = hold(&mut g, "n1").unwrap_err().to_string();
        assert_eq!(
            e,
            "the swarm service swt_app is not replicated, so it cannot be scaled to 0"
        );
        let mut s = spec(2);
        hold(&mut s, "n1").unwrap();
        s.labels.as_mut().unwrap().remove(SCALED_FROM);
        let e = format!("{:#}", release(&mut s, "n1").unwrap_err());
        assert!(
            e.starts_with("the swarm service swt_app has no replica count to go back to"),
            "{e}"
        );
        assert!(e.contains("docker service scale swt_app=N"), "{e}");
    }
}
