//! `stackshot plan` and `stackshot backup`: through the running daemon when
//! one listens, else in this process.

use std::process::ExitCode;

use anyhow::Result;

use super::EXIT_CONFIG;
use crate::config::Config;
use crate::context::{self, Context};
use crate::daemon::control::{Reply, Request};
use crate::daemon::{self, control};
use crate::engine::Engine;
use crate::report::{Outcome, RunReport};
use crate::window::Shutdown;
use crate::{discovery, plan};

/// `stackshot plan`: the running daemon's plan, else one read from the
/// engine here. Exits 2 when the plan has errors.
pub(super) async fn plan(config: &Config, engine: &Engine, json: bool) -> Result<ExitCode> {
    let ok = match print_daemon_plan(json).await? {
        Some(ok) => ok,
        None => print_plan(config, engine, json).await?,
    };
    Ok(plan_exit(ok))
}

/// `stackshot backup --dry-run`: the plan read from the engine here, and
/// that nothing was touched.
pub(super) async fn dry_run(config: &Config, engine: &Engine, json: bool) -> Result<ExitCode> {
    let ok = print_plan(config, engine, json).await?;
    if !json {
        println!("\nDry run: nothing was stopped, dumped or snapshotted.");
    }
    Ok(plan_exit(ok))
}

/// `stackshot backup` in this process: watches for signals, runs the
/// backup, prints its report.
pub(super) async fn backup(
    config: Config,
    engine: Engine,
    json: bool,
    no_restart: bool,
) -> Result<ExitCode> {
    let shutdown = Shutdown::on_signals()?;
    let ctx = Context {
        leave_down: no_restart,
        ..super::context(config, engine)
    };
    let report = crate::backup::backup(&ctx, &shutdown).await;
    print_report(&report, json)?;
    Ok(exit_for(&report))
}

/// Asks the daemon over its socket; `None` when no daemon listens.
pub(super) async fn via_daemon(json: bool) -> Result<Option<ExitCode>> {
    let Some(stream) = control::connect(&daemon::socket_path()).await else {
        return Ok(None);
    };
    let mut code = ExitCode::FAILURE;
    let mut answered = false;
    control::call(stream, &Request::Backup, |reply| match reply {
        Reply::Accepted { run_id } => eprintln!("stackshot: the daemon started run {run_id}"),
        Reply::Log { line } => eprintln!("{line}"),
        Reply::Report { report } => {
            answered = true;
            code = exit_for(&report);
            let _ = print_report(&report, json);
        }
        Reply::Busy { running } => {
            answered = true;
            match running {
                Some(r) => eprintln!(
                    "stackshot: a backup is already running (run {}, {} since {}); nothing was started",
                    r.run_id, r.trigger, r.started_at.to_rfc3339()
                ),
                None => eprintln!("stackshot: the daemon is shutting down; nothing was started"),
            }
        }
        Reply::Error { message } => eprintln!("stackshot: error: {message}"),
        Reply::Status { .. } | Reply::Plan { .. } => {}
    })
    .await?;
    if !answered {
        eprintln!("stackshot: the daemon closed the connection without a report (did it stop?)");
    }
    Ok(Some(code))
}

/// A plan's exit code: 0 when it has no errors, else 2.
fn plan_exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}

/// The running daemon's current plan, printed; `None` when no daemon listens
/// or it has none yet.
async fn print_daemon_plan(json: bool) -> Result<Option<bool>> {
    let Some(stream) = control::connect(&daemon::socket_path()).await else {
        return Ok(None);
    };
    let mut answer = None;
    control::call(stream, &Request::Plan, |reply| {
        if let Reply::Plan {
            plan,
            table,
            ok,
            checked_at,
        } = reply
        {
            answer = Some((plan, table, ok, checked_at));
        }
    })
    .await?;
    let Some((plan, table, ok, checked_at)) = answer else {
        return Ok(None);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        eprintln!(
            "stackshot: the running daemon's plan, as of {} (read from the engine by the daemon)",
            checked_at.to_rfc3339()
        );
        print!("{table}");
    }
    Ok(Some(ok))
}

async fn print_plan(config: &Config, engine: &Engine, json: bool) -> Result<bool> {
    let found = discovery::discover(engine.docker(), config).await?;
    let plan = plan::build(&context::plan_options(config, &found), &found.containers);
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        if let Some(line) = discovery::swarm_line(&found, &plan.host) {
            println!("{line}");
        }
        print!("{}", plan::render_table(&plan));
    }
    Ok(plan.is_ok())
}

/// A backup's exit code: 0 on success, 2 when the plan had errors (nothing
/// was touched; `stackshot plan` exits 2 for the same plan), else 1. The
/// same whether the run was this process's or the daemon's. Pure.
fn exit_code(report: &RunReport) -> u8 {
    if report.result == Outcome::Success {
        0
    } else if report.plan_refused {
        EXIT_CONFIG
    } else {
        1
    }
}

fn exit_for(report: &RunReport) -> ExitCode {
    ExitCode::from(exit_code(report))
}

fn print_report(report: &RunReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_refused_for_its_plan_exits_2_like_plan() {
        let ok = RunReport::start().finish(Outcome::Success, None);
        assert_eq!(exit_code(&ok), 0);
        let failed = RunReport::start().finish(Outcome::Failed, Some("x".into()));
        assert_eq!(exit_code(&failed), 1);
        let partial = RunReport::start().finish(Outcome::Partial, None);
        assert_eq!(exit_code(&partial), 1);
        let mut refused = RunReport::start();
        refused.plan_refused = true;
        let refused = refused.finish(Outcome::Failed, Some("the plan has errors".into()));
        assert_eq!(exit_code(&refused), EXIT_CONFIG);
        // A daemon's report read by a client that knows the field, and one
        // from a daemon that did not send it.
        let v = serde_json::to_value(&refused).unwrap();
        assert_eq!(v["plan_refused"], true);
        let back: RunReport = serde_json::from_value(v).unwrap();
        assert_eq!(exit_code(&back), EXIT_CONFIG);
        let mut old = serde_json::to_value(&failed).unwrap();
        old.as_object_mut().unwrap().remove("plan_refused");
        let back: RunReport = serde_json::from_value(old).unwrap();
        assert_eq!(exit_code(&back), 1);
    }
}
