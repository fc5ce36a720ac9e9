//! The short stop window, as a list of phases:
//!
//! 1. pre-pass of the files while the stack runs; then the window's file pass
//!    ([`files`]: the repository opened, the index loaded) and the databases
//!    ([`pin::arm`]: sessions open, dumps started waiting) armed, so none of
//!    that costs window time (a database that cannot be armed: full window);
//! 2. the window: stop; pin every pinnable database ∥ the incremental file
//!    snapshot (parent: the pre-pass; on a remote repository written to a
//!    local spool) ∥ the dumps that cannot be pinned; start;
//! 3. the pinned dumps stream into `/databases` (schema checked afterwards) ∥
//!    the spooled file snapshot uploads;
//! 4. a snapshot of `/databases`;
//! 5. the two snapshots merged into one, timed at the stop, and checked blob
//!    by blob; the parts forgotten.
//!
//! A restic lock is held from before step 1 until the check in step 5
//! ([`crate::restic::hold`]): rustic writes in steps 2 and 5 and takes none.
//!
//! A pinned dump that fails or sees its schema change is [`Short::Fallback`]:
//! the caller repeats the run once in the full window. Anything else fails the
//! run as the full window would.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use super::merge::{self, MergeInto};
use super::pin::{self, Pinned};
use super::snapshot::{self, SnapshotJob, Snapshotted, Target, Upload};
use super::{files, pause, prepass};
use crate::config::StopWindow;
use crate::container::ContainerInfo;
use crate::context::Context;
use crate::dumps::{self, DATABASES_DIR, DumpResult, Prepared};
use crate::plan::Plan;
use crate::report::{Phase, RunReport, SnapshotReport};
use crate::restic::hold::HeldLock;
use crate::window::{self, Shutdown};

/// How a short-window run ended.
pub enum Short {
    /// Done: the merged snapshot is written.
    Done(Vec<SnapshotReport>, Vec<DumpResult>),
    /// A pinned dump failed or its schema drifted: repeat in the full window.
    Fallback(String),
}

/// What the window's work hands back.
struct InWindow {
    stop_time: DateTime<Utc>,
    pinned: Vec<Pinned>,
    files: Option<Snapshotted>,
    /// Why the file pass was not the armed one it was meant to be.
    files_note: Option<String>,
    /// The file pass, spooled locally, still uploading.
    upload: Option<Upload>,
    dumps: Vec<DumpResult>,
}

fn phase(r: &mut RunReport, name: &str, t: Instant) {
    r.phases.push(Phase {
        name: name.into(),
        seconds: t.elapsed().as_secs_f64(),
    });
}

/// Runs the short window. `prepared` are the checked databases, `in_window`
/// the indexes among them that are dumped inside the window.
///
/// From before the pre-pass until the merged snapshot is checked, a restic
/// lock is held in the repository ([`HeldLock`]): rustic takes none, and a
/// prune must not run while it writes. The run's parts are forgotten after
/// that lock is let go (`restic forget` needs the repository to itself).
pub async fn run(
    ctx: &Context,
    shutdown: &Shutdown,
    r: &mut RunReport,
    plan: &Plan,
    sidecar: &ContainerInfo,
    prepared: &[Prepared],
    in_window: &[usize],
) -> Result<Short> {
    let t = Instant::now();
    let mut lock =
        ctx.restic.hold_lock().await.context(
            "the short window holds a restic lock while rustic writes; nothing was stopped",
        )?;
    phase(r, "lock", t);
    pause::at("locked").await;
    let mut forget_after = Vec::new();
    let result = run_locked(
        ctx,
        shutdown,
        r,
        plan,
        sidecar,
        (prepared, in_window),
        &mut lock,
        &mut forget_after,
    )
    .await;
    pause::at("checked").await;
    if let Err(e) = lock.release(&ctx.restic).await {
        tracing::warn!(error = %format!("{e:#}"), "the run's repository lock");
    }
    pause::at("released").await;
    if ctx.config.append_only {
        if !forget_after.is_empty() {
            r.notes.push(format!(
                "the repository is append-only (APPEND_ONLY=true): this run's {} part snapshot(s) stay, tagged stackshot-part (no listing, retention or restore takes them)",
                forget_after.len()
            ));
        }
    } else {
        prepass::forget(&ctx.restic, &forget_after).await;
    }
    result
}

