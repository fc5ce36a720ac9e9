//! The runs in the repository: this project's snapshots grouped by their `run=`
//! tag (a split run has several), newest first. Pure, apart from the listing.

use std::fmt::Write;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::layout::{DATABASES_DIR, SnapshotMode, VOLUMES_DIR};
use crate::restic::{Restic, SnapshotInfo};

/// One backup run as the repository knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The run id (`run=` tag); `None` for snapshots made before runs were tagged.
    pub run_id: Option<String>,
    /// Time of its first snapshot.
    pub time: String,
    /// The host its snapshots are recorded under (restic's `--host`), from its first snapshot.
    pub host: String,
    /// `atomic` (one snapshot for volumes and dumps) or `split`, from its first
    /// snapshot's `mode=` tag.
    pub mode: String,
    /// The compose services its snapshots hold, from their `service=` tags, sorted.
    pub services: Vec<String>,
    /// Bytes processed, when restic recorded it (0.17+).
    pub size: Option<u64>,
    /// The run's snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// The values of `key=` tags of a snapshot.
pub fn tag_values<'a>(s: &'a SnapshotInfo, key: &str) -> Vec<&'a str> {
    s.tags
        .iter()
        .filter_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .collect()
}

/// The mode of a snapshot, from its first `mode=` tag: atomic when it has
/// none (snapshots made before modes were tagged), `None` for a value no run
/// writes.
pub fn snapshot_mode(s: &SnapshotInfo) -> Option<SnapshotMode> {
    match tag_values(s, "mode").first() {
        None => Some(SnapshotMode::Atomic),
        Some(value) => SnapshotMode::from_tag(value),
    }
}

/// Groups snapshots into runs, newest first.
pub fn group_runs(mut snaps: Vec<SnapshotInfo>) -> Vec<Run> {
    snaps.sort_by(|a, b| a.time.cmp(&b.time));
    let mut runs: Vec<Run> = Vec::new();
    for s in snaps {
        let id = tag_values(&s, "run").first().map(|r| r.to_string());
        let existing = id
            .as_ref()
            .and_then(|id| runs.iter_mut().find(|r| r.run_id.as_deref() == Some(id)));
        let run = match existing {
            Some(r) => r,
            None => {
                runs.push(Run {
                    run_id: id,
                    time: s.time.clone(),
                    host: s.hostname.clone(),
                    mode: if snapshot_mode(&s) == Some(SnapshotMode::Atomic) {
                        SnapshotMode::Atomic.as_str().into()
                    } else {
                        "split".into()
                    },
                    services: vec![],
                    size: Some(0),
                    snapshots: vec![],
                });
                runs.last_mut().expect("just pushed")
            }
        };
        for svc in tag_values(&s, "service") {
            if !run.services.iter().any(|x| x == svc) {
                run.services.push(svc.to_string());
            }
        }
        run.size = match (
            run.size,
            s.summary.as_ref().map(|x| x.total_bytes_processed),
        ) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        run.snapshots.push(s);
    }
    for r in &mut runs {
        r.services.sort();
    }
    runs.reverse();
    runs
}

/// Finds a run by `latest`, a run id, or the id (or prefix) of one of its snapshots.
pub fn resolve<'a>(runs: &'a [Run], selector: &str) -> Result<&'a Run> {
    if runs.is_empty() {
        bail!(
            "the repository holds no stackshot snapshots of this project yet; run `stackshot backup` first"
        );
    }
    if selector == "latest" {
        return Ok(&runs[0]);
    }
    let found: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            r.run_id.as_deref() == Some(selector) || r.snapshots.iter().any(|s| s.matches(selector))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no run or snapshot {selector:?} in the repository; `stackshot snapshots` lists them"
        ),
        _ => bail!("{selector:?} matches several runs; give more characters of the id"),
    }
}

impl Run {
    /// The snapshot holding `/volumes` (atomic or volumes mode).
    pub fn volumes_snapshot(&self) -> Option<&SnapshotInfo> {
        self.snapshots.iter().find(|s| {
            matches!(
                snapshot_mode(s),
                Some(SnapshotMode::Atomic | SnapshotMode::Volumes)
            ) && s.paths.iter().any(|p| p == VOLUMES_DIR)
        })
    }

    /// The snapshot holding `service`'s dumps.
    pub fn database_snapshot(&self, service: &str) -> Option<&SnapshotInfo> {
        self.snapshots.iter().find(|s| {
            let has_service = tag_values(s, "service").contains(&service);
            match snapshot_mode(s) {
                Some(SnapshotMode::Database) => has_service,
                Some(SnapshotMode::Atomic) => {
                    has_service && s.paths.iter().any(|p| p == DATABASES_DIR)
                }
                _ => false,
            }
        })
    }
}

