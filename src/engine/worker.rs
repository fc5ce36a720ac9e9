//! The worker container: a short-lived container from the sidecar's own image
//! with the plan's mounts attached, running `stackshot worker …`. Its secrets
//! arrive on stdin (never in its configuration, where `docker inspect` would
//! show them); its JSON-lines progress comes back on stdout. It is removed
//! afterwards, whatever happened.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, Mount};
use bollard::query_parameters::{AttachContainerOptions, WaitContainerOptions};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::Engine;
use super::exec::{Captured, Output, Tail};
use crate::container::{OWN_PROJECT_LABEL, ROLE_LABEL};
use crate::env::Secret;

/// The path of the running stackshot binary: a worker runs it from the
/// sidecar's own image, where it sits at the same path (the image's path
/// when the running one cannot be read).
pub fn own_binary() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "/usr/local/bin/stackshot".into())
}

/// Removes worker containers of `project` left by an interrupted run (or this
/// one). Only the holder of the run lock may call it.
pub async fn remove_leftovers(engine: &Engine, project: &str) {
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![
            format!("{ROLE_LABEL}=worker"),
            format!("{OWN_PROJECT_LABEL}={project}"),
        ],
    )]);
    let listed = engine
        .docker()
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await;
    for id in listed.unwrap_or_default().into_iter().filter_map(|c| c.id) {
        tracing::warn!(worker = %&id[..12.min(id.len())], "removing a leftover worker container");
        let _ = engine
            .docker()
            .remove_container(
                &id,
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
}

/// The write end of a worker container's stdin.
type Input = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// The worker container to run: its image, command, mounts, network and environment.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Image (the sidecar's own, by id).
    pub image: String,
    /// Path of the stackshot binary in the image.
    pub binary: String,
    /// The arguments the binary is given after `worker`.
    pub args: Vec<String>,
    /// Mounts (the plan's, read-only, and the sidecar's own).
    pub mounts: Vec<Mount>,
    /// Network mode (`container:<sidecar>` shares the sidecar's network).
    pub network_mode: Option<String>,
    /// The container's non-secret environment, as `NAME=value` entries.
    pub env: Vec<String>,
    /// Secret environment, sent on stdin.
    pub secrets: Vec<(String, Secret)>,
    /// Compose project, recorded in a label.
    pub project: String,
    /// A `restic backup` in the worker whose progress stands still this long
    /// is stopped (see `worker`); `None`: no watch.
    pub stall_timeout: Option<std::time::Duration>,
}

/// The first line a worker reads from stdin.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Payload {
    /// Environment variables for restic (name, value).
    pub env: Vec<(String, String)>,
    /// Seconds a `restic backup` may go without progress before the worker
    /// stops it; absent: no watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_seconds: Option<u64>,
}

/// A worker container created, attached and started, waiting for its
/// settings on stdin before it runs anything: started ahead of the stop
/// window, so its start-up is not inside it.
pub struct Started {
    id: String,
    output: Output,
    input: Input,
    secrets: Vec<(String, Secret)>,
    stall_seconds: Option<u64>,
}