/// [`run`], with the repository locked; the parts to forget once the lock is
/// let go are added to `forget_after`.
#[allow(clippy::too_many_arguments)]
async fn run_locked(
    ctx: &Context,
    shutdown: &Shutdown,
    r: &mut RunReport,
    plan: &Plan,
    sidecar: &ContainerInfo,
    (prepared, in_window): (&[Prepared], &[usize]),
    lock: &mut HeldLock,
    forget_after: &mut Vec<String>,
) -> Result<Short> {
    let run_id = r.run_id.clone();
    let target = Target {
        host: &plan.host,
        project: &plan.project,
        secrets: &ctx.config.restic.env,
        stall_timeout: ctx.config.snapshot_stall_timeout,
        run_id: &run_id,
    };
    let password = ctx
        .config
        .restic
        .env
        .iter()
        .find(|(k, _)| k == "RESTIC_PASSWORD")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| anyhow!("no repository password to merge with"))?;
    let backend = crate::restic::backend::map_settings(&ctx.config.restic)?;
    if backend.local_dir().is_none() && backend.cache_dir.is_none() {
        r.notes.push(
            "the window's file pass uploads inside the window: set RESTIC_CACHE_DIR (a volume) to spool it there and upload after the window".into(),
        );
    }

    // 1. Pre-pass.
    let t = Instant::now();
    let pre = prepass::run(&ctx.engine, &target, plan, sidecar).await?;
    let pre_id = pre.as_ref().and_then(|s| s.report.id.clone());
    let mut parts: Vec<String> = pre_id.iter().cloned().collect();
    phase(r, "pre-pass", t);
    // The file pass and the databases armed: everything slow about them done
    // before the window, nothing pinned yet.
    let pinnable: Vec<&Prepared> = prepared
        .iter()
        .enumerate()
        .filter(|(i, _)| !in_window.contains(i))
        .map(|(_, p)| p)
        .collect();
    let t = Instant::now();
    let files_ready = async {
        if plan.volumes.is_empty() {
            return Ok((None, None));
        }
        files::prepare(
            &ctx.engine,
            ctx.config.file_pass,
            &target,
            plan,
            sidecar,
            &pre_id,
        )
        .await
        .map(|(pass, note)| (Some(pass), note))
    };
    let (files_ready, armed) = tokio::join!(
        files_ready,
        join_all(pinnable.iter().map(|p| pin::arm(&ctx.engine, p)))
    );
    let (files_pass, note) = files_ready?;
    r.notes.extend(note);
    phase(r, "armed", t);
    let armed = match armed.into_iter().collect::<Result<Vec<_>>>() {
        Ok(a) => a,
        Err(e) => {
            // Nothing was stopped: the full window takes the run (the
            // unstarted file worker goes with the run's clean-up).
            drop(files_pass);
            forget_after.extend(parts.iter().cloned());
            return Ok(Short::Fallback(format!(
                "a database could not be made ready to pin: {e:#}"
            )));
        }
    };

    pause::at("armed").await;

    // 2. The window. A pinned MariaDB dump's output is held until it closes.
    let (closed, hold) = tokio::sync::watch::channel(false);
    let inside: Vec<Prepared> = in_window.iter().map(|&i| prepared[i].clone()).collect();
    let root = Path::new(DATABASES_DIR);
    let t = Instant::now();
    let (result, report) = window::with_stop_window(
        &ctx.engine,
        &ctx.journal,
        &run_id,
        &plan.stop,
        window::Times {
            stop: ctx.config.stop_timeout,
            limit: Some(ctx.config.window_limit(StopWindow::Short)),
        },
        shutdown,
        || async {
            let stop_time = Utc::now();
            let files = async {
                match files_pass {
                    Some(f) => crate::activity::track(
                        "the file pass over the volumes",
                        f.run(&ctx.engine, &target, plan, sidecar, &pre_id),
                    )
                    .await
                    .map(Some),
                    None => Ok(None),
                }
            };
            let (pins, files, dumps) = tokio::join!(
                join_all(armed.into_iter().map(|a| {
                    let what = format!("pinning the dump of {}", a.service());
                    crate::activity::track(what, pin::pin(&ctx.engine, a, root, hold.clone()))
                })),
                files,
                dumps::dump_all(&ctx.engine, &inside, root),
            );
            pause::at("window").await;
            let mut pinned = Vec::new();
            let mut pin_errors = Vec::new();
            for p in pins {
                match p {
                    Ok(p) => pinned.push(p),
                    Err(e) => pin_errors.push(format!("{e:#}")),
                }
            }
            let (files, files_note, upload) = match files? {
                Some(t) => (Some(t.snapshot), t.note, t.upload),
                None => (None, None, None),
            };
            Ok::<_, anyhow::Error>((
                InWindow {
                    stop_time,
                    pinned,
                    files,
                    files_note,
                    upload,
                    dumps: dumps?,
                },
                pin_errors,
            ))
        },
    )
    .await;
    // The stack runs again: the held dumps may stream now.
    let _ = closed.send(true);
    drop(hold);
    phase(r, "window", t);
    let restart_failed = report.restart_failed.clone();
    r.window = Some(report);
    let (mut w, pin_errors) = match result {
        Ok(v) => v,
        Err(e) => {
            forget_after.extend(parts.iter().cloned());
            return window::running_again(&restart_failed, &ctx.journal, Err(e));
        }
    };
    if let Some(f) = &w.files {
        parts.extend(f.report.id.clone());
    }
    r.notes.extend(w.files_note.clone());
    if !restart_failed.is_empty() {
        if let Some(u) = w.upload.take() {
            u.abort(&ctx.engine).await;
        }
        forget_after.extend(parts.iter().cloned());
    }
    window::running_again(&restart_failed, &ctx.journal, Ok(()))?;
    let services: Vec<String> = w.pinned.iter().map(|p| p.service().to_string()).collect();
    tracing::info!(pinned = ?services, "stop window closed; streaming the pinned dumps");

    // 3. The pinned dumps, while the spooled file pass uploads.
    let t = Instant::now();
    let upload = async {
        let u = w.upload.take()?;
        let (files, bytes) = (u.files, u.bytes);
        let result = u.finish(&ctx.engine).await;
        tracing::info!(
            files,
            bytes,
            seconds = t.elapsed().as_secs_f64(),
            ok = result.is_ok(),
            "the spooled file pass uploaded"
        );
        Some((result, t.elapsed().as_secs_f64()))
    };
    let (finished, uploaded) = tokio::join!(
        join_all(
            w.pinned
                .into_iter()
                .map(|p| pin::finish(&ctx.engine, p, root)),
        ),
        upload
    );
    phase(r, "dumps", t);
    if let Some((result, seconds)) = uploaded {
        r.phases.push(Phase {
            name: "upload".into(),
            seconds,
        });
        if let Err(e) = result {
            // Its snapshot never reached the repository: nothing to forget.
            let files_id = w.files.as_ref().and_then(|f| f.report.id.clone());
            forget_after.extend(
                parts
                    .iter()
                    .filter(|p| Some(*p) != files_id.as_ref())
                    .cloned(),
            );
            return Err(e.context(
                "the window's file pass was spooled on the cache volume but did not reach the repository; the next run starts clean",
            ));
        }
    }
    let mut all_dumps = w.dumps;
    let mut problems = pin_errors;
    let mut out_of_space = false;
    for f in finished {
        match f {
            Ok(mut d) => all_dumps.append(&mut d),
            Err(e) => {
                out_of_space |= dumps::is_out_of_space(&e);
                problems.push(format!("{e:#}"));
            }
        }
    }
    if out_of_space {
        // The full window would dump into the same full disk, with the stack down.
        forget_after.extend(parts.iter().cloned());
        return Err(anyhow!(
            "{}; not repeated in the full window (the dumps would not fit there either): give {} more space",
            problems.join("; "),
            root.display()
        ));
    }
    if !problems.is_empty() {
        forget_after.extend(parts.iter().cloned());
        return Ok(Short::Fallback(problems.join("; ")));
    }

    pause::at("uploaded").await;

    // 4. The dumps' snapshot.
    let t = Instant::now();
    let dumps_snap = if all_dumps.is_empty() {
        None
    } else {
        dumps::write_sums(root, &all_dumps, prepared)?;
        let job = SnapshotJob {
            mode: "dumps",
            with_volumes: false,
            paths: &[DATABASES_DIR],
            tags: Some(target.part_tags("dumps")),
            parent: None,
            pass: snapshot::Pass::Restic,
        };
        let s = snapshot::start_in_worker(&ctx.engine, &target, plan, sidecar, &job)
            .await?
            .finish(&ctx.engine)
            .await;
        match s {
            Ok(s) => Some(s),
            Err(e) => {
                forget_after.extend(parts.iter().cloned());
                return Err(e);
            }
        }
    };
    if let Some(d) = &dumps_snap {
        parts.extend(d.report.id.clone());
    }
    phase(r, "dumps snapshot", t);
    pause::at("dumps-snapshot").await;

    // 5. Merge into one snapshot, timed at the stop; forget the parts.
    let t = Instant::now();
    let mut merged_parts: Vec<String> = Vec::new();
    merged_parts.extend(w.files.as_ref().and_then(|f| f.report.id.clone()));
    merged_parts.extend(dumps_snap.as_ref().and_then(|d| d.report.id.clone()));
    let mut svc: Vec<&str> = Vec::new();
    if w.files.is_some() {
        svc.extend(plan.volumes.iter().map(|v| v.container.service.as_str()));
    }
    if dumps_snap.is_some() {
        svc.extend(plan.dumps.iter().map(|d| d.container.service.as_str()));
    }
    let tags = target.tags("atomic", &svc);
    let into_host = plan.host.clone();
    let stop_time = w.stop_time;
    let to_merge = merged_parts.clone();
    let merged = tokio::task::spawn_blocking(move || {
        merge::merge_blocking(
            &backend,
            password.expose(),
            &to_merge,
            &MergeInto {
                host: &into_host,
                tags: &tags,
                time: stop_time,
            },
        )
    })
    .await
    .context("the merge task failed")?
    .with_context(|| {
        format!(
            "cannot merge the window's snapshots {} into one; they are kept",
            merged_parts.join(", ")
        )
    });
    let merged = match merged {
        Ok(id) => id,
        Err(e) => {
            // Keep the parts (nothing lost); only the pre-pass goes.
            forget_after.extend(pre_id);
            return Err(e);
        }
    };
    pause::at("merged").await;
    // Held all along (restic refreshing it): no prune ran while rustic
    // wrote, and the check above saw every blob in place. Else the parts stay.
    if let Err(e) = lock.check(&ctx.restic).await {
        // Not listed as a backup: a prune may yet take its data.
        forget_after.extend(pre_id.into_iter().chain([merged.clone()]));
        return Err(e.context(format!(
            "the merged snapshot {} is not trusted; the window's snapshots {} are kept",
            &merged[..8],
            merged_parts.join(", ")
        )));
    }
    forget_after.extend(parts.iter().cloned());
    phase(r, "merge", t);
    tracing::info!(
        seconds = t.elapsed().as_secs_f64(),
        "merged and parts forgotten"
    );
    tracing::info!(snapshot = %&merged[..8], "one snapshot of the stop's moment written");

    let mut report = SnapshotReport {
        mode: "atomic".into(),
        id: Some(merged[..8].to_string()),
        ..Default::default()
    };
    for s in w.files.iter().chain(dumps_snap.iter()) {
        report.files_new += s.report.files_new;
        report.files_changed += s.report.files_changed;
        report.files_unmodified += s.report.files_unmodified;
        report.bytes_added += s.report.bytes_added;
        report.bytes_processed += s.report.bytes_processed;
        report.seconds += s.report.seconds;
        report
            .unreadable
            .extend(s.report.unreadable.iter().cloned());
    }
    Ok(Short::Done(vec![report], all_dumps))
}
