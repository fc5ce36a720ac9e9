//! The snapshot contract: where a snapshot's files sit, what the dump files
//! are called and the tag of a run's parts — as the plan promises them, the
//! backup writes them and a restore finds them again.

/// The dump file of the SQLite file at `path`: its name.
pub fn sqlite_file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The file of a Redis dump, in its service's dump directory.
pub const REDIS_DUMP: &str = "dump.rdb";

/// Where dumps are written in atomic mode (and where they sit in the snapshot).
pub const DATABASES_DIR: &str = "/databases";

/// Where the plan's mounts appear in the worker (and in the snapshot).
pub const VOLUMES_DIR: &str = "/volumes";

/// The tag of a run's parts (pre-pass and the snapshots merged into one);
/// each also carries `part=` and its [`RunPart`].
pub const PART_TAG: &str = "stackshot-part";

/// A part of a short-window run, as its `part=` tag names it (beside
/// [`PART_TAG`]): written when the part is taken, read again when the parts
/// runs left behind are forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPart {
    /// The snapshot of the files taken while the stack still runs, only ever
    /// a parent (`prepass`).
    Prepass,
    /// The window's snapshot of the files, with the pre-pass as its parent (`files`).
    Files,
    /// The snapshot of the dumps (`dumps`).
    Dumps,
}

impl RunPart {
    /// Every part, so that reading a tag takes the spellings from `as_str`.
    pub const ALL: [RunPart; 3] = [RunPart::Prepass, RunPart::Files, RunPart::Dumps];

    /// The tag value, exactly as it is written into the repository.
    pub fn as_str(self) -> &'static str {
        match self {
            RunPart::Prepass => "prepass",
            RunPart::Files => "files",
            RunPart::Dumps => "dumps",
        }
    }

    /// What logs and messages call the part's snapshot (its job's `mode`):
    /// not a tag, and not always the tag's spelling.
    pub fn label(self) -> &'static str {
        match self {
            RunPart::Prepass => "pre-pass",
            RunPart::Files => "window files",
            RunPart::Dumps => "dumps",
        }
    }

    /// The part a tag value names, or `None` for a value no run writes.
    pub fn from_tag(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == value)
    }
}

impl std::fmt::Display for RunPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `mode=` tag of a backup snapshot: what the snapshot holds, written when
/// it is taken and read again to list runs and find what a restore needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// One snapshot of the volumes and the dumps together (`atomic`).
    Atomic,
    /// A split run's snapshot of the volumes alone (`volumes`).
    Volumes,
    /// A split run's snapshot of one database's dump (`database`).
    Database,
}

impl SnapshotMode {
    /// Every mode, so that reading a tag takes the spellings from `as_str`.
    pub const ALL: [SnapshotMode; 3] = [
        SnapshotMode::Atomic,
        SnapshotMode::Volumes,
        SnapshotMode::Database,
    ];

    /// The tag value, exactly as it is written into the repository and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMode::Atomic => "atomic",
            SnapshotMode::Volumes => "volumes",
            SnapshotMode::Database => "database",
        }
    }

    /// The mode a tag value names, or `None` for a value no run writes.
    pub fn from_tag(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }
}

impl std::fmt::Display for SnapshotMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long the stop window lasts (`STOP_WINDOW`, the `stackshot.window`
/// label), and which one a run used (the plan's and the report's `short` or
/// `full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopWindow {
    /// Pre-pass before the window; databases pinned and the incremental file
    /// snapshot inside it; the dumps stream after it.
    Short,
    /// Every dump and the whole file snapshot inside the window (the older tools' way).
    Full,
}

impl StopWindow {
    /// Both windows, so that reading a name takes the spellings from `as_str`.
    pub const ALL: [StopWindow; 2] = [StopWindow::Short, StopWindow::Full];

    /// The window's name, exactly as the configuration, the plan and the report spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopWindow::Short => "short",
            StopWindow::Full => "full",
        }
    }

    /// The window a name (already trimmed and lowercased) names, or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == name)
    }
}

impl std::fmt::Display for StopWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings are the repository's tags and the report's fields: they
    /// never change.
    #[test]
    fn snapshot_modes_keep_their_strings() {
        assert_eq!(SnapshotMode::Atomic.as_str(), "atomic");
        assert_eq!(SnapshotMode::Volumes.as_str(), "volumes");
        assert_eq!(SnapshotMode::Database.as_str(), "database");
        assert_eq!(SnapshotMode::Atomic.to_string(), "atomic");
        assert_eq!(format!("mode={}", SnapshotMode::Database), "mode=database");
        for m in [
            SnapshotMode::Atomic,
            SnapshotMode::Volumes,
            SnapshotMode::Database,
        ] {
            assert_eq!(SnapshotMode::from_tag(m.as_str()), Some(m));
        }
        for unknown in ["", "split", "pre-pass", "dumps", "Atomic", " atomic"] {
            assert_eq!(SnapshotMode::from_tag(unknown), None, "{unknown:?}");
        }
    }

    /// The parts' tags are in the repository, their labels in the logs:
    /// they never change.
    #[test]
    fn run_parts_keep_their_strings() {
        assert_eq!(RunPart::Prepass.as_str(), "prepass");
        assert_eq!(RunPart::Files.as_str(), "files");
        assert_eq!(RunPart::Dumps.as_str(), "dumps");
        assert_eq!(RunPart::Files.to_string(), "files");
        assert_eq!(format!("part={}", RunPart::Prepass), "part=prepass");
        assert_eq!(RunPart::Prepass.label(), "pre-pass");
        assert_eq!(RunPart::Files.label(), "window files");
        assert_eq!(RunPart::Dumps.label(), "dumps");
        for p in [RunPart::Prepass, RunPart::Files, RunPart::Dumps] {
            assert_eq!(RunPart::from_tag(p.as_str()), Some(p));
        }
        for unknown in ["", "pre-pass", "window files", "volumes", "Files", " dumps"] {
            assert_eq!(RunPart::from_tag(unknown), None, "{unknown:?}");
        }
    }

    /// The window's names are the configuration's values, the plan's and
    /// the report's fields: they never change.
    #[test]
    fn stop_windows_keep_their_names() {
        assert_eq!(StopWindow::Short.as_str(), "short");
        assert_eq!(StopWindow::Full.as_str(), "full");
        assert_eq!(StopWindow::Full.to_string(), "full");
        assert_eq!(
            serde_json::to_string(&StopWindow::Short).unwrap(),
            "\"short\""
        );
        assert_eq!(
            serde_json::to_string(&StopWindow::Full).unwrap(),
            "\"full\""
        );
        for w in [StopWindow::Short, StopWindow::Full] {
            assert_eq!(StopWindow::from_name(w.as_str()), Some(w));
        }
        for unknown in ["", "Full", " short", "long"] {
            assert_eq!(StopWindow::from_name(unknown), None, "{unknown:?}");
        }
    }
}
