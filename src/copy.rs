//! The copy repository (`COPY_REPOSITORY`): the runs of the primary
//! repository copied there with `restic copy`, then the copy's own
//! retention (`COPY_KEEP_*`).
//!
//! Which snapshots go over is decided here, not by `restic copy`'s own
//! "not copied yet" test ([`to_copy`]): a snapshot the copy's retention
//! forgot would otherwise come back at every copy, as long as the primary
//! keeps it. A copy never changes a run's result; it is reported
//! ([`CopyReport`]) and counted on its own.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};

use crate::config::copy::CopyConfig;
use crate::layout::PART_TAG;
use crate::report::RetentionReport;
pub use crate::report::{CopyOutcome, CopyReport};
use crate::restic::{RepoOpened, Restic, SnapshotInfo};
use crate::retention;

/// The command line that creates a missing copy repository: with the
/// primary's chunker parameters, so that what both hold deduplicates.
const INIT: [&str; 2] = ["init", "--copy-chunker-params"];

/// The snapshots of `source` (this project's and host's in the primary
/// repository) to copy to a repository holding `copied`, oldest first:
/// those newer than the newest copy, and never one already there (its
/// `original`) nor a run's part (`stackshot-part`). An empty copy
/// receives every one. Pure.
pub fn to_copy<'a>(source: &'a [SnapshotInfo], copied: &[SnapshotInfo]) -> Vec<&'a SnapshotInfo> {
    let originals: HashSet<&str> = copied
        .iter()
        .filter_map(|s| s.original.as_deref())
        .collect();
    let newest = copied.iter().filter_map(|s| time(&s.time)).max();
    let mut out: Vec<&SnapshotInfo> = source
        .iter()
        .filter(|s| !originals.contains(s.id.as_str()))
        .filter(|s| !s.tags.iter().any(|t| t == PART_TAG))
        .filter(|s| match (newest, time(&s.time)) {
            (Some(newest), Some(t)) => t > newest,
            // A time that does not read: copied rather than lost.
            _ => true,
        })
        .collect();
    out.sort_by_key(|s| time(&s.time));
    out
}

