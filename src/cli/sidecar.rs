//! The sidecar's own commands: `stackshot daemon`, `status`, `healthcheck`
//! and `idle`.

use std::process::ExitCode;

use anyhow::Result;

use super::EXIT_CONFIG;
use crate::config::Config;
use crate::context::Context;
use crate::daemon::control::{self, Reply, Request};
use crate::daemon::state::DaemonState;
use crate::daemon::{self, http};
use crate::engine::Engine;
use crate::env::Env;
use crate::window::journal::Journal;
use crate::{discovery, logging};

/// `stackshot daemon`: runs until SIGTERM/SIGINT.
pub(super) async fn daemon(ctx: Context) -> Result<ExitCode> {
    daemon::run(ctx).await?;
    Ok(ExitCode::SUCCESS)
}

/// `stackshot healthcheck`: exit code 0 when `/healthz` answers 200.
pub(super) async fn healthcheck() -> ExitCode {
    // Only HTTP_ADDR: the health check must not depend on the rest of the
    // configuration (the image's HEALTHCHECK runs it wherever the image runs).
    let addr = match Config::http_addr_from_env(&Env::from_process()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stackshot: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match http::healthcheck(addr, std::time::Duration::from_secs(10)).await {
        Ok((code, body)) => {
            println!("{body}");
            if code == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("stackshot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `stackshot idle`: hosts `docker exec`s, and starts again the containers
/// of an exec'd run that died inside its stop window
/// ([`daemon::orphans`]). Without a usable configuration it only waits:
/// the container still hosts execs, which then say what is wrong.
pub(super) async fn idle() -> ExitCode {
    let mut shutdown = match crate::window::Shutdown::on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stackshot: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match Config::from_env(&Env::from_process()) {
        Ok(config) => {
            logging::init(config.log_level, config.log_format);
            match idle_watch(config, shutdown.clone()).await {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    error = %format!("{e:#}"),
                    "not watching for stop windows whose run died"
                ),
            }
        }
        Err(e) => eprintln!(
            "stackshot idle: not watching for stop windows whose run died: configuration error: {e}"
        ),
    }
    shutdown.wait().await;
    ExitCode::SUCCESS
}

async fn idle_watch(config: Config, shutdown: crate::window::Shutdown) -> Result<()> {
    let engine = Engine::connect(config.docker_host.as_deref()).await?;
    let found = discovery::discover(engine.docker(), &config).await?;
    let journal = Journal::in_dir(&config.state_dir);
    tracing::info!(project = %found.project, journal = %journal.path().display(), "idle: watching for stop windows whose run died");
    tokio::spawn(daemon::orphans::watch(
        engine,
        journal,
        found.project,
        shutdown,
    ));
    Ok(())
}

/// `stackshot status`: asks the daemon for its state and prints it; exit
/// code 1 when no daemon runs here.
pub(super) async fn status(json: bool) -> Result<ExitCode> {
    let Some(stream) = control::connect(&daemon::socket_path()).await else {
        eprintln!(
            "stackshot: no daemon is running in this container (start it with `stackshot daemon`, the image's default command)"
        );
        return Ok(ExitCode::FAILURE);
    };
    let mut state = None;
    control::call(stream, &Request::Status, |reply| {
        if let Reply::Status { state: s } = reply {
            state = Some(*s);
        }
    })
    .await?;
    let state = state.ok_or_else(|| anyhow::anyhow!("the daemon sent no status"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_status(&state);
    Ok(ExitCode::SUCCESS)
}

/// The daemon's state as `stackshot status` prints it.
fn print_status(state: &DaemonState) {
    println!("daemon up since {}", state.started_at.to_rfc3339());
    match &state.running {
        Some(r) => println!(
            "running: run {} ({}) since {}",
            r.run_id,
            r.trigger,
            r.started_at.to_rfc3339()
        ),
        None => println!("running: nothing"),
    }
    if !state.left_down.is_empty() {
        println!(
            "left down by backup --no-restart (run {}): {}; stackshot will not start them (docker compose start does)",
            state.left_down_by.as_deref().unwrap_or("?"),
            state.left_down.join(", ")
        );
    }
    match state.next_run {
        Some(t) => println!("next run: {}", t.to_rfc3339()),
        None => println!("next run: none scheduled"),
    }
    println!(
        "last success: {}",
        state
            .last_success
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into())
    );
    if let Some(p) = &state.plan {
        println!(
            "plan: {} (changed {})",
            p.summary.line(),
            p.changed_at.to_rfc3339()
        );
        for e in &p.summary.errors {
            println!("  plan error: {e}");
        }
    }
    if !state.recovered.is_empty() {
        println!(
            "started at daemon start-up (interrupted run): {}",
            state.recovered.join(", ")
        );
    }
    if !state.history.is_empty() {
        println!(
            "
last runs:"
        );
        for r in &state.history {
            println!(
                "  {}  {:<8} {:<8} {:>6.1}s  {}",
                r.started_at.to_rfc3339(),
                r.trigger,
                r.result.as_str(),
                r.seconds(),
                r.reason.as_deref().unwrap_or("")
            );
        }
    }
    // The copy says more in its own line than in its maintenance record.
    if let Some((at, copy)) = &state.last_copy {
        println!("last copy at {}: {}", at.to_rfc3339(), copy.line());
    }
    let copy = crate::daemon::state::MaintenanceKind::Copy;
    for m in state.maintenance.iter().filter(|m| m.kind != copy) {
        println!(
            "{} at {}: {}",
            m.kind,
            m.at.to_rfc3339(),
            if m.ok {
                "ok".to_string()
            } else {
                format!("FAILED: {}", m.message.as_deref().unwrap_or(""))
            }
        );
    }
}