/// Creates, attaches and starts the worker; it waits for its settings.
/// A worker never finished is removed by the run's clean-up (its label).
pub async fn start(engine: &Engine, spec: &WorkerSpec) -> Result<Started> {
    let labels = HashMap::from([
        (ROLE_LABEL.to_string(), "worker".to_string()),
        (OWN_PROJECT_LABEL.to_string(), spec.project.clone()),
    ]);
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(vec![spec.binary.clone()]),
        cmd: Some(
            std::iter::once("worker".to_string())
                .chain(spec.args.iter().cloned())
                .collect(),
        ),
        env: Some(spec.env.clone()),
        labels: Some(labels),
        open_stdin: Some(true),
        stdin_once: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        // The image's HEALTHCHECK asks the daemon's HTTP port, which a
        // worker does not serve: without this a long worker turns
        // "unhealthy", and autoheal-style tools kill it.
        healthcheck: Some(HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            mounts: Some(spec.mounts.clone()),
            network_mode: spec.network_mode.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .docker()
        .create_container(None, body)
        .await
        .context("cannot create the worker container")?;
    let id = created.id;
    tracing::debug!(worker = %&id[..12], "worker container created");
    let attached = async {
        let docker = engine.docker();
        let attached = docker
            .attach_container(
                &id,
                Some(AttachContainerOptions {
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    stream: true,
                    ..Default::default()
                }),
            )
            .await
            .context("cannot attach to the worker container")?;
        docker
            .start_container(&id, None)
            .await
            .context("cannot start the worker container")?;
        Ok::<_, anyhow::Error>(attached)
    }
    .await;
    match attached {
        Ok(a) => Ok(Started {
            id,
            output: a.output,
            input: a.input,
            secrets: spec.secrets.clone(),
            stall_seconds: spec.stall_timeout.map(|d| d.as_secs().max(1)),
        }),
        Err(e) => {
            remove(engine, &id).await;
            Err(e)
        }
    }
}

impl Started {
    /// Hands the worker its settings (it starts restic now), drives it to the
    /// end, handing each stdout line to `on_line`, and removes it. Returns
    /// its exit code.
    pub async fn finish(self, engine: &Engine, on_line: impl FnMut(&str)) -> Result<i64> {
        let id = self.id.clone();
        let result = drive(engine, self, on_line).await;
        remove(engine, &id).await;
        result
    }
}

async fn remove(engine: &Engine, id: &str) {
    match engine.remove_with_volumes(id).await {
        Ok(true) => tracing::debug!(worker = %&id[..12], "worker container removed"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(worker = %&id[..12], error = %e, "could not remove the worker container")
        }
    }
}

/// Runs the worker to completion, handing each stdout line to `on_line`.
/// Returns the worker's exit code; the container is removed in every case.
pub async fn run(engine: &Engine, spec: &WorkerSpec, on_line: impl FnMut(&str)) -> Result<i64> {
    start(engine, spec).await?.finish(engine, on_line).await
}

/// A worker that took its settings, keeping its stdin open, and said it is
/// ready: it waits for `go` ([`Armed::fire_until`]).
pub struct Armed {
    id: String,
    output: Output,
    input: Input,
    lines: Lines,
}

impl Started {
    /// Hands the worker its settings, keeping its stdin open, and reads its
    /// lines until `on_line` says one is the ready line. A worker that ends
    /// first is removed, and its exit code is the error.
    pub async fn arm(
        self,
        engine: &Engine,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<Armed> {
        let Started {
            id,
            mut output,
            mut input,
            secrets,
            stall_seconds,
        } = self;
        let armed = async {
            send_payload(&mut input, &secrets, stall_seconds).await?;
            let mut lines = Lines::default();
            let ready = lines.read(&mut output, &mut on_line).await;
            Ok::<_, anyhow::Error>((ready, lines))
        }
        .await;
        match armed {
            Ok((true, lines)) => Ok(Armed {
                id,
                output,
                input,
                lines,
            }),
            Ok((false, lines)) => {
                let code = wait_exit(engine, &id, &lines).await;
                remove(engine, &id).await;
                bail!(
                    "the worker ended before it was ready ({})",
                    match code {
                        Ok(c) => format!("exit code {c}"),
                        Err(e) => format!("{e:#}"),
                    }
                )
            }
            Err(e) => {
                remove(engine, &id).await;
                Err(e)
            }
        }
    }
}

/// How a worker told to go got on: it reached the line asked for and runs
/// on, or it ended first.
pub enum Fired {
    /// The line was seen; the worker still runs.
    Reached(Running),
    /// The worker ended (and was removed) with this exit code first.
    Ended(i64),
}

/// A worker that was told to go and runs on: [`Running::finish`] drives it to
/// the end.
pub struct Running {
    id: String,
    output: Output,
    input: Input,
    lines: Lines,
}

impl Armed {
    /// Says `go` and reads lines until `on_line` says one is the one asked
    /// for ([`Fired::Reached`]); a worker that ends first is removed.
    pub async fn fire_until(
        self,
        engine: &Engine,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<Fired> {
        let Armed {
            id,
            mut output,
            mut input,
            mut lines,
        } = self;
        let reached = async {
            input
                .write_all(b"go\n")
                .await
                .context("cannot tell the worker to go")?;
            input.flush().await.ok();
            Ok::<_, anyhow::Error>(lines.read(&mut output, &mut on_line).await)
        }
        .await;
        match reached {
            Ok(true) => Ok(Fired::Reached(Running {
                id,
                output,
                input,
                lines,
            })),
            Ok(false) => {
                let code = wait_exit(engine, &id, &lines).await;
                remove(engine, &id).await;
                code.map(Fired::Ended)
            }
            Err(e) => {
                remove(engine, &id).await;
                Err(e)
            }
        }
    }
}

impl Running {
    /// Drives the worker to the end, handing each further stdout line to
    /// `on_line`, and removes it. Returns its exit code.
    pub async fn finish(self, engine: &Engine, on_line: impl FnMut(&str)) -> Result<i64> {
        let Running {
            id,
            mut output,
            input,
            lines,
        } = self;
        let result = to_the_end(engine, &id, input, &mut output, lines, on_line).await;
        remove(engine, &id).await;
        result
    }

    /// Stops and removes the worker without waiting for it.
    pub async fn abort(self, engine: &Engine) {
        remove(engine, &self.id).await;
    }
}

async fn send_payload(
    input: &mut Input,
    secrets: &[(String, Secret)],
    stall_seconds: Option<u64>,
) -> Result<()> {
    let payload = Payload {
        env: secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect(),
        stall_seconds,
    };
    let mut line = serde_json::to_vec(&payload).expect("payload serialises");
    line.push(b'\n');
    input
        .write_all(&line)
        .await
        .context("cannot hand the worker its settings")?;
    input.flush().await.ok();
    Ok(())
}

/// A worker's output split into stdout lines, with a tail of its stderr.
struct Lines {
    pending: Vec<u8>,
    stderr: Tail,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            pending: Vec::new(),
            stderr: Tail::new(4096),
        }
    }
}

impl Lines {
    /// Reads until `on_line` returns true (then `true`) or the output ends
    /// (`false`, with a last unterminated line handed over).
    async fn read(&mut self, output: &mut Output, on_line: &mut impl FnMut(&str) -> bool) -> bool {
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(LogOutput::StdOut { message }) => {
                    self.pending.extend_from_slice(&message);
                    while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
                        let l: Vec<u8> = self.pending.drain(..=nl).collect();
                        if on_line(String::from_utf8_lossy(&l).trim_end()) {
                            return true;
                        }
                    }
                }
                Ok(LogOutput::StdErr { message }) => self.stderr.push(&message),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "worker output ended with an error");
                    break;
                }
            }
        }
        if !self.pending.is_empty() {
            let l = std::mem::take(&mut self.pending);
            on_line(String::from_utf8_lossy(&l).trim_end());
        }
        false
    }
}

