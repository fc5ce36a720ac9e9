//! `docker exec` with stdout streamed, never buffered whole, and the exit code
//! read from the engine (`inspect_exec`).

use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::{Stream, StreamExt};

use super::Engine;
use crate::env::Secret;

/// The output of a running exec: stdout and stderr chunks as they come.
pub type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, BollardError>> + Send>>;

/// An exec started in a container: its id, its output and, when opened, its stdin.
pub struct Exec {
    /// The exec's id, for [`exit_code`].
    pub id: String,
    /// The exec's stdout and stderr, in chunks as they come.
    pub output: Output,
    /// Its stdin, when started with [`start_with_stdin`].
    pub input: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
}

/// Starts `cmd` in `container` with `env` (credentials travel here, never in argv).
pub async fn start(
    engine: &Engine,
    container: &str,
    cmd: &[String],
    env: &[(String, Secret)],
) -> Result<Exec> {
    start_inner(engine, container, cmd, env, false).await
}

/// Like [`start`], with the exec's stdin open for writing (`Exec::input`).
pub async fn start_with_stdin(
    engine: &Engine,
    container: &str,
    cmd: &[String],
    env: &[(String, Secret)],
) -> Result<Exec> {
    start_inner(engine, container, cmd, env, true).await
}

async fn start_inner(
    engine: &Engine,
    container: &str,
    cmd: &[String],
    env: &[(String, Secret)],
    stdin: bool,
) -> Result<Exec> {
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", v.expose()))
        .collect();
    let created = engine
        .docker()
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                env: Some(env),
                attach_stdin: Some(stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("cannot create exec of {} in container {container}", cmd[0]))?;
    match engine.docker().start_exec(&created.id, None).await {
        Ok(StartExecResults::Attached { output, input }) => Ok(Exec {
            id: created.id,
            output,
            input: stdin.then_some(input),
        }),
        Ok(StartExecResults::Detached) => {
            bail!("exec of {} in {container} started detached", cmd[0])
        }
        Err(e) => {
            let hint = if upgrade_refused(&format!("{e:#}")) {
                "; the Docker API answered without upgrading the connection for the exec's stream: a socket proxy in between does not carry upgrades (HAProxy 2.4 to 3.0.4 drop them; 3.0.5 and later work: docs/socket-proxy.md)"
            } else {
                ""
            };
            Err(e)
                .with_context(|| format!("cannot start {} in container {container}{hint}", cmd[0]))
        }
    }
}

/// True when an exec's start failed because the engine's answer was not an
/// upgrade (hyper's "no upgrade available": HTTP 200 where 101 was asked for).
fn upgrade_refused(error: &str) -> bool {
    error.contains("no upgrade available")
}

/// The exit code of a finished exec (waits briefly for the engine to record it).
pub async fn exit_code(engine: &Engine, exec_id: &str) -> Result<i64> {
    for _ in 0..200 {
        let info = engine
            .docker()
            .inspect_exec(exec_id)
            .await
            .with_context(|| format!("cannot inspect exec {exec_id}"))?;
        if info.running != Some(true)
            && let Some(code) = info.exit_code
        {
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("exec {exec_id} reported no exit code")
}

/// Keeps the last `limit` bytes written to it (a stderr tail for error messages).
#[derive(Debug, Default)]
pub struct Tail {
    buf: Vec<u8>,
    limit: usize,
}

impl Tail {
    /// A tail of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Tail {
            buf: Vec::new(),
            limit,
        }
    }

    /// Appends bytes, dropping the oldest beyond the limit.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.limit {
            let cut = self.buf.len() - self.limit;
            self.buf.drain(..cut);
        }
    }

    /// The tail as one line: lines joined with " | ", trimmed.
    pub fn one_line(&self) -> String {
        String::from_utf8_lossy(&self.buf)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// What a small exec printed.
#[derive(Debug)]
pub struct Captured {
    /// The command's exit code.
    pub code: i64,
    /// Standard output (may be a secret: callers decide).
    pub stdout: Vec<u8>,
    /// The end of standard error, as one line.
    pub stderr: String,
}

/// Runs a short command to completion, keeping at most 1 MiB of stdout.
pub async fn capture(
    engine: &Engine,
    container: &str,
    cmd: &[String],
    env: &[(String, Secret)],
) -> Result<Captured> {
    let exec = start(engine, container, cmd, env).await?;
    exec.collect(engine, &format!("{} in {container}", cmd[0]))
        .await
}

/// `cmd` behind a shell that first waits for one line on stdin: started
/// ahead (the exec's own latency spent), it runs only when fired. `sh` is
/// there: the tool probe needs it already. Pure.
pub fn armed_argv(cmd: &[String]) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".to_string(),
        r#"read -r go && exec "$0" "$@""#.to_string(),
    ];
    v.extend(cmd.iter().cloned());
    v
}

/// Starts `cmd` armed ([`armed_argv`]); [`Exec::fire`] runs it.
pub async fn start_armed(
    engine: &Engine,
    container: &str,
    cmd: &[String],
    env: &[(String, Secret)],
) -> Result<Exec> {
    start_with_stdin(engine, container, &armed_argv(cmd), env).await
}

impl Exec {
    /// Runs an armed exec now: one line on its stdin, then stdin closed.
    pub async fn fire(&mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt as _;
        let input = self
            .input
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("the exec was not started armed"))?;
        input
            .write_all(b"go\n")
            .await
            .context("cannot fire the exec")?;
        input.flush().await.ok();
        input.shutdown().await.ok();
        Ok(())
    }

    /// Reads the exec to its end, keeping at most 1 MiB of stdout; `what`
    /// names it in errors.
    pub async fn collect(mut self, engine: &Engine, what: &str) -> Result<Captured> {
        let mut stdout = Vec::new();
        let mut stderr = Tail::new(2048);
        while let Some(chunk) = self.output.next().await {
            match chunk.with_context(|| format!("reading the output of {what}"))? {
                LogOutput::StdOut { message } if stdout.len() < (1 << 20) => {
                    stdout.extend_from_slice(&message)
                }
                LogOutput::StdErr { message } => stderr.push(&message),
                _ => {}
            }
        }
        Ok(Captured {
            code: exit_code(engine, &self.id).await?,
            stdout,
            stderr: stderr.one_line(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Tail, armed_argv, upgrade_refused};

    #[test]
    fn a_refused_upgrade_is_told_apart() {
        assert!(upgrade_refused(
            "error trying to connect: no upgrade available"
        ));
        assert!(!upgrade_refused("No such container: abc"));
    }

    #[test]
    fn an_armed_command_waits_for_a_line_then_is_exactly_the_command() {
        let cmd: Vec<String> = ["mariadb-dump", "--verbose", "it's $HOME"]
            .map(String::from)
            .to_vec();
        let argv = armed_argv(&cmd);
        assert_eq!(&argv[..2], ["sh", "-c"]);
        assert!(argv[2].starts_with("read -r go && exec "));
        // "$0" "$@": the command's words pass as they are, never re-parsed.
        assert_eq!(&argv[3..], &cmd[..]);
    }

    #[test]
    fn tail_keeps_the_end_as_one_line() {
        let mut t = Tail::new(16);
        t.push(b"first line\nsecond line\n");
        t.push(b"third\n");
        assert_eq!(t.one_line(), "cond line | third");
    }
}
