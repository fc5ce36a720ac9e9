//! Pre-pass: a `restic backup` of the plan's mounts while the stack still
//! runs. It is only a parent: the pass inside the window reads just what
//! changed since, and almost every blob is uploaded ahead of time.
//!
//! The pre-pass and the other parts of a run (the window's file snapshot, the
//! dumps' snapshot) carry the tag `stackshot-part`, never `stackshot`, so no
//! listing, retention or restore takes them for a backup. The run forgets them
//! when it ends; a pre-pass left by a run that died is forgotten by the next
//! one. The window and dumps parts of a run whose merge failed are kept for
//! a week, then forgotten by the next run.

use anyhow::Result;

use super::snapshot::{self, PART_TAG, SnapshotJob, Snapshotted, Target, VOLUMES_DIR};
use crate::catalog;
use crate::container::ContainerInfo;
use crate::engine::Engine;
use crate::layout::RunPart;
use crate::plan::Plan;
use crate::restic::Restic;
use crate::restic::json::SnapshotInfo;

/// Takes the pre-pass of `/volumes` (the stack running), or `None` when the
/// plan has no mounts.
pub async fn run(
    engine: &Engine,
    target: &Target<'_>,
    plan: &Plan,
    sidecar: &ContainerInfo,
) -> Result<Option<Snapshotted>> {
    if plan.volumes.is_empty() {
        return Ok(None);
    }
    let job = SnapshotJob {
        mode: RunPart::Prepass.label(),
        with_volumes: true,
        paths: &[VOLUMES_DIR],
        tags: target.part_tags(RunPart::Prepass),
        parent: None,
        pass: snapshot::Pass::Restic,
    };
    let snap = snapshot::start_in_worker(engine, target, plan, sidecar, &job)
        .await?
        .finish(engine)
        .await?;
    tracing::info!(
        snapshot = snap.report.id.as_deref().unwrap_or("?"),
        bytes_added = snap.report.bytes_added,
        seconds = snap.report.seconds,
        "pre-pass done (the stack kept running)"
    );
    Ok(Some(snap))
}