/// A worker whose stdout is data, not event lines (a SQLite copy, a query's
/// rows): its stdin is closed at once. Read [`Raw::output`], then
/// [`Raw::finish`], which removes it.
pub struct Raw {
    id: String,
    /// Its stdout and stderr, as they come.
    pub output: Output,
}

/// Creates, attaches and starts a worker that reads nothing.
pub async fn start_raw(engine: &Engine, spec: &WorkerSpec) -> Result<Raw> {
    let Started {
        id,
        output,
        mut input,
        ..
    } = start(engine, spec).await?;
    input.shutdown().await.ok();
    drop(input);
    Ok(Raw { id, output })
}

impl Raw {
    /// Removes the worker, running or not (its output is no longer read).
    pub async fn abort(self, engine: &Engine) {
        remove(engine, &self.id).await;
    }

    /// Waits for the worker's exit code and removes it.
    pub async fn finish(self, engine: &Engine) -> Result<i64> {
        let code = wait_code(engine, &self.id).await;
        remove(engine, &self.id).await;
        code
    }
}

/// Runs a worker that reads nothing to the end, keeping at most 1 MiB of its
/// stdout and the end of its stderr; removes it.
pub async fn capture(engine: &Engine, spec: &WorkerSpec) -> Result<Captured> {
    let mut raw = start_raw(engine, spec).await?;
    let mut stdout = Vec::new();
    let mut stderr = Tail::new(4096);
    while let Some(chunk) = raw.output.next().await {
        match chunk {
            Ok(LogOutput::StdOut { message }) => {
                let room = (1usize << 20).saturating_sub(stdout.len());
                stdout.extend_from_slice(&message[..message.len().min(room)]);
            }
            Ok(LogOutput::StdErr { message }) => stderr.push(&message),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "worker output ended with an error");
                break;
            }
        }
    }
    let code = raw.finish(engine).await?;
    Ok(Captured {
        code,
        stdout,
        stderr: stderr.one_line(),
    })
}

async fn wait_code(engine: &Engine, id: &str) -> Result<i64> {
    let mut wait = engine
        .docker()
        .wait_container(id, None::<WaitContainerOptions>);
    match wait.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(e).context("cannot wait for the worker container"),
        None => bail!("the worker container vanished before reporting an exit code"),
    }
}

async fn wait_exit(engine: &Engine, id: &str, lines: &Lines) -> Result<i64> {
    let code = wait_code(engine, id).await?;
    if code != 0 {
        let tail = lines.stderr.one_line();
        if !tail.is_empty() {
            tracing::warn!(code, stderr = %tail, "worker exited with an error");
        }
    }
    Ok(code)
}

async fn drive(engine: &Engine, started: Started, on_line: impl FnMut(&str)) -> Result<i64> {
    let Started {
        id,
        mut output,
        mut input,
        secrets,
        stall_seconds,
    } = started;
    send_payload(&mut input, &secrets, stall_seconds).await?;
    to_the_end(engine, &id, input, &mut output, Lines::default(), on_line).await
}

/// Closes the worker's stdin, hands every further line to `on_line`, and
/// returns its exit code.
async fn to_the_end(
    engine: &Engine,
    id: &str,
    mut input: Input,
    output: &mut Output,
    mut lines: Lines,
    mut on_line: impl FnMut(&str),
) -> Result<i64> {
    input.shutdown().await.ok();
    drop(input);
    lines
        .read(output, &mut |l| {
            on_line(l);
            false
        })
        .await;
    wait_exit(engine, id, &lines).await
}
