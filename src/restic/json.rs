//! restic's machine-readable output, parsed tolerantly.
//!
//! Every field restic may leave out (Go's `omitempty`, or a field that a given
//! restic version does not have yet) has a default, unknown fields are ignored,
//! and a line that is not one of the messages we know gives `None` instead of an
//! error. The differences between restic versions handled here:
//!
//! - `backup --json` summary: 0.14 prints an 8-character `snapshot_id`, 0.15+
//!   the full 64-character id; 0.14 has no `data_added_packed` (0.17+), and no
//!   `backup_start`/`backup_end` (0.18+); 0.17+ leaves `snapshot_id` out when no
//!   snapshot was written.
//! - `backup --json` errors (printed on stderr): up to 0.17.0 the `error` field
//!   is Go's error value marshalled as it is (often `{}`, or
//!   `{"Op":"open","Path":…,"Err":13}`); 0.17.1+ prints `{"message": "…"}`.
//! - 0.18+ prints a fatal error as an `exit_error` message on stderr.
//! - restic up to 0.15.x prints the end of the scan with `-vv` as a `status`
//!   message carrying an `action` field; that is not progress and is skipped.
//! - `snapshots --json`: 0.17+ adds a `summary` object; `short_id` is deprecated
//!   and computed when missing; `--group-by` output is flattened.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A restic version, as printed by `restic version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Version {
    /// Major version (0 for every restic release so far).
    pub major: u32,
    /// The minor version, such as 17 in 0.17.1.
    pub minor: u32,
    /// The patch level, such as 1 in 0.17.1 (0 when the version has none).
    pub patch: u32,
}

impl Version {
    /// A version from its three numbers.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Reads the version from `restic version` output such as
/// `restic 0.14.0 compiled with go1.19.8 on linux/amd64` or
/// `restic 0.16.4-dev (compiled manually) compiled with …`.
pub fn parse_version(text: &str) -> Option<Version> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "restic")?;
    let word = words.next()?.trim_start_matches('v');
    let numbers = word.split(['-', '+']).next()?;
    let mut parts = numbers.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() {
        return None;
    }
    Some(Version::new(major, minor, patch))
}

/// One message of `restic backup --json` (stdout, or stderr for errors).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackupEvent {
    /// A progress report of the running backup (`message_type` `status`).
    Status(Progress),
    /// A file or directory that could not be read (`error`, on stderr).
    Error(BackupError),
    /// The end of a backup that wrote a snapshot (`summary`).
    Summary(BackupSummary),
    /// restic 0.18+: the fatal error restic exits with (`exit_error`, on stderr).
    ExitError(ExitError),
}

/// Progress of a running backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// Fraction of bytes done, 0.0 to 1.0.
    pub percent_done: f64,
    /// Files found so far by the scanner.
    pub total_files: u64,
    /// Files backed up so far.
    pub files_done: u64,
    /// Bytes found so far by the scanner.
    pub total_bytes: u64,
    /// Bytes backed up so far.
    pub bytes_done: u64,
    /// Seconds since the backup started.
    pub seconds_elapsed: u64,
    /// restic's estimate of the seconds left.
    pub seconds_remaining: u64,
    /// Files being read right now.
    #[serde(deserialize_with = "null_as_default")]
    pub current_files: Vec<String>,
    /// How many files or directories could not be read so far.
    pub error_count: u64,
}

/// A source file or directory restic could not read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupError {
    /// What went wrong; `None` when restic 0.14–0.17.0 printed an empty `{}`.
    pub message: Option<String>,
    /// What restic was doing: `scan` or `archival`.
    pub during: String,
    /// Usually the path of the file.
    pub item: String,
}

