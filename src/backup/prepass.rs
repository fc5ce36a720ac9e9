//! Pre-pass: a `restic backup` of the plan's mounts while the stack still
//! runs. It is only a parent: the pass inside the window reads just what
//! changed since, and almost every blob is uploaded ahead of time.
//!
//! The pre-pass and the other parts of a run (the window's file snapshot, the
//! dumps' snapshot) carry the tag `stackshot-part`, never `stackshot`, so no
//! listing, retention or restore takes them for a backup. The run forgets them
//! when it ends; a pre-pass left by a run that died is forgotten by the next
//! one. The window and dumps parts of a run whose merge failed are kept.

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

/// Forgets pre-passes that runs which died left behind, for this project
/// on this host (`BACKUP_HOST`): another stack of the same project name that
/// backs up into the same repository as another host may be using its
/// pre-pass right now. Only pre-passes: they are parents, never a backup. A
/// run whose merge failed keeps its window and dumps parts on purpose
/// (nothing lost); they stay, tagged `stackshot-part` with their run, until
/// someone forgets them.
pub async fn forget_leftovers(restic: &Restic, project: &str, host: &str) -> Result<()> {
    let project_tag = format!("project={project}");
    let tagged = restic
        .snapshots(&[PART_TAG, &project_tag, "part=prepass"])
        .await?;
    let left = of_host(tagged, host);
    if !left.is_empty() {
        tracing::warn!(
            parts = left.len(),
            "forgetting pre-passes left by an interrupted run"
        );
        forget(restic, &left.into_iter().map(|s| s.id).collect::<Vec<_>>()).await;
    }
    Ok(())
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
}
