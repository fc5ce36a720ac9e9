//! The last success after a restart: the daemon keeps its runs in memory
//! only, so at start-up it reads the latest stackshot snapshot of its project
//! and host back from the repository (in the background, within
//! `PREFLIGHT_TIMEOUT`) and takes that snapshot's time as the last success.
//! Without it, `/healthz` would say `starting` for up to `HEALTH_MAX_AGE`
//! and `StackshotNoRecentBackup` could not fire.
//!
//! The snapshot's time is when its `restic backup` started: a little before
//! the run ended, so the judgement errs towards stale, never towards fresh.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};

use crate::restic::{Restic, SnapshotInfo, parse_snapshots};

/// The snapshot that stands for the last success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The snapshot's time, taken as the time of the last success.
    pub time: DateTime<Utc>,
    /// Its short id, for the log.
    pub short_id: String,
}

/// The newest snapshot tagged `stackshot` of `host` among `snaps` (parts of
/// a run, tagged `stackshot-part`, do not count); one with an unreadable time
/// is left out. Pure.
pub fn latest(snaps: &[SnapshotInfo], host: &str) -> Option<Found> {
    snaps
        .iter()
        .filter(|s| s.hostname == host && s.tags.iter().any(|t| t == "stackshot"))
        .filter_map(|s| {
            let time = DateTime::parse_from_rfc3339(&s.time).ok()?;
            Some(Found {
                time: time.with_timezone(&Utc),
                short_id: s.short_id.clone(),
            })
        })
        .max_by_key(|f| f.time)
}

/// Lists this project's snapshots of `host` (`restic snapshots`, without a
/// lock, so a running prune does not get in the way) and returns the newest,
/// within `limit`. `Ok(None)`: the repository holds none yet.
pub async fn read(
    restic: &Restic,
    host: &str,
    project: &str,
    limit: Duration,
) -> Result<Option<Found>> {
    let list = async {
        restic.reachable().await?;
        let tags = format!("stackshot,project={project}");
        let args = [
            "--no-lock",
            "snapshots",
            "--json",
            "--host",
            host,
            "--tag",
            &tags,
        ];
        let out = restic.run(&args).await?;
        parse_snapshots(&out).with_context(|| {
            format!(
                "cannot read `restic snapshots --json` output for repository {}",
                restic.repository()
            )
        })
    };
    let snaps = tokio::time::timeout(limit, list).await.map_err(|_| {
        anyhow!(
            "`restic snapshots` did not finish within {} s (PREFLIGHT_TIMEOUT) and was stopped",
            limit.as_secs()
        )
    })??;
    Ok(latest(&snaps, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, time: &str, host: &str, tags: &[&str]) -> SnapshotInfo {
        serde_json::from_value(serde_json::json!({
            "id": format!("{id}{}", "0".repeat(56)),
            "short_id": id,
            "time": time,
            "hostname": host,
            "tags": tags,
            "paths": ["/volumes"],
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_stackshot_snapshot_of_the_host() {
        let snaps = vec![
            snap(
                "aaaaaaaa",
                "2024-06-01T00:00:05.25+02:00",
                "shop",
                &["stackshot", "project=shop"],
            ),
            snap(
                "bbbbbbbb",
                "2024-06-02T00:00:05.5+02:00",
                "shop",
                &["stackshot", "project=shop"],
            ),
            // Newer, but a part of a run, another host, or unreadable.
            snap(
                "cccccccc",
                "2024-06-03T00:00:00Z",
                "shop",
                &["stackshot-part", "project=shop"],
            ),
            snap(
                "dddddddd",
                "2024-06-03T00:00:00Z",
                "other",
                &["stackshot", "project=shop"],
            ),
            snap(
                "eeeeeeee",
                "yesterday",
                "shop",
                &["stackshot", "project=shop"],
            ),
        ];
        let found = latest(&snaps, "shop").unwrap();
        assert_eq!(found.short_id, "bbbbbbbb");
        assert_eq!(found.time.to_rfc3339(), "2024-06-01T22:00:05.500+00:00");
    }

    #[test]
    fn none_when_nothing_matches() {
        assert_eq!(latest(&[], "shop"), None);
        let snaps = vec![snap(
            "aaaaaaaa",
            "2024-06-01T00:00:00Z",
            "other",
            &["stackshot"],
        )];
        assert_eq!(latest(&snaps, "shop"), None);
    }

    #[test]
    fn nanoseconds_as_restic_writes_them() {
        let snaps = vec![snap(
            "aaaaaaaa",
            "2026-12-06T10:53:56.123456789Z",
            "shop",
            &["stackshot"],
        )];
        let found = latest(&snaps, "shop").unwrap();
        assert_eq!(found.time.timestamp_nanos_opt(), Some(1796554436123456789));
    }
}
