//! The snapshot contract: what the files a backup writes are called, as the
//! plan promises them, the dumps write them and a restore finds them again.

/// The dump file of the SQLite file at `path`: its name.
pub fn sqlite_file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The file of a Redis dump, in its service's dump directory.
pub const REDIS_DUMP: &str = "dump.rdb";
