//! Why the repository cannot be used: [`ResticError`], whose every variant
//! displays as one line that says what to do.

use thiserror::Error;

/// Why the repository cannot be used. `Display` is one line that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResticError {
    /// The restic binary cannot be started or does not say its version.
    #[error(
        "cannot run restic ({binary}): {detail}; install restic 0.14 or newer and put it on PATH"
    )]
    NotRunnable {
        /// The binary we tried.
        binary: String,
        /// Why it could not be started or gave no version, on one line.
        detail: String,
    },
    /// The repository exists but the password opens no key.
    #[error(
        "restic repository {repository}: wrong password or no key found; check RESTIC_PASSWORD / RESTIC_PASSWORD_FILE / RESTIC_PASSWORD_COMMAND"
    )]
    WrongPassword {
        /// The repository as `RESTIC_REPOSITORY` names it, its password masked.
        repository: String,
    },
    /// The repository cannot be reached or read (network, permissions, …).
    #[error(
        "restic repository {repository} cannot be opened: {detail}; check RESTIC_REPOSITORY, the storage's credentials and that it is reachable (and mounted, for a path)"
    )]
    Unreachable {
        /// The repository as `RESTIC_REPOSITORY` names it, its password masked.
        repository: String,
        /// The last lines of restic's stderr, on one line.
        detail: String,
    },
    /// The server of an `s3:`/`rest:` repository takes no connection
    /// ([`reach::probe`](super::reach::probe)).
    #[error(
        "restic repository {repository}: cannot connect to {endpoint}: {reason}; check that the storage server runs and that the sidecar reaches it (RESTIC_REPOSITORY's host and port, the compose network, DNS, a firewall)"
    )]
    NoConnection {
        /// The repository as `RESTIC_REPOSITORY` names it, its password masked.
        repository: String,
        /// The server's host and port, as `host:port`.
        endpoint: String,
        /// Why the connection failed.
        reason: String,
    },
    /// restic did not finish opening the repository in time: it retries a
    /// failing backend for up to 15 minutes.
    #[error(
        "restic repository {repository}: `restic {command}` did not finish within {seconds} s and was stopped (restic retries a failing backend for up to 15 minutes): {detail}; check that the storage server answers and the storage's credentials"
    )]
    TimedOut {
        /// The repository as `RESTIC_REPOSITORY` names it, its password masked.
        repository: String,
        /// The subcommand, e.g. `cat config`.
        command: String,
        /// The time limit in seconds the command exceeded (`PREFLIGHT_TIMEOUT`).
        seconds: u64,
        /// The last lines restic printed, on one line.
        detail: String,
    },
    /// There was no repository and `restic init` failed.
    #[error(
        "restic repository {repository} does not exist and `restic init` failed: {detail}; check RESTIC_REPOSITORY and that stackshot may write there"
    )]
    InitFailed {
        /// The repository as `RESTIC_REPOSITORY` names it, its password masked.
        repository: String,
        /// The last lines of restic's stderr, on one line.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line() {
        let e = ResticError::WrongPassword {
            repository: "/repository".into(),
        };
        assert_eq!(
            e.to_string(),
            "restic repository /repository: wrong password or no key found; check RESTIC_PASSWORD / RESTIC_PASSWORD_FILE / RESTIC_PASSWORD_COMMAND"
        );
        let e = ResticError::Unreachable {
            repository: "/r".into(),
            detail: "a | b".into(),
        };
        assert!(!e.to_string().contains('\n'));
    }
}
