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
use crate::layout::{RunPart, SnapshotMode};
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

/// The run's part snapshots, and what becomes of them when the run ends,
/// on every path out of it: once the lock is let go they are forgotten,
/// unless a step decided otherwise (a failed merge keeps the window's parts:
/// nothing is lost).
#[derive(Default)]
struct Parts {
    /// Every part written so far: pre-pass, file pass, dumps.
    written: Vec<String>,
    /// What to forget instead of `written`, where a step decided.
    forget_instead: Option<Vec<String>>,
}

impl Parts {
    fn add(&mut self, id: Option<String>) {
        self.written.extend(id);
    }

    /// The parts to forget. Pure.
    fn into_forgotten(self) -> Vec<String> {
        self.forget_instead.unwrap_or(self.written)
    }
}

/// A step's result: go on, or repeat the run in the full window.
enum Step<T> {
    Go(T),
    Fallback(String),
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
    let mut parts = Parts::default();
    let run_id = r.run_id.clone();
    let steps = Steps {
        ctx,
        plan,
        sidecar,
        prepared,
        target: Target {
            host: &plan.host,
            project: &plan.project,
            secrets: &ctx.config.restic.env,
            stall_timeout: ctx.config.snapshot_stall_timeout,
            run_id: &run_id,
        },
    };
    let result = steps
        .run_locked(shutdown, r, in_window, &mut lock, &mut parts)
        .await;
    pause::at("checked").await;
    if let Err(e) = lock.release(&ctx.restic).await {
        tracing::warn!(error = %format!("{e:#}"), "the run's repository lock");
    }
    pause::at("released").await;
    let forget_after = parts.into_forgotten();
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

/// What every step of a short-window run works with.
struct Steps<'a> {
    ctx: &'a Context,
    plan: &'a Plan,
    sidecar: &'a ContainerInfo,
    prepared: &'a [Prepared],
    target: Target<'a>,
}

/// After step 1: the pre-pass written, the file pass and the pinnable
/// databases armed.
struct Ready {
    pre_id: Option<String>,
    files_pass: Option<files::FilesPass>,
    armed: Vec<pin::Armed>,
}