fn time(rfc3339: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The tags every snapshot of `project` carries.
fn tags(project: &str) -> [String; 2] {
    ["stackshot".into(), format!("project={project}")]
}

/// This project's snapshots of `host` in `restic`'s repository.
async fn snapshots_of(restic: &Restic, host: &str, project: &str) -> Result<Vec<SnapshotInfo>> {
    let tags = tags(project);
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    Ok(restic
        .snapshots(&tags)
        .await?
        .into_iter()
        .filter(|s| s.hostname == host)
        .collect())
}

/// Copies `host`'s runs of `project` from `primary` to the copy repository
/// of `config`, then applies the copy's retention. Never fails: a failure
/// is the report's.
pub async fn copy(primary: &Restic, config: &CopyConfig, host: &str, project: &str) -> CopyReport {
    let started = Instant::now();
    let copy = primary.with_settings(&config.restic);
    let repository = copy.repository();
    tracing::info!(repository = %repository, "copy starting");
    match copy_runs(primary, &copy, host, project).await {
        Ok((copied, initialised)) => {
            let retention = if config.append_only {
                RetentionReport::append_only()
            } else {
                retention::forget(&copy, &config.retention, host, project, true)
                    .await
                    .unwrap_or_else(|e| RetentionReport::failed(format!("{e:#}")))
            };
            let report = CopyReport {
                outcome: CopyOutcome::Copied,
                repository,
                copied,
                initialised,
                retention: Some(retention),
                seconds: started.elapsed().as_secs_f64(),
                error: None,
            };
            tracing::info!(line = %report.line(), "copy done");
            report
        }
        Err(e) => {
            let report = CopyReport::failed(
                repository,
                format!("{e:#}"),
                started.elapsed().as_secs_f64(),
            );
            tracing::error!(line = %report.line(), "copy failed (the run's result stands)");
            report
        }
    }
}

/// Opens (or creates) the copy, copies what [`to_copy`] picks, and checks
/// that each is there now. The short ids copied, and whether the copy
/// repository was created.
async fn copy_runs(
    primary: &Restic,
    copy: &Restic,
    host: &str,
    project: &str,
) -> Result<(Vec<String>, bool)> {
    let opened = copy.open_or_init_with(&INIT).await?;
    let source = snapshots_of(primary, host, project)
        .await
        .context("cannot list the primary repository's snapshots")?;
    let before = snapshots_of(copy, host, project)
        .await
        .context("cannot list the copy repository's snapshots")?;
    let picked: Vec<&SnapshotInfo> = to_copy(&source, &before);
    if !picked.is_empty() {
        let mut args = vec!["copy"];
        args.extend(picked.iter().map(|s| s.id.as_str()));
        copy.run(&args).await?;
        let after = snapshots_of(copy, host, project)
            .await
            .context("cannot list the copy repository's snapshots after the copy")?;
        let there: HashSet<&str> = after.iter().filter_map(|s| s.original.as_deref()).collect();
        let missing: Vec<&str> = picked
            .iter()
            .filter(|s| !there.contains(s.id.as_str()))
            .map(|s| s.short_id.as_str())
            .collect();
        if !missing.is_empty() {
            bail!(
                "restic copy ended, but the copy repository does not hold snapshot(s) {}",
                missing.join(", ")
            );
        }
    }
    let copied = picked.iter().map(|s| s.short_id.clone()).collect();
    Ok((copied, opened == RepoOpened::Initialised))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, time: &str, original: Option<&str>, tags: &[&str]) -> SnapshotInfo {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "short_id": &id[..4],
            "time": time,
            "hostname": "h",
            "tags": tags,
            "paths": ["/volumes"],
            "original": original,
        }))
        .unwrap()
    }

    fn ids(s: &[&SnapshotInfo]) -> Vec<String> {
        s.iter().map(|s| s.id.clone()).collect()
    }

    #[test]
    fn an_empty_copy_receives_every_run_oldest_first() {
        let source = [
            snap("bbbb2", "2026-12-02T02:00:00Z", None, &["stackshot"]),
            snap("aaaa1", "2026-12-01T02:00:00Z", None, &["stackshot"]),
        ];
        assert_eq!(ids(&to_copy(&source, &[])), ["aaaa1", "bbbb2"]);
    }

    #[test]
    fn runs_newer_than_the_newest_copy_go_over_and_none_twice() {
        let source = [
            snap("aaaa1", "2026-12-01T02:00:00Z", None, &["stackshot"]),
            snap("bbbb2", "2026-12-02T02:00:00Z", None, &["stackshot"]),
            snap("cccc3", "2026-12-03T02:00:00Z", None, &["stackshot"]),
        ];
        let copied = [snap(
            "xxxx9",
            "2026-12-02T02:00:00Z",
            Some("bbbb2"),
            &["stackshot"],
        )];
        // aaaa1 is older than the newest copy: the copy's retention forgot
        // it (or it predates the copy); it does not come back.
        assert_eq!(ids(&to_copy(&source, &copied)), ["cccc3"]);
        // A run whose copy failed goes over with the next one.
        let copied = [snap(
            "xxxx9",
            "2026-12-01T02:00:00Z",
            Some("aaaa1"),
            &["stackshot"],
        )];
        assert_eq!(ids(&to_copy(&source, &copied)), ["bbbb2", "cccc3"]);
    }

    #[test]
    fn an_original_already_there_and_a_run_s_parts_stay_behind() {
        let source = [
            snap("aaaa1", "2026-12-03T02:00:00Z", None, &["stackshot"]),
            snap(
                "bbbb2",
                "2026-12-03T02:00:01Z",
                None,
                &["stackshot", PART_TAG],
            ),
        ];
        let copied = [snap(
            "xxxx9",
            "2026-12-01T00:00:00Z",
            Some("aaaa1"),
            &["stackshot"],
        )];
        assert!(to_copy(&source, &copied).is_empty());
    }
}
