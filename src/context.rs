//! What every part that runs against the stack needs (a backup, a restore,
//! a verify, a drill, the daemon): the configuration, the engine, restic and
//! the stop-window journal, and the plan options the configuration gives.

use crate::config::{Config, StopWindow};
use crate::discovery::Discovery;
use crate::engine::Engine;
use crate::plan::PlanOptions;
use crate::restic::Restic;
use crate::window::journal::Journal;

/// What a run needs.
pub struct Context {
    /// The configuration read from the environment.
    pub config: Config,
    /// The connection to the Docker (or Podman) engine.
    pub engine: Engine,
    /// restic, with the repository's settings.
    pub restic: Restic,
    /// The stop-window journal in the state directory, which also holds the run lock.
    pub journal: Journal,
    /// `backup --no-restart`: a final backup, in the full window, that leaves
    /// the stopped containers down and stops the databases after their dumps.
    pub leave_down: bool,
}

/// The plan options for what discovery found.
pub fn plan_options(config: &Config, found: &Discovery) -> PlanOptions {
    PlanOptions {
        host: config
            .backup_host
            .clone()
            .unwrap_or_else(|| found.default_host()),
        project: found.project.clone(),
        atomic: config.atomic,
        include_all_projects: config.include_all_projects,
        exclude_bind_mounts: config.exclude_bind_mounts,
        self_id: found.self_container.as_ref().map(|c| c.id.clone()),
        full_window: full_window_reason(config),
        append_only: config.append_only,
        copy: config.copy.as_ref().map(|c| c.shown()),
        freeze: config.freeze,
    }
}

/// Why a run must use the full stop window, or `None` when the short one works. Pure.
pub fn full_window_reason(config: &Config) -> Option<String> {
    if config.stop_window == StopWindow::Full {
        return Some("STOP_WINDOW=full".into());
    }
    if !config.atomic {
        return Some(
            "ATOMIC_BACKUP=false: each dump streams into its own snapshot inside the window".into(),
        );
    }
    if !config
        .restic
        .env
        .iter()
        .any(|(k, _)| k == "RESTIC_PASSWORD")
    {
        return Some(
            "the repository password comes from RESTIC_PASSWORD_COMMAND: the merge of the window's snapshots needs RESTIC_PASSWORD or RESTIC_PASSWORD_FILE".into(),
        );
    }
    // The merge and the armed file pass open the repository with rustic.
    crate::restic::backend::map_settings(&config.restic)
        .err()
        .map(|why| {
            format!("rustic cannot open the repository to merge the window's snapshots: {why}")
        })
}

#[cfg(test)]
mod tests {
    use super::full_window_reason;
    use crate::config::Config;
    use crate::env::Env;

    fn reason(pairs: &[(&str, &str)]) -> Option<String> {
        let mut all = vec![
            ("RESTIC_REPOSITORY", "/repository"),
            ("RESTIC_PASSWORD", "pw"),
        ];
        all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
        all.extend_from_slice(pairs);
        full_window_reason(&Config::from_env(&Env::from_pairs(all.iter().copied())).unwrap())
    }

    #[test]
    fn the_short_window_is_the_default_and_says_why_when_it_is_not() {
        assert_eq!(reason(&[]), None);
        assert_eq!(reason(&[("RESTIC_REPOSITORY", "local:/srv/r")]), None);
        assert_eq!(
            reason(&[("STOP_WINDOW", "full")]).as_deref(),
            Some("STOP_WINDOW=full")
        );
        assert!(
            reason(&[("ATOMIC_BACKUP", "false")])
                .unwrap()
                .starts_with("ATOMIC_BACKUP=false")
        );
        // Every form rustic opens with restic's credentials gets the short window.
        let aws = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cret-key"),
        ];
        assert_eq!(
            reason(&[&aws[..], &[("RESTIC_REPOSITORY", "s3:https://h/b")]].concat()),
            None
        );
        assert_eq!(
            reason(&[("RESTIC_REPOSITORY", "rest:http://rest:8000/")]),
            None
        );
        assert_eq!(reason(&[("RESTIC_REPOSITORY", "sftp:u@h:/srv/r")]), None);
        // One that does not says why.
        let why = reason(&[("RESTIC_REPOSITORY", "s3:https://h/b")]).unwrap();
        assert!(
            why.starts_with("rustic cannot open the repository to merge the window's snapshots: s3 without both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{why}"
        );
        let why = reason(&[("RESTIC_REPOSITORY", "b2:bucket:path")]).unwrap();
        assert!(why.contains("b2:bucket:path"), "{why}");
    }
}