impl Steps<'_> {
    /// The steps, in order, with the repository locked.
    async fn run_locked(
        &self,
        shutdown: &Shutdown,
        r: &mut RunReport,
        in_window: &[usize],
        lock: &mut HeldLock,
        parts: &mut Parts,
    ) -> Result<Short> {
        let ctx = self.ctx;
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
        let ready = match self.prepass_and_arm(r, in_window, parts).await? {
            Step::Go(ready) => ready,
            Step::Fallback(why) => return Ok(Short::Fallback(why)),
        };
        pause::at("armed").await;
        let pre_id = ready.pre_id.clone();
        let (mut w, pin_errors) = self.window(shutdown, r, in_window, ready, parts).await?;
        let dumps = match self.stream_pinned(r, &mut w, pin_errors, parts).await? {
            Step::Go(dumps) => dumps,
            Step::Fallback(why) => return Ok(Short::Fallback(why)),
        };
        pause::at("uploaded").await;
        let dumps_snap = self.dumps_snapshot(r, &dumps).await?;
        if let Some(d) = &dumps_snap {
            parts.add(d.report.id.clone());
        }
        pause::at("dumps-snapshot").await;
        let merged = self
            .merge(
                r,
                (w.files.as_ref(), w.stop_time),
                &dumps_snap,
                (backend, password),
                pre_id,
                lock,
                parts,
            )
            .await?;
        Ok(Short::Done(vec![merged], dumps))
    }

    /// Step 1, the stack running: the pre-pass of the files, then the
    /// window's file pass and the pinnable databases armed (everything slow
    /// about them done before the window, nothing pinned yet). A database
    /// that cannot be armed sends the run to the full window.
    async fn prepass_and_arm(
        &self,
        r: &mut RunReport,
        in_window: &[usize],
        parts: &mut Parts,
    ) -> Result<Step<Ready>> {
        let (ctx, plan, sidecar, target) = (self.ctx, self.plan, self.sidecar, &self.target);
        let t = Instant::now();
        let pre = prepass::run(&ctx.engine, target, plan, sidecar).await?;
        let pre_id = pre.as_ref().and_then(|s| s.report.id.clone());
        parts.add(pre_id.clone());
        phase(r, "pre-pass", t);
        let pinnable: Vec<&Prepared> = self
            .prepared
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
                target,
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
        match armed.into_iter().collect::<Result<Vec<_>>>() {
            Ok(armed) => Ok(Step::Go(Ready {
                pre_id,
                files_pass,
                armed,
            })),
            // Nothing was stopped: the full window takes the run (the
            // unstarted file worker goes with the run's clean-up).
            Err(e) => Ok(Step::Fallback(format!(
                "a database could not be made ready to pin: {e:#}"
            ))),
        }
    }

    /// Step 2, the window: stop; pin every armed database ∥ the file pass ∥
    /// the dumps that cannot be pinned; start. A pinned MariaDB dump's output
    /// is held until the window closes. The pins that failed come back as
    /// errors beside what the window gathered; containers left down fail
    /// the run, first.
    async fn window(
        &self,
        shutdown: &Shutdown,
        r: &mut RunReport,
        in_window: &[usize],
        ready: Ready,
        parts: &mut Parts,
    ) -> Result<(InWindow, Vec<String>)> {
        let (ctx, plan, sidecar, target) = (self.ctx, self.plan, self.sidecar, &self.target);
        let Ready {
            pre_id,
            files_pass,
            armed,
        } = ready;
        let (closed, hold) = tokio::sync::watch::channel(false);
        let inside: Vec<Prepared> = in_window
            .iter()
            .map(|&i| self.prepared[i].clone())
            .collect();
        let root = Path::new(DATABASES_DIR);
        let t = Instant::now();
        let (result, report) = window::with_stop_window(
            &ctx.engine,
            &ctx.journal,
            target.run_id,
            &plan.stop,
            window::Times {
                stop: ctx.config.stop_timeout,
                limit: Some(ctx.config.window_limit(StopWindow::Short)),
                freeze: true,
            },
            shutdown,
            || async {
                let stop_time = Utc::now();
                let files = async {
                    match files_pass {
                        Some(f) => crate::activity::track(
                            "the file pass over the volumes",
                            f.run(&ctx.engine, target, plan, sidecar, &pre_id),
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
            Err(e) => return window::running_again(&restart_failed, &ctx.journal, Err(e)),
        };
        if let Some(f) = &w.files {
            parts.add(f.report.id.clone());
        }
        r.notes.extend(w.files_note.clone());
        if !restart_failed.is_empty()
            && let Some(u) = w.upload.take()
        {
            u.abort(&ctx.engine).await;
        }
        window::running_again(&restart_failed, &ctx.journal, Ok(()))?;
        let services: Vec<String> = w.pinned.iter().map(|p| p.service().to_string()).collect();
        tracing::info!(pinned = ?services, "stop window closed; streaming the pinned dumps");
        Ok((w, pin_errors))
    }

    /// Step 3, the stack running: the pinned dumps stream into `/databases`
    /// (schema checked afterwards) while the spooled file pass uploads. A
    /// pinned dump that failed or saw its schema change sends the run to
    /// the full window; a full disk or a failed upload fails it.
    async fn stream_pinned(
        &self,
        r: &mut RunReport,
        w: &mut InWindow,
        pin_errors: Vec<String>,
        parts: &mut Parts,
    ) -> Result<Step<Vec<DumpResult>>> {
        let ctx = self.ctx;
        let root = Path::new(DATABASES_DIR);
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
        let pinned = std::mem::take(&mut w.pinned);
        let (finished, uploaded) = tokio::join!(
            join_all(
                pinned
                    .into_iter()
                    .map(|p| pin::finish(&ctx.engine, p, root))
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
                let files_id = w.files.as_ref().and_then(|f| f.report.id.as_ref());
                parts.forget_instead = Some(
                    parts
                        .written
                        .iter()
                        .filter(|p| Some(*p) != files_id)
                        .cloned()
                        .collect(),
                );
                return Err(e.context(
                    "the window's file pass was spooled on the cache volume but did not reach the repository; the next run starts clean",
                ));
            }
        }
        let mut all_dumps = std::mem::take(&mut w.dumps);
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
            return Err(anyhow!(
                "{}; not repeated in the full window (the dumps would not fit there either): give {} more space",
                problems.join("; "),
                root.display()
            ));
        }
        if !problems.is_empty() {
            return Ok(Step::Fallback(problems.join("; ")));
        }
        Ok(Step::Go(all_dumps))
    }

    /// Step 4: a snapshot of `/databases` (none without dumps).
    async fn dumps_snapshot(
        &self,
        r: &mut RunReport,
        all_dumps: &[DumpResult],
    ) -> Result<Option<Snapshotted>> {
        let t = Instant::now();
        if all_dumps.is_empty() {
            phase(r, "dumps snapshot", t);
            return Ok(None);
        }
        dumps::write_sums(Path::new(DATABASES_DIR), all_dumps, self.prepared)?;
        let job = SnapshotJob {
            mode: RunPart::Dumps.label(),
            with_volumes: false,
            paths: &[DATABASES_DIR],
            tags: self.target.part_tags(RunPart::Dumps),
            parent: None,
            pass: snapshot::Pass::Restic,
        };
        let s = snapshot::start_in_worker(
            &self.ctx.engine,
            &self.target,
            self.plan,
            self.sidecar,
            &job,
        )
        .await?
        .finish(&self.ctx.engine)
        .await?;
        phase(r, "dumps snapshot", t);
        Ok(Some(s))
    }

    /// Step 5: the file pass and the dumps' snapshot merged into one
    /// snapshot timed at the stop, then the lock checked: held all along, so
    /// no prune ran while rustic wrote. A failed merge keeps the parts; an
    /// untrusted merge keeps them and forgets the merged one.
    #[allow(clippy::too_many_arguments)]
    async fn merge(
        &self,
        r: &mut RunReport,
        (files, stop_time): (Option<&Snapshotted>, DateTime<Utc>),
        dumps_snap: &Option<Snapshotted>,
        (backend, password): (crate::restic::backend::BackendSpec, crate::env::Secret),
        pre_id: Option<String>,
        lock: &mut HeldLock,
        parts: &mut Parts,
    ) -> Result<SnapshotReport> {
        let (ctx, plan) = (self.ctx, self.plan);
        let t = Instant::now();
        let mut merged_parts: Vec<String> = Vec::new();
        merged_parts.extend(files.and_then(|f| f.report.id.clone()));
        merged_parts.extend(dumps_snap.as_ref().and_then(|d| d.report.id.clone()));
        let mut svc: Vec<&str> = Vec::new();
        if files.is_some() {
            svc.extend(plan.volumes.iter().map(|v| v.container.service.as_str()));
        }
        if dumps_snap.is_some() {
            svc.extend(plan.dumps.iter().map(|d| d.container.service.as_str()));
        }
        let tags = self.target.tags(SnapshotMode::Atomic, &svc);
        let into_host = plan.host.clone();
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
                parts.forget_instead = Some(pre_id.into_iter().collect());
                return Err(e);
            }
        };
        pause::at("merged").await;
        // Held all along (restic refreshing it): no prune ran while rustic
        // wrote, and the check above saw every blob in place. Else the parts stay.
        if let Err(e) = lock.check(&ctx.restic).await {
            // Not listed as a backup: a prune may yet take its data.
            parts.forget_instead = Some(pre_id.into_iter().chain([merged.clone()]).collect());
            return Err(e.context(format!(
                "the merged snapshot {} is not trusted; the window's snapshots {} are kept",
                &merged[..8],
                merged_parts.join(", ")
            )));
        }
        phase(r, "merge", t);
        tracing::info!(
            seconds = t.elapsed().as_secs_f64(),
            "merged and parts forgotten"
        );
        tracing::info!(snapshot = %&merged[..8], "one snapshot of the stop's moment written");
        let mut report = SnapshotReport {
            mode: SnapshotMode::Atomic.as_str().into(),
            id: Some(merged[..8].to_string()),
            ..Default::default()
        };
        for s in files.into_iter().chain(dumps_snap.iter()) {
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
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::Parts;

    #[test]
    fn every_written_part_is_forgotten_unless_a_step_kept_some() {
        // Any way out (an error's `?` included): what was written goes.
        let mut parts = Parts::default();
        parts.add(Some("pre".into()));
        parts.add(None);
        parts.add(Some("files".into()));
        assert_eq!(parts.into_forgotten(), ["pre", "files"]);
        // A failed merge keeps the window's parts: only the pre-pass goes.
        let mut parts = Parts::default();
        parts.add(Some("pre".into()));
        parts.add(Some("files".into()));
        parts.forget_instead = Some(vec!["pre".into()]);
        assert_eq!(parts.into_forgotten(), ["pre"]);
    }
}
