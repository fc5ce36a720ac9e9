//! Merge: the stop window's file snapshot (`/volumes`, the moment of the stop)
//! and the pinned dumps' snapshot (`/databases`, the same moment) become one
//! snapshot that plain restic reads.
//!
//! restic has no merge; rustic_core does (`Repository::merge_trees`): it
//! writes only the new root tree and the snapshot file. It takes no restic
//! lock: the run holds one meanwhile ([`crate::restic::hold`]), so that no
//! prune deletes the new tree's pack. The merged snapshot is read back from a
//! fresh index, every tree, and every blob it references is checked to be in
//! the index and in a pack that exists ([`verify_complete`]) before the parts
//! are forgotten; on any failure the parts stay, and the run says so.
//!
//! The repository is opened through the rustic backend its restic form maps
//! to ([`crate::restic::backend`]: local, REST, rclone, S3, Azure, GCS,
//! Swift with a token, SFTP); a form that does not map keeps the full window.

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use rustic_core::repofile::{PackId, SnapshotFile};
use rustic_core::{StringList, last_modified_node};

use crate::restic::backend::BackendSpec;
use crate::restic::rustic::{FullyIndexed, Indexed, open_fully_indexed, open_indexed};

/// What the merged snapshot carries.
#[derive(Debug, Clone)]
pub struct MergeInto<'a> {
    /// The host the merged snapshot is recorded under (restic's `--host`).
    pub host: &'a str,
    /// The tags the merged snapshot carries.
    pub tags: &'a [String],
    /// Its time: the moment the containers were stopped.
    pub time: DateTime<Utc>,
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
    let repo = open_fully_indexed(backend, password, "reading the merge back")?;
    let merged = repo
        .get_all_snapshots()
        .map_err(|e| anyhow!("{e}"))
        .context("cannot read the merged snapshot back")?
        .into_iter()
        .find(|s| s.tree == tree && s.time == time && s.hostname == into.host)
        .ok_or_else(|| anyhow!("the merged snapshot is not in the repository"))?;
    let id = merged.id.to_hex().as_str().to_string();
    let found = verify_complete(&repo, tree, &id)?;
    tracing::debug!(snapshot = %id, trees = found.trees, blobs = found.blobs, packs = found.packs, "merged snapshot read back, every blob in place");
    Ok(id)
}

/// What [`verify_complete`] walked: how many trees, blobs and packs it found in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complete {
    /// How many trees the walk read.
    pub trees: usize,
    /// Blobs (trees and file contents) found in the index.
    pub blobs: usize,
    /// Packs they are in, each found in the repository.
    pub packs: usize,
}

/// Reads every tree of the snapshot `id` (root `tree`) and checks that every
/// blob it references, file contents included, is in the index and that the
/// pack the index names exists: a snapshot is only reported when all its data
/// is there. `repo` must have been opened after the snapshot was written.
pub fn verify_complete(
    repo: &FullyIndexed,
    tree: rustic_core::TreeId,
    id: &str,
) -> Result<Complete> {
    use std::collections::HashSet;
    let mut packs: HashSet<PackId> = HashSet::new();
    let mut blobs = 0usize;
    let mut trees = 0usize;
    let mut pending = vec![tree];
    while let Some(t) = pending.pop() {
        let entry = repo
            .get_index_entry(&t)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("the merged snapshot {id} names a tree the index lacks"))?;
        packs.insert(entry.pack);
        let tree = repo
            .get_tree(&t)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("the merged snapshot {id} has an unreadable tree"))?;
        trees += 1;
        blobs += 1;
        for node in &tree.nodes {
            pending.extend(node.subtree);
            for data in node.content.iter().flatten() {
                let entry = repo
                    .get_index_entry(data)
                    .map_err(|e| anyhow!("{e}"))
                    .with_context(|| {
                        format!(
                            "the merged snapshot {id} names data of {} the index lacks",
                            node.name().to_string_lossy()
                        )
                    })?;
                packs.insert(entry.pack);
                blobs += 1;
            }
        }
    }
    let present: HashSet<PackId> = repo
        .list::<PackId>()
        .map_err(|e| anyhow!("{e}"))
        .context("cannot list the repository's packs")?
        .collect();
    let missing = packs.iter().filter(|p| !present.contains(p)).count();
    if missing > 0 {
        bail!(
            "{missing} of the {} pack(s) the merged snapshot {id} needs are gone from the repository (pruned meanwhile?)",
            packs.len()
        );
    }
    Ok(Complete {
        trees,
        blobs,
        packs: packs.len(),
    })
}
