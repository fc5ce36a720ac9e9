//! The `restic backup` command line ([`backup_args`], which refuses what
//! restic would misread) and what its exit code means
//! ([`classify_backup_exit`]).

use thiserror::Error;

/// How a `restic backup` ended, from its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupExit {
    /// 0: the snapshot holds everything.
    Success,
    /// 3: the snapshot was written, but some source files could not be read.
    Partial,
    /// Anything else: no snapshot can be relied on.
    Failed,
}

/// Classifies `restic backup`'s exit code. A process killed by a signal has no
/// code and counts as [`BackupExit::Failed`]; so do codes restic adds later.
pub fn classify_backup_exit(code: i32) -> BackupExit {
    match code {
        0 => BackupExit::Success,
        3 => BackupExit::Partial,
        _ => BackupExit::Failed,
    }
}

/// Why [`backup_args`] refuses its host or tags: restic would misread them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackupArgsError {
    /// restic splits `--tag` values at commas and has no escape for them.
    #[error(
        "restic tag {0:?} contains a comma, which restic would split into two tags; use a tag without commas"
    )]
    CommaInTag(String),
    /// An empty tag means nothing to restic.
    #[error("empty restic tag; every tag needs a value such as project=shop")]
    EmptyTag,
    /// An empty host would make restic use the machine's hostname.
    #[error("empty restic host; set BACKUP_HOST or name the compose project")]
    EmptyHost,
    /// restic would read a path starting with `-` as a flag.
    #[error("path {0:?} starts with '-', which restic would read as a flag; use an absolute path")]
    DashPath(String),
}

/// The arguments of `restic backup --json --host HOST --tag T … PATH…` (one
/// `--tag` per tag; tags such as `project=shop` are fine, commas are not).
///
/// `paths` may be empty when the caller appends `--stdin --stdin-filename F`;
/// no `--` ends the flags, so flags may be appended after the paths too.
pub fn backup_args(
    host: &str,
    tags: &[String],
    paths: &[&str],
) -> Result<Vec<String>, BackupArgsError> {
    if host.is_empty() {
        return Err(BackupArgsError::EmptyHost);
    }
    let mut args = vec![
        "backup".into(),
        "--json".into(),
        "--host".into(),
        host.into(),
    ];
    for tag in tags {
        check_tag(tag)?;
        args.extend(["--tag".to_string(), tag.clone()]);
    }
    for path in paths {
        if path.starts_with('-') {
            return Err(BackupArgsError::DashPath(path.to_string()));
        }
        args.push(path.to_string());
    }
    Ok(args)
}

/// Refuses a tag restic would misread: an empty one, or one with a comma.
pub(super) fn check_tag(tag: &str) -> Result<(), BackupArgsError> {
    match tag {
        "" => Err(BackupArgsError::EmptyTag),
        t if t.contains(',') => Err(BackupArgsError::CommaInTag(t.to_string())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_exit_codes() {
        assert_eq!(classify_backup_exit(0), BackupExit::Success);
        assert_eq!(classify_backup_exit(3), BackupExit::Partial);
        for code in [1, 2, 10, 11, 12, 130, -1] {
            assert_eq!(classify_backup_exit(code), BackupExit::Failed, "{code}");
        }
    }

    #[test]
    fn backup_argv() {
        let tags = [
            "stackshot".to_string(),
            "project=shop".to_string(),
            "mode=atomic".to_string(),
        ];
        let args = backup_args("shop", &tags, &["/volumes", "/databases"]).unwrap();
        assert_eq!(
            args.join(" "),
            "backup --json --host shop --tag stackshot --tag project=shop --tag mode=atomic /volumes /databases"
        );
        // No paths: the caller appends --stdin --stdin-filename.
        let args = backup_args("h", &[], &[]).unwrap();
        assert_eq!(args, ["backup", "--json", "--host", "h"]);
        let dash = backup_args("h", &[], &["/v", "-odd"]);
        assert_eq!(dash, Err(BackupArgsError::DashPath("-odd".into())));
        let comma = ["a,b".to_string()];
        let err = backup_args("h", &comma, &["/v"]).unwrap_err();
        assert_eq!(err, BackupArgsError::CommaInTag("a,b".into()));
        assert!(err.to_string().contains("\"a,b\""));
        assert_eq!(
            backup_args("h", &[String::new()], &["/v"]),
            Err(BackupArgsError::EmptyTag)
        );
        assert_eq!(
            backup_args("", &tags, &["/v"]),
            Err(BackupArgsError::EmptyHost)
        );
    }
}
