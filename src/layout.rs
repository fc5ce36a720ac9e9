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

/// The tag of a run's parts (pre-pass and the snapshots merged into one).
pub const PART_TAG: &str = "stackshot-part";