/// The summary of a backup that wrote a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupSummary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files that changed since the parent snapshot.
    pub files_changed: u64,
    /// Files unchanged since the parent snapshot.
    pub files_unmodified: u64,
    /// Directories not in the parent snapshot.
    pub dirs_new: u64,
    /// Directories that changed since the parent snapshot.
    pub dirs_changed: u64,
    /// Directories unchanged since the parent snapshot.
    pub dirs_unmodified: u64,
    /// How many data blobs (chunks of file content) the backup added to the repository.
    pub data_blobs: u64,
    /// How many tree blobs (directory listings) the backup added to the repository.
    pub tree_blobs: u64,
    /// Bytes added, before compression.
    pub data_added: u64,
    /// Bytes added, after compression (restic 0.17+).
    pub data_added_packed: Option<u64>,
    /// How many files the backup looked at, changed or not.
    pub total_files_processed: u64,
    /// How many bytes the backup looked at, changed or not.
    pub total_bytes_processed: u64,
    /// Seconds the backup took.
    pub total_duration: f64,
    /// When the backup started, RFC 3339 (restic 0.18+).
    pub backup_start: Option<String>,
    /// When the backup ended, RFC 3339 (restic 0.18+). With
    /// `--skip-if-unchanged` and nothing written, 0.18.0 prints Go's zero time
    /// `0001-01-01T00:00:00Z` here and a negative `total_duration`.
    pub backup_end: Option<String>,
    /// The new snapshot: 8 characters with restic 0.14, the full id with 0.15+;
    /// `None` when no snapshot was written (dry run, 0.17+ `--skip-if-unchanged`).
    #[serde(deserialize_with = "non_empty")]
    pub snapshot_id: Option<String>,
    /// Whether the backup ran with `--dry-run` and so wrote nothing.
    pub dry_run: bool,
}

impl BackupSummary {
    /// The progress at the end of the backup this summary closes: everything
    /// looked at is done. restic prints status lines only from the scan's
    /// start on, at most 60 a second, so a backup of a few small files can
    /// end before the first; this line stands in for it. Pure.
    pub fn final_progress(&self) -> Progress {
        Progress {
            percent_done: 1.0,
            total_files: self.total_files_processed,
            files_done: self.total_files_processed,
            total_bytes: self.total_bytes_processed,
            bytes_done: self.total_bytes_processed,
            seconds_elapsed: self.total_duration.max(0.0) as u64,
            ..Progress::default()
        }
    }
}

/// restic 0.18+'s last word on a failed command (`exit_error`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExitError {
    /// The exit code restic ends with.
    pub code: i32,
    /// The message, such as `Fatal: wrong password or no key found`.
    pub message: String,
}

/// Parses one line of `restic backup --json` output (stdout or stderr).
///
/// Non-JSON lines, message types we do not use (`verbose_status`,
/// `excluded_item`, …) and lines that do not fit give `None`.
pub fn parse_backup_line(line: &str) -> Option<BackupEvent> {
    let value: Value = serde_json::from_str(line.trim()).ok()?;
    match value.get("message_type")?.as_str()? {
        "status" if value.get("action").is_none() => {
            Progress::deserialize(value).ok().map(BackupEvent::Status)
        }
        "summary" => BackupSummary::deserialize(value)
            .ok()
            .map(BackupEvent::Summary),
        "exit_error" => ExitError::deserialize(value)
            .ok()
            .map(BackupEvent::ExitError),
        "error" => {
            let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
            Some(BackupEvent::Error(BackupError {
                message: value.get("error").and_then(error_message),
                during: text("during").to_string(),
                item: text("item").to_string(),
            }))
        }
        _ => None,
    }
}

/// The message of a backup error in any restic version's shape.
fn error_message(error: &Value) -> Option<String> {
    if let Some(s) = error.as_str() {
        return Some(s.to_string()).filter(|s| !s.is_empty());
    }
    if let Some(s) = error.get("message").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    // restic ≤ 0.17.0 marshals Go's *os.PathError as {"Op","Path","Err": errno}.
    let op = error.get("Op")?.as_str()?;
    let path = error.get("Path")?.as_str()?;
    let reason = match error.get("Err").and_then(Value::as_i64) {
        Some(errno) => std::io::Error::from_raw_os_error(i32::try_from(errno).ok()?).to_string(),
        None => "failed".to_string(),
    };
    Some(format!("{op} {path}: {reason}"))
}

/// One snapshot from `restic snapshots --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The full snapshot id (64 hex characters).
    pub id: String,
    /// The first 8 characters of the id.
    #[serde(default)]
    pub short_id: String,
    /// When the backup started, RFC 3339.
    pub time: String,
    /// The host the snapshot was recorded under (restic's `--host`).
    #[serde(default)]
    pub hostname: String,
    /// The snapshot's tags (restic's `--tag`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// The paths the snapshot backed up.
    #[serde(default, deserialize_with = "null_as_default")]
    pub paths: Vec<String>,
    /// The snapshot this one was compared with.
    #[serde(default, deserialize_with = "non_empty")]
    pub parent: Option<String>,
    /// The id of the snapshot this one is a copy of (`restic copy`), in the
    /// repository it came from.
    #[serde(default, deserialize_with = "non_empty")]
    pub original: Option<String>,
    /// The backup's statistics (snapshots written by restic 0.17+).
    #[serde(default)]
    pub summary: Option<SnapshotSummary>,
}

