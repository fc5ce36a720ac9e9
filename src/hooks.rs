//! Exec hooks (`stackshot.exec.*`, offen's `archive-pre`/`archive-post`): a
//! command run with `docker exec … sh -c` in the labelled container, its
//! output logged line by line, bounded by its time limit.
//!
//! The run calls [`run_phase`] for pre-backup (before anything is stopped: a
//! failure fails the run there) and post-backup (after the window, on every
//! path); the stop window calls [`run`] for a container's pre-stop hook just
//! before stopping it.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use bollard::container::LogOutput;
use futures_util::StreamExt;

use crate::engine::{Engine, exec};
use crate::plan::{Hook, HookPhase, Plan};

/// The longest line of a hook's output kept whole; a longer one is logged
/// in pieces of this size, so a hook that prints without newlines holds no
/// more than this in memory.
const MAX_LINE: usize = 8 * 1024;

/// Logs each complete line of `buf`, keeping the unfinished rest (at most
/// [`MAX_LINE`] bytes: a longer rest is logged as it is).
fn log_lines(buf: &mut Vec<u8>, container: &str, phase: HookPhase) {
    let log = |line: &[u8]| {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        if !line.is_empty() {
            tracing::info!(container, hook = phase.as_str(), "{line}");
        }
    };
    while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        log(&line);
    }
    while buf.len() > MAX_LINE {
        let piece: Vec<u8> = buf.drain(..MAX_LINE).collect();
        log(&piece);
    }
}

/// Runs one hook in `container` (id) named `name`; an error names the hook,
/// the container and why (exit code and the end of its output, or the time limit).
pub async fn run(
    engine: &Engine,
    container: &str,
    name: &str,
    phase: HookPhase,
    hook: &Hook,
) -> Result<()> {
    let what = format!("{} hook in {name} ({:?})", phase.as_str(), hook.command);
    tracing::info!(container = name, hook = phase.as_str(), command = %hook.command, "running hook");
    let limit = Duration::from_secs(hook.timeout_seconds);
    let cmd = ["sh".to_string(), "-c".to_string(), hook.command.clone()];
    let work = async {
        let mut e = exec::start(engine, container, &cmd, &[])
            .await
            .map_err(|e| anyhow!("cannot start the {what}: {e:#}"))?;
        let mut tail = exec::Tail::new(400);
        let mut pending = Vec::new();
        while let Some(chunk) = e.output.next().await {
            let bytes = match chunk.map_err(|e| anyhow!("reading the output of the {what}: {e}"))? {
                LogOutput::StdOut { message } | LogOutput::StdErr { message } => message,
                _ => continue,
            };
            tail.push(&bytes);
            pending.extend_from_slice(&bytes);
            log_lines(&mut pending, name, phase);
        }
        pending.push(b'\n');
        log_lines(&mut pending, name, phase);
        let code = exec::exit_code(engine, &e.id).await?;
        if code != 0 {
            bail!("the {what} exited with {code}: {}", tail.one_line());
        }
        Ok(())
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => bail!(
            "the {what} did not finish within its limit of {}s (stackshot.exec.timeout)",
            hook.timeout_seconds
        ),
    }
}

/// Runs every hook of `phase` in the plan's order, one after the other.
/// Pre-backup stops at the first failure; post-backup runs them all and
/// returns the failures together (each already logged).
pub async fn run_phase(engine: &Engine, plan: &Plan, phase: HookPhase) -> Result<()> {
    let mut failed = vec![];
    for h in plan.hooks.iter().filter(|h| h.phase == phase) {
        if let Err(e) = run(
            engine,
            &h.container.id,
            &h.container.container,
            phase,
            &h.hook,
        )
        .await
        {
            tracing::error!(error = %format!("{e:#}"), "hook failed");
            if phase == HookPhase::PreBackup {
                return Err(e);
            }
            failed.push(format!("{e:#}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("{}", failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hook that prints without newlines holds at most one line's worth
    /// of its output; lines and the rest pass through unchanged.
    #[test]
    fn output_without_newlines_is_bounded() {
        let mut buf = Vec::new();
        for _ in 0..100 {
            buf.extend_from_slice(&[b'y'; 4096]);
            log_lines(&mut buf, "app", HookPhase::PreBackup);
            assert!(buf.len() <= MAX_LINE, "{} bytes held", buf.len());
        }
        let mut buf = b"one\ntwo\nthr".to_vec();
        log_lines(&mut buf, "app", HookPhase::PreBackup);
        assert_eq!(buf, b"thr");
    }
}
