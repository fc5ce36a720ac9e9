//! Who holds the repository: its exclusive lock, read before anything stops.
//!
//! `restic prune`, `check` and `forget` take an exclusive lock. A backup
//! started against it fails ("repository is already locked exclusively"),
//! and in the full window that failure would come with the stack already
//! down. The preflight therefore looks for an exclusive lock first and
//! refuses with one line naming its holder. Non-exclusive locks (another
//! backup, a restore) do not block a backup and are not reported.
//!
//! Locks are never removed here: stale ones (a dead process on this host, or
//! older than 30 minutes) are restic's own `unlock` to judge, and live ones
//! belong to whoever holds them.

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::Restic;

/// One lock file, as `restic cat lock <id>` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Lock {
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Whether it is exclusive.
    #[serde(default)]
    pub exclusive: bool,
    /// The host of the process holding it.
    #[serde(default)]
    pub hostname: String,
    /// The user name of the process holding it.
    #[serde(default)]
    pub username: String,
    /// The process id of the process holding it, on its host.
    #[serde(default)]
    pub pid: u64,
}

impl Lock {
    /// One lock file's JSON.
    pub fn parse(json: &str) -> Result<Lock> {
        serde_json::from_str(json).context("not a restic lock (JSON with a time)")
    }

    /// "PID 123 on host vm (user root), taken 2026-12-02 05:22:37 UTC, 3m ago".
    pub fn holder(&self, now: jiff::Timestamp) -> String {
        let when = match self.time.parse::<jiff::Timestamp>() {
            Ok(t) => {
                let ago = now.as_second().saturating_sub(t.as_second()).max(0);
                format!(
                    ", taken {} UTC, {} ago",
                    t.strftime("%Y-%m-%d %H:%M:%S"),
                    humantime::format_duration(std::time::Duration::from_secs(ago as u64))
                )
            }
            Err(_) => String::new(),
        };
        format!(
            "PID {} on host {} (user {}){when}",
            self.pid,
            if self.hostname.is_empty() {
                "?"
            } else {
                &self.hostname
            },
            if self.username.is_empty() {
                "?"
            } else {
                &self.username
            },
        )
    }
}

/// True for a lock file's name: an id of 64 hex digits (a local backend's
/// half-written `…-tmp-…` file is not one).
pub fn is_lock_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Restic {
    /// The first exclusive lock in the repository, if any. A lock that
    /// vanishes while it is read was released, and is skipped.
    pub async fn exclusive_lock(&self) -> Result<Option<Lock>> {
        for id in self.lock_ids().await? {
            match self.read_lock(&id).await {
                Some(lock) if lock.exclusive => return Ok(Some(lock)),
                _ => {}
            }
        }
        Ok(None)
    }

    /// The ids of the repository's lock files. A local repository's
    /// `locks/` directory is read directly (no restic run when it is empty,
    /// the usual case); any other is listed with restic.
    pub async fn lock_ids(&self) -> Result<Vec<String>> {
        Ok(
            match super::rustic::local_path(self.settings.repository.expose()) {
                Some(dir) => match std::fs::read_dir(std::path::Path::new(dir).join("locks")) {
                    Ok(entries) => entries
                        .filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .filter(|n| is_lock_id(n))
                        .collect(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot list the locks of repository {}", self.repository())
                        });
                    }
                },
                None => self
                    .run(&["--no-lock", "list", "locks"])
                    .await?
                    .lines()
                    .map(str::trim)
                    .filter(|n| is_lock_id(n))
                    .map(str::to_string)
                    .collect(),
            },
        )
    }

    /// One lock, or `None` when it is gone (released meanwhile) or unreadable.
    pub async fn read_lock(&self, id: &str) -> Option<Lock> {
        let json = self.run(&["--no-lock", "cat", "lock", id]).await.ok()?;
        match Lock::parse(&json) {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::debug!(lock = %&id[..8.min(id.len())], error = %e, "unreadable lock skipped");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_recorded_exclusive_lock_and_names_its_holder() {
        let lock = Lock::parse(include_str!(
            "../../tests/fixtures/restic/cat-lock-exclusive-0.14.json"
        ))
        .unwrap();
        assert!(lock.exclusive);
        let now: jiff::Timestamp = "2026-12-02T05:25:40Z".parse().unwrap();
        assert_eq!(
            lock.holder(now),
            "PID 29018 on host vm (user root), taken 2026-12-02 05:22:37 UTC, 3m 3s ago"
        );
        let shared = Lock::parse(r#"{"time":"x","hostname":"h","pid":7}"#).unwrap();
        assert!(!shared.exclusive);
        assert_eq!(shared.holder(now), "PID 7 on host h (user ?)");
        assert!(
            Lock::parse("not json")
                .unwrap_err()
                .to_string()
                .contains("not a restic lock")
        );
    }

    #[test]
    fn reads_a_lock_recorded_from_018() {
        // Taken by `restic prune` (stopped with SIGSTOP while it held it).
        let lock = Lock::parse(include_str!(
            "../../tests/fixtures/restic/cat-lock-exclusive-0.18.json"
        ))
        .unwrap();
        assert!(lock.exclusive);
        let now: jiff::Timestamp = "2026-12-06T20:23:35Z".parse().unwrap();
        assert_eq!(
            lock.holder(now),
            "PID 32634 on host vm (user root), taken 2026-12-06 20:22:35 UTC, 1m ago"
        );
    }

    #[test]
    fn lock_ids_are_64_hex_digits() {
        assert!(is_lock_id(
            "666bc15c00daeedbda0f9dcc1fd74c4ed1fbdd76a7eebda111e705efb13a375a"
        ));
        assert!(!is_lock_id(
            "79e0dbd63832c0b10b60cfdfbbd7831f6233316b92ab94ce1f75a88546f0925a-tmp-143490018"
        ));
        assert!(!is_lock_id("config"));
    }
}
