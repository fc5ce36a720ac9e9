//! The plan as a readable table, for `stackshot plan`.

use std::fmt::Write;

use super::{CredentialSource, ExcludeReason, Plan};
use crate::container::MountKind;
use crate::labels::Engine;
use crate::layout::{DATABASES_DIR, VOLUMES_DIR};

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut l = String::from("  ");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(out, header.to_vec());
    for row in rows {
        line(out, row.iter().map(String::as_str).collect());
    }
}

fn source(c: &CredentialSource) -> String {
    match c {
        CredentialSource::Env { var } => var.clone(),
        CredentialSource::FileInContainer { var } => format!("{var} (file in container)"),
        CredentialSource::Default { value } => format!("default {value:?}"),
        CredentialSource::CommandArg { flag } => format!("{flag} in its command line"),
        CredentialSource::None => "none".into(),
    }
}

fn reason(r: ExcludeReason) -> &'static str {
    match r {
        ExcludeReason::NoLabel => "no label",
        ExcludeReason::DatabaseDataDirectory => "database data directory",
        ExcludeReason::BindMountExcluded => "bind mount excluded",
        ExcludeReason::NotIncluded => "include filter",
        ExcludeReason::Excluded => "exclude filter",
        ExcludeReason::UnsupportedMountType => "not a volume",
        ExcludeReason::Duplicate => "duplicate",
        ExcludeReason::Socket => "socket",
    }
}

/// Renders the plan for people, in sections: the heading, the containers
/// stopped, the dumps, the hooks, the files, what is left out, the warnings
/// and errors.
pub fn render_table(plan: &Plan) -> String {
    let mut out = String::new();
    heading(&mut out, plan);
    stopped(&mut out, plan);
    dumps(&mut out, plan);
    hooks(&mut out, plan);
    files(&mut out, plan);
    left_out(&mut out, plan);
    problems(&mut out, plan);
    out
}

/// The heading: the project, the snapshots, the stop window and an
/// append-only repository.
fn heading(out: &mut String, plan: &Plan) {
    let mode = if plan.atomic {
        format!("atomic: one snapshot of {VOLUMES_DIR} and {DATABASES_DIR}")
    } else {
        "separate snapshots for volumes and each database".to_string()
    };
    let _ = writeln!(
        out,
        "Plan for compose project {:?} (restic host {:?}, {mode})",
        plan.project, plan.host
    );
    match &plan.window_reason {
        None => out.push_str(
            "Stop window: short (files pre-passed while the stack runs; databases pinned at the stop, dumped after it)\n",
        ),
        Some(why) => {
            let _ = writeln!(out, "Stop window: full (dumps and files inside it): {why}");
        }
    }

    if let Some(copy) = &plan.copy {
        let _ = writeln!(
            out,
            "Copy: each successful run copied to {} ({}), retention there: {}",
            copy.repository, copy.when, copy.retention
        );
    }
    if plan.append_only {
        out.push_str(
            "Repository: append-only (APPEND_ONLY=true): a short-window run's part snapshots stay, tagged stackshot-part; retention belongs on the server\n",
        );
    }
}

/// The containers stopped during the backup, in waves.
fn stopped(out: &mut String, plan: &Plan) {
    out.push_str(
        "\nStopped during the backup (dependents first, started again in reverse order):\n",
    );
    if plan.stop.is_empty() {
        out.push_str("  nothing\n");
    } else {
        let rows: Vec<Vec<String>> = plan
            .stop
            .iter()
            .map(|s| {
                vec![
                    s.wave.to_string(),
                    s.container.service.clone(),
                    s.container.container.clone(),
                    if super::swarm::service_of(&s.container.id).is_some() {
                        "swarm service: scaled to 0 and back".into()
                    } else if s.running && s.freeze {
                        "running: frozen, not stopped".into()
                    } else if s.running {
                        "running".into()
                    } else {
                        "not running: stays stopped".into()
                    },
                ]
            })
            .collect();
        table(out, &["WAVE", "SERVICE", "CONTAINER", "NOW"], &rows);
        if plan.stop.iter().any(|s| s.freeze) {
            out.push_str(
                "  Frozen: paused with the cgroup freezer instead of stopped, for the same window, then thawed.\n  \
                 Their files are captured crash-consistent, as after a power cut, not as after a clean shutdown.\n",
            );
        }
    }
}

