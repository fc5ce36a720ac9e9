//! The control socket, served: each client in a task of its own, answered
//! with the daemon's state, its plan, or a backup's progress and report.

use std::sync::Arc;

use anyhow::Result;
use tokio::io::BufReader;
use tokio::net::{UnixListener, UnixStream};

use super::Daemon;
use super::control::{self, Reply, Request};

/// Serves the control socket: each client in a task of its own.
pub(super) fn serve_control(
    daemon: &Arc<Daemon>,
    listener: UnixListener,
) -> tokio::task::JoinHandle<()> {
    let daemon = daemon.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let daemon = daemon.clone();
            tokio::spawn(async move {
                if let Err(e) = daemon.serve_client(stream).await {
                    tracing::debug!(error = %format!("{e:#}"), "control client");
                }
            });
        }
    })
}

impl Daemon {
    /// Answers one client of the control socket. The steps: read its
    /// request; then send the state ([`status_reply`](Self::status_reply)),
    /// the plan ([`plan_reply`](Self::plan_reply)), or a backup's progress
    /// and report ([`serve_backup`](Self::serve_backup)).
    async fn serve_client(&self, stream: UnixStream) -> Result<()> {
        let mut stream = BufReader::new(stream);
        let request = control::read_request(&mut stream).await?;
        let mut stream = stream.into_inner();
        match request {
            Request::Status => {
                let reply = self.status_reply().await;
                control::send(&mut stream, &reply).await
            }
            Request::Plan => {
                let reply = self.plan_reply().await?;
                control::send(&mut stream, &reply).await
            }
            Request::Backup => {
                self.serve_backup(&mut stream).await;
                Ok(())
            }
        }
    }

    /// The state for `stackshot status`, with the containers a `backup
    /// --no-restart` left down and that are still down.
    async fn status_reply(&self) -> Reply {
        let mut state = self.state.lock().unwrap().clone();
        let (by, left) = self.ctx.journal.left_down();
        for e in left {
            // One started by hand since is no longer down.
            if !self.ctx.engine.is_running(&e.id).await.unwrap_or(false) {
                state.left_down.push(e.name);
                state.left_down_by = by.clone();
            }
        }
        Reply::Status {
            state: Box::new(state),
        }
    }

    /// The current plan for `stackshot plan`, read from the engine anew;
    /// an error reply when the engine cannot be read or there is no plan.
    async fn plan_reply(&self) -> Result<Reply> {
        // The plan kept from the engine's events lags it by the
        // debounce (`watch::QUIET`): read the engine anew, unless a
        // run is in progress (its plan is the one in use, and a
        // stopped container must not be read as gone).
        if self.running().is_none()
            && let Err(e) = self.replan().await
        {
            return Ok(Reply::Error {
                message: format!("cannot read the engine for a plan: {e:#}"),
            });
        }
        let plan = self.plan.lock().unwrap().clone();
        let checked = self
            .state
            .lock()
            .unwrap()
            .plan
            .as_ref()
            .map(|p| p.checked_at);
        Ok(match (plan, checked) {
            (Some(plan), Some(checked_at)) => Reply::Plan {
                plan: serde_json::to_value(&plan)?,
                table: crate::plan::render_table(&plan),
                ok: plan.is_ok(),
                checked_at,
            },
            _ => Reply::Error {
                message: "the daemon has no plan yet".into(),
            },
        })
    }

    /// Runs a backup for a client (`stackshot backup`): sends it the run's
    /// id, its log lines while it runs, then its report (or that it was
    /// refused).
    async fn serve_backup(&self, stream: &mut UnixStream) {
        let mut logs = crate::logging::subscribe();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Reply>();
        let forward = async {
            while let Some(reply) = rx.recv().await {
                if control::send(stream, &reply).await.is_err() {
                    break;
                }
            }
        };
        let run = async {
            let tx2 = tx.clone();
            let pump = async {
                loop {
                    match logs.recv().await {
                        Ok(line) => {
                            let _ = tx2.send(Reply::Log { line });
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            continue;
                        }
                        Err(_) => break,
                    }
                }
            };
            let result = tokio::select! {
                r = self.backup(super::state::Trigger::Manual, |id| { let _ = tx.send(Reply::Accepted { run_id: id.to_string() }); }) => r,
                _ = pump => unreachable!("the log channel outlives the run"),
            };
            // Lines logged in the run's last step (retention) may still
            // wait in the channel: send them before the report.
            while let Ok(line) = logs.try_recv() {
                let _ = tx.send(Reply::Log { line });
            }
            let _ = tx.send(match result {
                Ok(report) => Reply::Report {
                    report: Box::new(report),
                },
                Err(running) => Reply::Busy { running },
            });
            drop(tx);
        };
        tokio::join!(forward, run);
    }
}
