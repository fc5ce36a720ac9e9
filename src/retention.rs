//! Retention and repository maintenance: `restic forget` with the `KEEP_*`
//! policy (grouped by host and paths, limited to this project's snapshots),
//! `prune` and `check`.

use anyhow::{Context as _, Result};

use crate::config::Retention;
pub use crate::report::{APPEND_ONLY_LINE, RetentionOutcome, RetentionReport};
use crate::restic::Restic;
use crate::restic::json::parse_forget;

/// The `restic forget` arguments for `policy`, or `None` when the policy keeps
/// everything (every rule off). Pure.
pub fn forget_args(
    policy: &Retention,
    host: &str,
    project: &str,
    prune: bool,
) -> Option<Vec<String>> {
    let mut args: Vec<String> = ["forget", "--host", host, "--tag"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // One --tag with a comma: snapshots carrying both tags.
    args.push(format!("stackshot,project={project}"));
    // Grouped by paths, not tags: every snapshot carries its own `run=` tag, so
    // grouping by tags would put each in a group of its own and keep them all.
    // Paths keep atomic, volumes-only and each database's snapshots apart.
    args.extend(["--group-by".to_string(), "host,paths".to_string()]);
    let rules = policy.rules();
    if rules.is_empty() {
        return None;
    }
    for (flag, value) in rules {
        args.extend([flag.to_string(), value]);
    }
    if prune {
        args.push("--prune".into());
    }
    Some(args)
}

/// Applies the policy with `restic forget --json` and, when `prune` and
/// something was removed, `restic prune` (as `forget --prune` would).
pub async fn forget(
    restic: &Restic,
    policy: &Retention,
    host: &str,
    project: &str,
    prune: bool,
) -> Result<RetentionReport> {
    let Some(mut args) = forget_args(policy, host, project, false) else {
        tracing::info!("retention: every KEEP_* rule is off; keeping all snapshots");
        return Ok(RetentionReport {
            outcome: RetentionOutcome::Off,
            kept: 0,
            removed: vec![],
            pruned: false,
            error: None,
        });
    };
    args.insert(1, "--json".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = restic.run(&argv).await?;
    let groups = parse_forget(&out).context("cannot read restic forget's JSON output")?;
    let kept = groups.iter().map(|g| g.keep.len()).sum();
    let removed: Vec<String> = groups
        .iter()
        .flat_map(|g| g.remove.iter().map(|s| s.short_id.clone()))
        .collect();
    let pruned = prune && !removed.is_empty();
    if pruned {
        restic.run(&["prune"]).await?;
    }
    let report = RetentionReport {
        outcome: RetentionOutcome::Applied,
        kept,
        removed,
        pruned,
        error: None,
    };
    tracing::info!(
        kept,
        removed = report.removed.len(),
        pruned,
        "{}",
        report.line()
    );
    Ok(report)
}

/// Runs `restic prune`, which removes the data no snapshot uses any more.
pub async fn prune(restic: &Restic) -> Result<()> {
    restic.run(&["prune"]).await?;
    tracing::info!("repository pruned");
    Ok(())
}

/// Runs `restic check`, which checks the repository's structure; an error fails it.
pub async fn check(restic: &Restic) -> Result<()> {
    restic.run(&["check"]).await?;
    tracing::info!("repository check passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy() {
        let p = Retention {
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
            yearly: Some(3),
            ..Default::default()
        };
        assert_eq!(
            forget_args(&p, "shop", "shop", true).unwrap().join(" "),
            "forget --host shop --tag stackshot,project=shop --group-by host,paths --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 3 --prune"
        );
    }

    #[test]
    fn last_and_within_without_prune() {
        let p = Retention {
            last: Some(2),
            within: Some("1y6m".into()),
            ..Default::default()
        };
        let a = forget_args(&p, "h", "p", false).unwrap();
        assert!(
            a.ends_with(&[
                "--keep-last".into(),
                "2".into(),
                "--keep-within".into(),
                "1y6m".into()
            ]),
            "{a:?}"
        );
    }

    #[test]
    fn retention_lines() {
        let mut r = RetentionReport {
            outcome: RetentionOutcome::Applied,
            kept: 3,
            removed: vec!["2aab1f0b".into()],
            pruned: true,
            error: None,
        };
        assert_eq!(r.line(), "retention: kept 3, removed 1 (2aab1f0b), pruned");
        r.removed.clear();
        r.pruned = false;
        assert_eq!(r.line(), "retention: kept 3, removed none");
        assert_eq!(
            RetentionReport::failed("restic forget failed: locked".into()).line(),
            "retention: FAILED: restic forget failed: locked"
        );
    }

    #[test]
    fn no_rules_keeps_everything() {
        assert_eq!(forget_args(&Retention::default(), "h", "p", true), None);
    }
}
