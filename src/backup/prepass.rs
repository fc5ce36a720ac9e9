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
use crate::container::ContainerInfo;
use crate::engine::Engine;
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
        mode: "pre-pass",
        with_volumes: true,
        paths: &[VOLUMES_DIR],
        tags: Some(target.part_tags("prepass")),
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

/// Forgets the parts named (best effort: a part left behind is forgotten by
/// the next run). Prunes nothing: retention does.
pub async fn forget(restic: &Restic, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let mut args = vec!["forget"];
    args.extend(ids.iter().map(String::as_str));
    match restic.run(&args).await {
        Ok(_) => tracing::info!(parts = ids.len(), "run parts forgotten"),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not forget the run's parts; the next run will")
        }
    }
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
/// once. The window and dumps parts of a run whose merge failed are kept on
/// purpose (nothing lost), but not forever: older than
/// [`FAILED_PARTS_MAX_AGE`], they are forgotten too, so their data goes
/// with retention's next prune. Returns a note for the run's report when
/// any were.
pub async fn forget_leftovers(
    restic: &Restic,
    project: &str,
    host: &str,
) -> Result<Option<String>> {
    let project_tag = format!("project={project}");
    let tagged = restic.snapshots(&[PART_TAG, &project_tag]).await?;
    let (prepasses, aged) = leftovers(of_host(tagged, host), chrono::Utc::now());
    if !prepasses.is_empty() {
        tracing::warn!(
            parts = prepasses.len(),
            "forgetting pre-passes left by an interrupted run"
        );
        forget(restic, &prepasses).await;
    }
    if aged.is_empty() {
        return Ok(None);
    }
    let runs: std::collections::BTreeSet<&str> = aged
        .iter()
        .filter_map(|s| s.tags.iter().find_map(|t| t.strip_prefix("run=")))
        .collect();
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

/// Of this host's part snapshots: the pre-passes (every one), and the other
/// parts older than [`FAILED_PARTS_MAX_AGE`] at `now`. A part whose time
/// cannot be read is kept. Pure.
fn leftovers(
    parts: Vec<SnapshotInfo>,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<String>, Vec<SnapshotInfo>) {
    let mut prepasses = Vec::new();
    let mut aged = Vec::new();
    for s in parts {
        if s.tags.iter().any(|t| t == "part=prepass") {
            prepasses.push(s.id);
            continue;
        }
        let old = chrono::DateTime::parse_from_rfc3339(&s.time)
            .is_ok_and(|t| now.signed_duration_since(t) > FAILED_PARTS_MAX_AGE);
        if old {
            aged.push(s);
        }
    }
    (prepasses, aged)
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
        let (prepasses, aged) = leftovers(snaps, now);
        assert_eq!(prepasses, ["pre"]);
        assert_eq!(
            aged.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["old-files", "old-dumps"]
        );
    }
}
