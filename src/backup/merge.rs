//! Merge: the stop window's file snapshot (`/volumes`, the moment of the stop)
//! and the pinned dumps' snapshot (`/databases`, the same moment) become one
//! snapshot that plain restic reads.
//!
//! restic has no merge; rustic_core does (`Repository::merge_snapshots`): it
//! writes only the new root tree and the snapshot file. It ignores restic's
//! locks, so before merging we look for an exclusive lock (a `prune` running
//! elsewhere could delete the new tree's pack) and refuse if there is one.
//! The merged snapshot's trees are loaded back before the parts are forgotten;
//! on any failure the parts stay, and the run says so.
//!
//! The repository is opened through the rustic backend its restic form maps
//! to ([`crate::restic::backend`]: local, REST, rclone, S3, Azure, GCS,
//! Swift with a token, SFTP); a form that does not map keeps the full window.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use rustic_core::repofile::SnapshotFile;
use rustic_core::{StringList, last_modified_node};

use crate::restic::Restic;
use crate::restic::backend::BackendSpec;
use crate::restic::rustic::{Indexed, open_indexed};

/// What the merged snapshot carries.
#[derive(Debug, Clone)]
pub struct MergeInto<'a> {
    /// restic `--host`.
    pub host: &'a str,
    /// Tags.
    pub tags: &'a [String],
    /// Its time: the moment the containers were stopped.
    pub time: DateTime<Utc>,
}

/// Fails when another process holds an exclusive lock on the repository
/// (`restic prune`, `check`, …): rustic would not see it.
pub async fn refuse_if_exclusively_locked(restic: &Restic, repo_dir: &Path) -> Result<()> {
    let locks = repo_dir.join("locks");
    let Ok(entries) = std::fs::read_dir(&locks) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().to_string();
        // A half-written lock (restic writes a temporary file, then renames it).
        if !crate::restic::locks::is_lock_id(&id) {
            continue;
        }
        // A lock that vanished meanwhile is no lock.
        let Ok(text) = restic.run(&["--no-lock", "cat", "lock", &id]).await else {
            continue;
        };
        let lock: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if lock["exclusive"] == true {
            bail!(
                "the repository is locked exclusively by {}@{} (pid {}, since {}): merging now could lose data; the parts are kept",
                lock["username"].as_str().unwrap_or("?"),
                lock["hostname"].as_str().unwrap_or("?"),
                lock["pid"],
                lock["time"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

fn open(backend: &BackendSpec, password: &str) -> Result<Indexed> {
    open_indexed(backend, password, "the merge")
}

/// Merges `parts` (snapshot ids) into one new snapshot and loads its trees
/// back. Blocking (rustic is synchronous): call it from `spawn_blocking`.
/// Returns the new snapshot's full id. Errors carry no secret of `backend`.
pub fn merge_blocking(
    backend: &BackendSpec,
    password: &str,
    parts: &[String],
    into: &MergeInto<'_>,
) -> Result<String> {
    merge(backend, password, parts, into)
        .map_err(|e| anyhow!("{}", backend.redact(&format!("{e:#}"))))
}

fn merge(
    backend: &BackendSpec,
    password: &str,
    parts: &[String],
    into: &MergeInto<'_>,
) -> Result<String> {
    let repo = open(backend, password)?;
    let snaps = repo
        .get_snapshots(parts)
        .map_err(|e| anyhow!("{e}"))
        .context("cannot read the snapshots to merge")?;
    if snaps.len() != parts.len() {
        bail!(
            "found {} of the {} snapshots to merge",
            snaps.len(),
            parts.len()
        );
    }
    let mut tags = StringList::default();
    for t in into.tags {
        tags.add(t.clone());
    }
    let mut paths = StringList::default();
    for p in snaps.iter().flat_map(|s| s.paths.iter()) {
        paths.add(p.clone());
    }
    let time = jiff::Timestamp::from_nanosecond(i128::from(
        into.time
            .timestamp_nanos_opt()
            .ok_or_else(|| anyhow!("the stop time is out of range"))?,
    ))
    .map_err(|e| anyhow!("{e}"))?
    .to_zoned(jiff::tz::TimeZone::UTC);
    // The trees are merged (only the new root and changed directories are
    // written); the snapshot file is ours, so that its time is the stop's
    // (`merge_snapshots` would take the latest part's).
    let trees: Vec<_> = snaps.iter().map(|s| s.tree).collect();
    let mut summary = rustic_core::repofile::SnapshotSummary::default();
    let tree = repo
        .merge_trees(&trees, &last_modified_node, &mut summary)
        .map_err(|e| anyhow!("{e}"))
        .context("the merge failed")?;
    let snap = SnapshotFile {
        hostname: into.host.to_string(),
        tags,
        paths,
        time: time.clone(),
        tree,
        ..Default::default()
    };
    repo.save_snapshots(vec![snap])
        .map_err(|e| anyhow!("{e}"))
        .context("cannot save the merged snapshot")?;
    // Load it back from the repository as it is now on disk (a fresh index),
    // every tree, before anything is forgotten.
    let repo = open(backend, password)?;
    let merged = repo
        .get_all_snapshots()
        .map_err(|e| anyhow!("{e}"))
        .context("cannot read the merged snapshot back")?
        .into_iter()
        .find(|s| s.tree == tree && s.time == time && s.hostname == into.host)
        .ok_or_else(|| anyhow!("the merged snapshot is not in the repository"))?;
    let id = merged.id.to_hex().as_str().to_string();
    let mut pending = vec![tree];
    let mut trees = 0usize;
    while let Some(t) = pending.pop() {
        let tree = repo
            .get_tree(&t)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("the merged snapshot {id} has an unreadable tree"))?;
        trees += 1;
        pending.extend(tree.nodes.iter().filter_map(|n| n.subtree));
    }
    tracing::debug!(snapshot = %id, trees, "merged snapshot read back");
    Ok(id)
}