/// How long [`forget`] waits for a lock held by another restic (another
/// node's or stack's backup into the same repository: `restic forget` needs
/// the repository to itself).
pub const FORGET_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Forgets the parts named (best effort: a part left behind is forgotten by
/// the next run, see [`forget_leftovers`]). While another restic holds the
/// repository, it tries again for up to [`FORGET_LOCK_WAIT`]. Prunes
/// nothing: retention does.
pub async fn forget(restic: &Restic, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let mut args = vec!["forget"];
    args.extend(ids.iter().map(String::as_str));
    let deadline = tokio::time::Instant::now() + FORGET_LOCK_WAIT;
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        match restic.run(&args).await {
            Ok(_) => {
                tracing::info!(parts = ids.len(), "run parts forgotten");
                return;
            }
            Err(e) if is_locked(&e) && tokio::time::Instant::now() + pause < deadline => {
                tracing::info!(
                    retry_in_s = pause.as_secs(),
                    "the repository is locked by another restic; forgetting the run's parts later"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not forget the run's parts; the next run will");
                return;
            }
        }
    }
}

/// True when restic refused because another process holds a lock: exit
/// code 11 from restic 0.17, the message before.
fn is_locked(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("exit code 11") || text.contains("already locked")
}

/// How long the window and dumps parts of a run whose merge failed are
/// kept: long enough to look at them (`restic snapshots --tag
/// stackshot-part`) or merge them by hand; the runs since have backed up
/// the same data.
pub const FAILED_PARTS_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Forgets what runs left behind, for this project on this host
/// (`BACKUP_HOST`): another stack of the same project name that backs up
/// into the same repository as another host may be using its pre-pass right
/// now. Pre-passes that runs which died left (parents, never a backup) go at
/// once, and so do the parts of a run whose merged snapshot exists (its
/// forget was refused, say, while another host's backup held the
/// repository). The window and dumps parts of a run whose merge failed are
/// kept on purpose (nothing lost), but not forever: older than
/// [`FAILED_PARTS_MAX_AGE`], they are forgotten too, so their data goes
/// with retention's next prune. Returns a note for the run's report when
/// any were.
pub async fn forget_leftovers(
    restic: &Restic,
    project: &str,
    host: &str,
) -> Result<Option<String>> {
    let project_tag = format!("project={project}");
    let of_project = of_host(restic.snapshots(&[&project_tag]).await?, host);
    let (parts, backups): (Vec<SnapshotInfo>, Vec<SnapshotInfo>) = of_project
        .into_iter()
        .partition(|s| s.tags.iter().any(|t| t == PART_TAG));
    let merged: std::collections::BTreeSet<&str> = backups.iter().filter_map(run_of).collect();
    let (now, aged) = leftovers(parts, &merged, chrono::Utc::now());
    if !now.is_empty() {
        tracing::warn!(
            parts = now.len(),
            "forgetting the pre-passes and merged parts earlier runs left"
        );
        forget(restic, &now).await;
    }
    if aged.is_empty() {
        return Ok(None);
    }
    let runs: std::collections::BTreeSet<&str> = aged.iter().filter_map(run_of).collect();
    let note = format!(
        "forgot {} part snapshot(s) kept by run(s) {} whose merge failed over {} days ago",
        aged.len(),
        runs.into_iter().collect::<Vec<_>>().join(", "),
        FAILED_PARTS_MAX_AGE.num_days()
    );
    tracing::warn!("{note}");
    forget(restic, &aged.into_iter().map(|s| s.id).collect::<Vec<_>>()).await;
    Ok(Some(note))
}

/// The run id a snapshot's `run=` tag names.
fn run_of(s: &SnapshotInfo) -> Option<&str> {
    s.tags.iter().find_map(|t| t.strip_prefix("run="))
}

/// Of this host's part snapshots: those to forget at once (every pre-pass,
/// and every part of a run in `merged`), and the other parts older than
/// [`FAILED_PARTS_MAX_AGE`] at `now`. A part whose time cannot be read is
/// kept. Pure.
fn leftovers(
    parts: Vec<SnapshotInfo>,
    merged: &std::collections::BTreeSet<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<String>, Vec<SnapshotInfo>) {
    let mut at_once = Vec::new();
    let mut aged = Vec::new();
    for s in parts {
        let prepass = catalog::tag_values(&s, "part")
            .into_iter()
            .any(|p| RunPart::from_tag(p) == Some(RunPart::Prepass));
        if prepass || run_of(&s).is_some_and(|r| merged.contains(r)) {
            at_once.push(s.id);
            continue;
        }
        let old = chrono::DateTime::parse_from_rfc3339(&s.time)
            .is_ok_and(|t| now.signed_duration_since(t) > FAILED_PARTS_MAX_AGE);
        if old {
            aged.push(s);
        }
    }
    (at_once, aged)
}

/// The snapshots written as `host`.
fn of_host(snapshots: Vec<SnapshotInfo>, host: &str) -> Vec<SnapshotInfo> {
    snapshots
        .into_iter()
        .filter(|s| s.hostname == host)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another stack of the same project name, backing up as another host
    /// into the same repository, keeps its pre-pass.
    #[test]
    fn leftovers_are_this_hosts_only() {
        let snaps: Vec<SnapshotInfo> = serde_json::from_str(
            r#"[{"id":"a1","time":"2026-01-01T00:00:00Z","hostname":"shop"},
                {"id":"b2","time":"2026-01-01T00:00:00Z","hostname":"shop-staging"}]"#,
        )
        .unwrap();
        let left = of_host(snaps, "shop");
        assert_eq!(
            left.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["a1"]
        );
    }

    /// Pre-passes go at once; the window and dumps parts of a failed merge
    /// only once over a week old; a part whose time is unreadable stays.
    #[test]
    fn failed_merge_parts_age_out_after_a_week() {
        let snaps: Vec<SnapshotInfo> = serde_json::from_str(
            r#"[{"id":"pre","time":"2026-03-09T00:00:00Z","tags":["stackshot-part","part=prepass","run=r3"]},
                {"id":"old-files","time":"2026-03-01T00:00:00Z","tags":["stackshot-part","part=files","run=r1"]},
                {"id":"old-dumps","time":"2026-03-01T00:00:01Z","tags":["stackshot-part","part=dumps","run=r1"]},
                {"id":"new-files","time":"2026-03-08T00:00:00Z","tags":["stackshot-part","part=files","run=r2"]},
                {"id":"odd","time":"yesterday","tags":["stackshot-part","part=files","run=r0"]}]"#,
        )
        .unwrap();
        let now = "2026-03-10T00:00:00Z".parse().unwrap();
        let (prepasses, aged) = leftovers(snaps, &Default::default(), now);
        assert_eq!(prepasses, ["pre"]);
        assert_eq!(
            aged.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["old-files", "old-dumps"]
        );
    }

    /// The parts of a run whose merged snapshot exists go at once, whatever
    /// their age: only the parts of a failed merge wait a week.
    #[test]
    fn parts_of_a_merged_run_go_at_once() {
        let snaps: Vec<SnapshotInfo> = serde_json::from_str(
            r#"[{"id":"merged-files","time":"2026-03-09T00:00:00Z","tags":["stackshot-part","part=files","run=r5"]},
                {"id":"merged-dumps","time":"2026-03-09T00:00:01Z","tags":["stackshot-part","part=dumps","run=r5"]},
                {"id":"failed-files","time":"2026-03-09T00:00:00Z","tags":["stackshot-part","part=files","run=r6"]}]"#,
        )
        .unwrap();
        let now = "2026-03-10T00:00:00Z".parse().unwrap();
        let merged = std::collections::BTreeSet::from(["r5"]);
        let (at_once, aged) = leftovers(snaps, &merged, now);
        assert_eq!(at_once, ["merged-files", "merged-dumps"]);
        assert!(aged.is_empty());
    }

    #[test]
    fn a_lock_refusal_is_recognised_in_both_restic_forms() {
        let old = anyhow::anyhow!(
            "restic forget failed for repository /r (exit code 1): unable to create lock in backend: repository is already locked by PID 7 on node2"
        );
        let new = anyhow::anyhow!(
            "restic forget failed for repository /r (exit code 11: the repository is locked; if no other restic runs, `restic unlock` removes stale locks): unable to create lock"
        );
        let other = anyhow::anyhow!(
            "restic forget failed for repository /r (exit code 1): no such snapshot"
        );
        assert!(is_locked(&old) && is_locked(&new) && !is_locked(&other));
    }
}