/// The database dumps: engine, databases, credentials, when and where.
fn dumps(out: &mut String, plan: &Plan) {
    out.push_str("\nDatabase dumps:\n");
    if plan.dumps.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = plan
            .dumps
            .iter()
            .map(|d| {
                vec![
                    d.container.service.clone(),
                    d.engine.as_str().into(),
                    match d.engine {
                        Engine::Redis => "all (one RDB)".into(),
                        _ if d.databases.is_empty() => "all + roles".into(),
                        _ => d.databases.join(","),
                    },
                    if d.engine == Engine::Sqlite {
                        "none (files)".into()
                    } else {
                        format!(
                            "user {}, password {}",
                            source(&d.credentials.user),
                            source(&d.credentials.password)
                        )
                    },
                    if d.pinned {
                        "pinned at the stop, dumped after the window (MariaDB/MySQL: unless a table is not InnoDB)".into()
                    } else {
                        format!(
                            "inside the window: {}",
                            d.window_reason.as_deref().unwrap_or("")
                        )
                    },
                    if d.data_dir {
                        format!("{} + its data directory as files", d.outputs.join(" "))
                    } else {
                        d.outputs.join(" ")
                    },
                ]
            })
            .collect();
        table(
            out,
            &[
                "SERVICE",
                "ENGINE",
                "DATABASES",
                "CREDENTIALS FROM",
                "DUMPED",
                "SNAPSHOT PATH",
            ],
            &rows,
        );
    }
}

/// The hooks, in the order they run, when there are any.
fn hooks(out: &mut String, plan: &Plan) {
    if !plan.hooks.is_empty() {
        out.push_str("\nHooks (docker exec, in this order):\n");
        let rows: Vec<Vec<String>> = plan
            .hooks
            .iter()
            .map(|h| {
                vec![
                    h.phase.as_str().into(),
                    h.container.service.clone(),
                    format!("{}s", h.hook.timeout_seconds),
                    h.hook.command.clone(),
                ]
            })
            .collect();
        table(out, &["WHEN", "SERVICE", "LIMIT", "COMMAND"], &rows);
    }
}

/// The mounts backed up, with their snapshot paths.
fn files(out: &mut String, plan: &Plan) {
    out.push_str("\nFiles backed up:\n");
    if plan.volumes.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = plan
            .volumes
            .iter()
            .map(|v| {
                vec![
                    v.container.service.clone(),
                    match v.kind {
                        MountKind::Volume => "volume",
                        MountKind::Bind => "bind",
                        MountKind::Other => "other",
                    }
                    .into(),
                    v.source.clone(),
                    v.destination.clone(),
                    v.snapshot_path.clone(),
                ]
            })
            .collect();
        table(
            out,
            &["SERVICE", "KIND", "SOURCE", "DESTINATION", "SNAPSHOT PATH"],
            &rows,
        );
    }
}

/// What is left out: containers and mounts, and files left out of the file pass.
fn left_out(out: &mut String, plan: &Plan) {
    if !plan.excluded.is_empty() {
        out.push_str("\nLeft out:\n");
        let rows: Vec<Vec<String>> = plan
            .excluded
            .iter()
            .map(|e| {
                vec![
                    e.container.service.clone(),
                    e.mount.clone().unwrap_or_else(|| "(container)".into()),
                    reason(e.reason).into(),
                    e.detail.clone(),
                ]
            })
            .collect();
        table(out, &["SERVICE", "MOUNT", "REASON", "DETAIL"], &rows);
    }
    if !plan.excludes.is_empty() {
        let _ = writeln!(
            out,
            "\nFiles left out of the file pass (SQLite: its copy in {DATABASES_DIR} is the consistent one):"
        );
        for e in &plan.excludes {
            let _ = writeln!(out, "  {e}");
        }
    }
}

/// The plan's warnings and errors.
fn problems(out: &mut String, plan: &Plan) {
    if !plan.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &plan.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    if !plan.errors.is_empty() {
        out.push_str("\nErrors (no backup runs until they are fixed):\n");
        for e in &plan.errors {
            let _ = writeln!(out, "  - {e}");
        }
    }
}