impl SnapshotInfo {
    /// Whether `id` names this snapshot: the full id or a prefix of it, such as
    /// the 8-character `snapshot_id` restic 0.14 prints after a backup.
    pub fn matches(&self, id: &str) -> bool {
        !id.is_empty() && self.id.starts_with(id)
    }
}

/// Statistics restic 0.17+ stores in each snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSummary {
    /// When the backup started, RFC 3339.
    pub backup_start: Option<String>,
    /// When the backup ended, RFC 3339.
    pub backup_end: Option<String>,
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files that changed since the parent snapshot.
    pub files_changed: u64,
    /// Files unchanged since the parent snapshot.
    pub files_unmodified: u64,
    /// Directories not in the parent snapshot.
    pub dirs_new: u64,
    /// Directories that changed since the parent snapshot.
    pub dirs_changed: u64,
    /// Directories unchanged since the parent snapshot.
    pub dirs_unmodified: u64,
    /// How many data blobs (chunks of file content) the backup added to the repository.
    pub data_blobs: u64,
    /// How many tree blobs (directory listings) the backup added to the repository.
    pub tree_blobs: u64,
    /// Bytes added, before compression.
    pub data_added: u64,
    /// Bytes added, after compression.
    pub data_added_packed: u64,
    /// How many files the backup looked at, changed or not.
    pub total_files_processed: u64,
    /// How many bytes the backup looked at, changed or not.
    pub total_bytes_processed: u64,
}

/// The repository's id from `restic cat config` (`{"version":2,"id":"…",…}`);
/// `None` when the output is not such a config or its id is empty.
pub fn parse_config_id(json: &str) -> Option<String> {
    let config: Value = serde_json::from_str(json.trim()).ok()?;
    let id = config.get("id")?.as_str()?.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Parses `restic snapshots --json` (also its `--group-by` form, flattened).
pub fn parse_snapshots(json: &str) -> Result<Vec<SnapshotInfo>, serde_json::Error> {
    let entries: Vec<Value> = serde_json::from_str(json.trim())?;
    let mut snapshots = Vec::new();
    for entry in entries {
        match entry.get("snapshots") {
            Some(group) if entry.get("id").is_none() => {
                snapshots.extend(Vec::<SnapshotInfo>::deserialize(group.clone())?);
            }
            _ => snapshots.push(SnapshotInfo::deserialize(entry)?),
        }
    }
    for s in &mut snapshots {
        if s.short_id.is_empty() {
            s.short_id = s.id.chars().take(8).collect();
        }
    }
    Ok(snapshots)
}

/// One group of `restic forget --json`: what the policy keeps and removes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ForgetGroup {
    /// The group's snapshots the policy keeps.
    #[serde(default, deserialize_with = "null_as_default")]
    pub keep: Vec<SnapshotInfo>,
    /// The group's snapshots the policy removes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub remove: Vec<SnapshotInfo>,
}

/// Parses `restic forget --json` (an array of groups; empty output when no
/// snapshot matched). Lines that are not JSON (restic may print some) are skipped.
pub fn parse_forget(out: &str) -> Result<Vec<ForgetGroup>, serde_json::Error> {
    let mut groups = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| l.starts_with('[')) {
        groups.extend(serde_json::from_str::<Vec<ForgetGroup>>(line)?);
    }
    Ok(groups)
}