/// This project's runs, newest first.
pub async fn list(restic: &Restic, project: &str) -> Result<Vec<Run>> {
    let project_tag = format!("project={project}");
    Ok(group_runs(
        restic.snapshots(&["stackshot", &project_tag]).await?,
    ))
}

/// The runs a restore here chooses from: this project's, and in swarm mode
/// only this node's (restic host `host`: each node backs up its own volumes).
pub async fn list_here(
    restic: &Restic,
    found: &crate::discovery::Discovery,
    host: &str,
) -> Result<Vec<Run>> {
    let mut runs = list(restic, &found.project).await?;
    if found.swarm.is_some() {
        runs.retain(|r| r.host == host);
    }
    Ok(runs)
}

/// The runs as a table.
pub fn render(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<24} {:<16} {:<7} {:>10}  {:<30} SERVICES",
        "TIME", "RUN", "HOST", "MODE", "SIZE", "SNAPSHOTS"
    );
    for r in runs {
        let ids: Vec<&str> = r.snapshots.iter().map(|s| s.short_id.as_str()).collect();
        let size = r
            .size
            .map(|b| format!("{:.1} MB", b as f64 / 1e6))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:<16} {:<7} {:>10}  {:<30} {}",
            r.time.get(..19).unwrap_or(&r.time).replace('T', " "),
            r.run_id.as_deref().unwrap_or("-"),
            r.host,
            r.mode,
            size,
            ids.join(","),
            r.services.join(",")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, time: &str, tags: &[&str], paths: &[&str]) -> SnapshotInfo {
        let json = serde_json::json!([{
            "id": format!("{id}{}", "0".repeat(56)),
            "short_id": id,
            "time": time,
            "hostname": "shop",
            "tags": tags,
            "paths": paths,
        }]);
        crate::restic::parse_snapshots(&json.to_string())
            .unwrap()
            .remove(0)
    }

    fn fixture() -> Vec<SnapshotInfo> {
        vec![
            snap(
                "aaaaaaaa",
                "2026-01-01T02:00:00Z",
                &[
                    "stackshot",
                    "mode=atomic",
                    "run=r1",
                    "service=app",
                    "service=pg",
                ],
                &["/databases", "/volumes"],
            ),
            snap(
                "bbbbbbbb",
                "2026-01-02T02:00:00Z",
                &["stackshot", "mode=database", "run=r2", "service=pg"],
                &["/databases/pg/postgres-all.sql"],
            ),
            snap(
                "cccccccc",
                "2026-01-02T02:00:05Z",
                &["stackshot", "mode=volumes", "run=r2", "service=app"],
                &["/volumes"],
            ),
        ]
    }

    #[test]
    fn groups_split_runs_newest_first() {
        let runs = group_runs(fixture());
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].run_id.as_deref(), Some("r2"));
        assert_eq!(runs[0].mode, "split");
        assert_eq!(runs[0].services, ["app", "pg"]);
        assert_eq!(runs[0].volumes_snapshot().unwrap().short_id, "cccccccc");
        assert_eq!(
            runs[0].database_snapshot("pg").unwrap().short_id,
            "bbbbbbbb"
        );
        assert_eq!(runs[1].mode, "atomic");
        assert_eq!(
            runs[1].database_snapshot("pg").unwrap().short_id,
            "aaaaaaaa"
        );
    }

    #[test]
    fn resolves_latest_run_ids_and_snapshot_prefixes() {
        let runs = group_runs(fixture());
        assert_eq!(
            resolve(&runs, "latest").unwrap().run_id.as_deref(),
            Some("r2")
        );
        assert_eq!(resolve(&runs, "r1").unwrap().run_id.as_deref(), Some("r1"));
        assert_eq!(
            resolve(&runs, "cccc").unwrap().run_id.as_deref(),
            Some("r2")
        );
        assert!(
            resolve(&runs, "zzzz")
                .unwrap_err()
                .to_string()
                .contains("stackshot snapshots")
        );
        assert!(
            resolve(&[], "latest")
                .unwrap_err()
                .to_string()
                .contains("no stackshot snapshots")
        );
    }

    #[test]
    fn table_lists_each_run() {
        let text = render(&group_runs(fixture()));
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("bbbbbbbb,cccccccc"), "{text}");
    }
}