/// `null` (Go's nil slice) reads as the default.
fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An empty string (Go's zero value) reads as `None`.
fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_progress_is_the_summary_all_done() {
        let s = BackupSummary {
            files_new: 2,
            total_files_processed: 2,
            total_bytes_processed: 30_452,
            total_duration: 0.012,
            ..Default::default()
        };
        let p = s.final_progress();
        assert_eq!(p.percent_done, 1.0);
        assert_eq!((p.files_done, p.total_files), (2, 2));
        assert_eq!((p.bytes_done, p.total_bytes), (30_452, 30_452));
        assert_eq!((p.seconds_elapsed, p.seconds_remaining), (0, 0));
        // restic 0.18.0 prints a negative duration for a skipped backup.
        let skipped = BackupSummary {
            total_duration: -63_000_000_000.0,
            ..Default::default()
        };
        assert_eq!(skipped.final_progress().seconds_elapsed, 0);
    }

    #[test]
    fn the_repository_id_from_cat_config() {
        // As restic 0.14 prints it (`restic cat config`).
        let out = r#"{
  "version": 2,
  "id": "5d8c6b5a2f0e4e4c9b1f3a7e2d6c8b0a1f2e3d4c5b6a7980a1b2c3d4e5f60718",
  "chunker_polynomial": "3b0ad0fbf3e5a5"
}
"#;
        assert_eq!(
            parse_config_id(out).as_deref(),
            Some("5d8c6b5a2f0e4e4c9b1f3a7e2d6c8b0a1f2e3d4c5b6a7980a1b2c3d4e5f60718")
        );
        assert_eq!(parse_config_id(r#"{"version":2,"id":""}"#), None);
        assert_eq!(parse_config_id(r#"{"version":2}"#), None);
        assert_eq!(parse_config_id("unable to open config file"), None);
    }

    #[test]
    fn forget_groups_from_014() {
        let groups = parse_forget(include_str!(
            "../../tests/fixtures/restic/forget-keep-last-0.14.json"
        ))
        .unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].keep.len(), 1);
        let removed: Vec<&str> = groups[0]
            .remove
            .iter()
            .map(|s| s.short_id.as_str())
            .collect();
        assert_eq!(removed, ["2aab1f0b", "d6814fc3"]);
        assert_eq!(parse_forget("").unwrap(), vec![]);
        assert!(parse_forget("[{\"keep\": 3}]").is_err());
    }

    /// Recorded from restic 0.14.0 (Debian bookworm), see tests/fixtures/restic/README.md.
    const V014: &str = include_str!("../../tests/fixtures/restic/version-0.14.txt");
    const BACKUP_NEW_014: &str =
        include_str!("../../tests/fixtures/restic/backup-new-0.14.stdout.jsonl");
    const BACKUP_VERBOSE_014: &str =
        include_str!("../../tests/fixtures/restic/backup-verbose-0.14.stdout.jsonl");
    const UNREADABLE_OUT_014: &str =
        include_str!("../../tests/fixtures/restic/backup-unreadable-0.14.stdout.jsonl");
    const UNREADABLE_ERR_014: &str =
        include_str!("../../tests/fixtures/restic/backup-unreadable-0.14.stderr");
    const SNAPSHOTS_014: &str = include_str!("../../tests/fixtures/restic/snapshots-0.14.json");
    const SNAPSHOTS_GROUPED_014: &str =
        include_str!("../../tests/fixtures/restic/snapshots-grouped-0.14.json");

    /// Recorded from restic 0.18.0 (Debian trixie), see tests/fixtures/restic/README.md.
    const V018: &str = include_str!("../../tests/fixtures/restic/version-0.18.txt");
    const BACKUP_NEW_018: &str =
        include_str!("../../tests/fixtures/restic/backup-new-0.18.stdout.jsonl");
    const BACKUP_VERBOSE_018: &str =
        include_str!("../../tests/fixtures/restic/backup-verbose-0.18.stdout.jsonl");
    const BACKUP_SKIPPED_018: &str =
        include_str!("../../tests/fixtures/restic/backup-skip-if-unchanged-0.18.stdout.jsonl");
    const UNREADABLE_OUT_018: &str =
        include_str!("../../tests/fixtures/restic/backup-unreadable-0.18.stdout.jsonl");
    const UNREADABLE_ERR_018: &str =
        include_str!("../../tests/fixtures/restic/backup-unreadable-0.18.stderr");
    const WRONG_PASSWORD_018: &str =
        include_str!("../../tests/fixtures/restic/backup-wrong-password-0.18.stderr");
    const MISSING_018: &str =
        include_str!("../../tests/fixtures/restic/backup-missing-0.18.stderr");
    const SNAPSHOTS_018: &str = include_str!("../../tests/fixtures/restic/snapshots-0.18.json");
    const SNAPSHOTS_GROUPED_018: &str =
        include_str!("../../tests/fixtures/restic/snapshots-grouped-0.18.json");

    fn events(text: &str) -> Vec<BackupEvent> {
        text.lines().filter_map(parse_backup_line).collect()
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(V014), Some(Version::new(0, 14, 0)));
        assert_eq!(parse_version(V018), Some(Version::new(0, 18, 0)));
        let v = parse_version("restic 0.17.3 compiled with go1.23.3 on linux/amd64").unwrap();
        assert_eq!(v, Version::new(0, 17, 3));
        let dev = "restic 0.16.4-dev (compiled manually) compiled with go1.22.1 on linux/amd64";
        assert_eq!(parse_version(dev), Some(Version::new(0, 16, 4)));
        assert!(Version::new(0, 14, 0) < Version::new(0, 17, 0));
        assert!(Version::new(0, 17, 1) > Version::new(0, 17, 0));
        assert_eq!(Version::new(0, 18, 1).to_string(), "0.18.1");
        assert_eq!(parse_version("rustic 0.9.0"), None);
        assert_eq!(parse_version("restic version unknown"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn backup_014_recorded() {
        let ev = events(BACKUP_NEW_014);
        assert_eq!(ev.len(), 2);
        let BackupEvent::Status(p) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!((p.total_files, p.total_bytes, p.files_done), (1, 6, 0));
        assert!(p.current_files.is_empty());
        let BackupEvent::Summary(s) = &ev[1] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (s.files_new, s.dirs_new, s.total_files_processed),
            (3, 3, 3)
        );
        assert_eq!((s.data_added, s.total_bytes_processed), (102120, 100012));
        assert_eq!(s.snapshot_id.as_deref(), Some("3311ad5f"));
        assert_eq!((s.data_added_packed, s.backup_start.as_ref()), (None, None));
        assert!(s.total_duration > 0.2 && !s.dry_run);
    }

    #[test]
    fn verbose_lines_are_skipped() {
        // 0.14 prints the scan's end as "status" with an "action"; 0.16+ as verbose_status.
        let ev = events(BACKUP_VERBOSE_014);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(&ev[0], BackupEvent::Status(p) if p.total_bytes == 11));
        assert!(matches!(&ev[1], BackupEvent::Summary(s) if s.files_changed == 1));
        // 0.18 prints the scan's end as verbose_status (and, this quick, no progress).
        let scan_finished = BACKUP_VERBOSE_018.lines().next().unwrap();
        assert!(scan_finished.contains(r#""action":"scan_finished""#));
        assert_eq!(parse_backup_line(scan_finished), None);
        let ev = events(BACKUP_VERBOSE_018);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let BackupEvent::Summary(s) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (s.files_changed, s.files_unmodified, s.dirs_changed),
            (1, 2, 1)
        );
        assert_eq!((s.data_added, s.data_added_packed), (1056, Some(772)));
    }

    #[test]
    fn unreadable_files_014() {
        let out = events(UNREADABLE_OUT_014);
        assert!(matches!(&out[0], BackupEvent::Status(p) if p.error_count == 1));
        assert!(matches!(&out[1], BackupEvent::Summary(s) if s.snapshot_id.is_some()));
        // stderr mixes JSON errors with restic's plain-text warning.
        let err = events(UNREADABLE_ERR_014);
        assert_eq!(err.len(), 3, "{err:?}");
        let BackupEvent::Error(e) = &err[0] else {
            panic!("{err:?}")
        };
        assert_eq!(
            (e.message.as_deref(), e.during.as_str()),
            (None, "archival")
        );
        assert_eq!(e.item, "data/locked");
        let BackupEvent::Error(e) = &err[2] else {
            panic!("{err:?}")
        };
        let expected = format!(
            "open data/secret.txt: {}",
            std::io::Error::from_raw_os_error(13)
        );
        assert_eq!(e.message.as_deref(), Some(expected.as_str()));
        assert_eq!(e.item, "/tmp/stackshot-rec/u/data/secret.txt");
    }

    #[test]
    fn backup_018_recorded() {
        let ev = events(BACKUP_NEW_018);
        assert_eq!(ev.len(), 4, "{ev:?}");
        let BackupEvent::Status(p) = &ev[2] else {
            panic!("{ev:?}")
        };
        assert_eq!((p.total_files, p.files_done), (3, 3));
        assert_eq!((p.total_bytes, p.bytes_done), (100012, 100012));
        assert_eq!(p.percent_done, 1.0);
        let BackupEvent::Summary(s) = &ev[3] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (s.files_new, s.dirs_new, s.total_files_processed),
            (3, 2, 3)
        );
        assert_eq!((s.data_blobs, s.tree_blobs), (3, 3));
        assert_eq!((s.data_added, s.data_added_packed), (101755, Some(101293)));
        assert_eq!(s.total_bytes_processed, 100012);
        assert_eq!(
            s.snapshot_id.as_deref(),
            Some("1f9322e3e0c90c3cf143f2354df7a36a354ab9e208a3f8aae88eb9644d84d3c8")
        );
        assert_eq!(
            s.backup_start.as_deref(),
            Some("2026-12-06T20:11:37.634133925Z")
        );
        assert_eq!(
            s.backup_end.as_deref(),
            Some("2026-12-06T20:11:38.29239012Z")
        );
        assert!(s.total_duration > 0.6 && !s.dry_run);
        // A field a later restic adds is ignored.
        let summary = BACKUP_NEW_018.lines().last().unwrap();
        let future = summary.replacen('{', r#"{"future_field":{"x":1},"#, 1);
        assert_eq!(parse_backup_line(&future), Some(ev[3].clone()));
    }

    #[test]
    fn skip_if_unchanged_018() {
        // No snapshot written: no snapshot_id, and restic leaves the end at
        // Go's zero time (the duration is then negative); both are passed on.
        let ev = events(BACKUP_SKIPPED_018);
        let [BackupEvent::Summary(s)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(s.snapshot_id, None);
        assert_eq!(
            (s.files_unmodified, s.dirs_unmodified, s.data_added),
            (3, 2, 0)
        );
        assert_eq!(
            (s.total_bytes_processed, s.data_added_packed),
            (100017, Some(0))
        );
        assert_eq!(s.backup_end.as_deref(), Some("0001-01-01T00:00:00Z"));
        assert!(s.total_duration < 0.0);
    }

    #[test]
    fn unreadable_files_018() {
        let out = events(UNREADABLE_OUT_018);
        assert!(
            matches!(&out[0], BackupEvent::Status(p) if p.error_count == 2 && p.files_done == 1)
        );
        assert!(matches!(&out[1], BackupEvent::Summary(s)
            if s.files_new == 1 && s.snapshot_id.as_ref().is_some_and(|id| id.starts_with("68936315"))));
        // 0.17.1+ errors carry error.message; 0.18 ends with exit_error code 3.
        let err = events(UNREADABLE_ERR_018);
        assert_eq!(err.len(), 4, "{err:?}");
        let BackupEvent::Error(e) = &err[0] else {
            panic!("{err:?}")
        };
        assert_eq!(
            e.message.as_deref(),
            Some("openfile for readdirnames failed: open data/locked: permission denied")
        );
        assert_eq!(
            (e.during.as_str(), e.item.as_str()),
            ("archival", "data/locked")
        );
        let BackupEvent::Error(e) = &err[1] else {
            panic!("{err:?}")
        };
        assert_eq!(
            (e.during.as_str(), e.item.as_str()),
            ("scan", "/tmp/stackshot-rec/u/data/locked")
        );
        let BackupEvent::Error(e) = &err[2] else {
            panic!("{err:?}")
        };
        assert_eq!(
            e.message.as_deref(),
            Some("/tmp/stackshot-rec/u/data/secret.txt: open data/secret.txt: permission denied")
        );
        let BackupEvent::ExitError(x) = &err[3] else {
            panic!("{err:?}")
        };
        assert_eq!(
            (x.code, x.message.as_str()),
            (3, "Warning: at least one source file could not be read")
        );
    }

    #[test]
    fn exit_errors_018() {
        let Some(BackupEvent::ExitError(x)) = parse_backup_line(WRONG_PASSWORD_018) else {
            panic!()
        };
        assert_eq!(
            (x.code, x.message.as_str()),
            (12, "Fatal: wrong password or no key found")
        );
        let Some(BackupEvent::ExitError(x)) = parse_backup_line(MISSING_018) else {
            panic!()
        };
        assert_eq!(x.code, 10);
        assert!(
            x.message.starts_with("Fatal: repository does not exist: unable to open config file: stat /tmp/stackshot-rec/repo-missing/config: no such file or directory\n"),
            "{}",
            x.message
        );
    }

    #[test]
    fn other_error_shapes() {
        let string_error = r#"{"message_type":"error","error":"boom","item":"/x"}"#;
        assert!(matches!(parse_backup_line(string_error),
            Some(BackupEvent::Error(e)) if e.message.as_deref() == Some("boom") && e.during.is_empty()));
        let status = r#"{"message_type":"status","seconds_elapsed":3,"seconds_remaining":7,"percent_done":0.3,"total_files":10,"files_done":3,"total_bytes":1000,"bytes_done":300,"current_files":["/a","/b"]}"#;
        let Some(BackupEvent::Status(p)) = parse_backup_line(status) else {
            panic!()
        };
        assert_eq!(p.current_files, ["/a", "/b"]);
        assert_eq!(
            (p.seconds_elapsed, p.seconds_remaining, p.bytes_done),
            (3, 7, 300)
        );
    }

    #[test]
    fn junk_gives_none() {
        for line in [
            "",
            "Warning: at least one source file could not be read",
            "/x does not exist, skipping",
            "{}",
            "[1,2]",
            r#"{"message_type":"excluded_item","item":"/x"}"#,
            r#"{"message_type":"summary","files_new":"many"}"#,
            r#"{"message_type":7}"#,
        ] {
            assert_eq!(parse_backup_line(line), None, "{line}");
        }
    }

    #[test]
    fn snapshots_014_recorded() {
        let s = parse_snapshots(SNAPSHOTS_014).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].short_id, "3311ad5f");
        assert!(s[0].matches("3311ad5f") && s[0].matches(&s[0].id) && !s[0].matches(""));
        assert_eq!(s[0].hostname, "shop");
        assert_eq!(s[0].tags, ["stackshot", "project=shop", "mode=atomic"]);
        assert_eq!(s[0].paths, ["/tmp/stackshot-rec/data"]);
        assert_eq!(s[0].parent, None);
        assert_eq!(s[1].parent.as_deref(), Some(s[0].id.as_str()));
        assert_eq!(s[1].time, "2026-11-22T03:20:30.29294529Z");
        assert!(s.iter().all(|s| s.summary.is_none()));
        assert_eq!(parse_snapshots(SNAPSHOTS_GROUPED_014).unwrap(), s);
        assert_eq!(parse_snapshots("[]\n").unwrap(), []);
        assert!(parse_snapshots("Fatal: wrong password").is_err());
    }

    #[test]
    fn snapshots_018_recorded() {
        let s = parse_snapshots(SNAPSHOTS_018).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].short_id, "1f9322e3");
        assert!(s[0].matches("1f9322e3"));
        assert_eq!(s[0].hostname, "shop");
        assert_eq!(s[0].tags, ["stackshot", "project=shop", "mode=atomic"]);
        assert_eq!(s[0].paths, ["/tmp/stackshot-rec/data"]);
        assert_eq!(s[1].parent.as_deref(), Some(s[0].id.as_str()));
        assert_eq!(s[1].time, "2026-12-06T20:11:38.331804255Z");
        let summary = s[0].summary.as_ref().unwrap();
        assert_eq!((summary.files_new, summary.dirs_new), (3, 2));
        assert_eq!(
            (summary.data_added, summary.data_added_packed),
            (101755, 101293)
        );
        assert_eq!(
            summary.backup_end.as_deref(),
            Some("2026-12-06T20:11:38.29239012Z")
        );
        let summary = s[1].summary.as_ref().unwrap();
        assert_eq!((summary.files_changed, summary.files_unmodified), (1, 2));
        assert_eq!(parse_snapshots(SNAPSHOTS_GROUPED_018).unwrap(), s);
        // short_id is deprecated: computed when a later restic leaves it out.
        let no_tags = r#"[{"time":"t","tags":null,"id":"abcdef0123456789"}]"#;
        let s = parse_snapshots(no_tags).unwrap();
        assert_eq!((s[0].tags.len(), s[0].short_id.as_str()), (0, "abcdef01"));
    }

    #[test]
    fn forget_groups_from_018() {
        let groups = parse_forget(include_str!(
            "../../tests/fixtures/restic/forget-keep-last-0.18.json"
        ))
        .unwrap();
        assert_eq!(groups.len(), 1);
        let kept: Vec<&str> = groups[0].keep.iter().map(|s| s.short_id.as_str()).collect();
        assert_eq!(kept, ["39455a5b"]);
        let removed: Vec<&str> = groups[0]
            .remove
            .iter()
            .map(|s| s.short_id.as_str())
            .collect();
        assert_eq!(removed, ["19d406af", "73515434"]);
        assert_eq!(groups[0].keep[0].paths, ["/tmp/rf/d"]);
        assert!(groups[0].keep[0].summary.is_some());
    }
}
