//! The database of the SQLite test apps (`seed`: 1,000 rows; `writes`: the
//! next id every 50 ms), as both SQLite tests check it.

use super::Stack;

/// The statements whose output [`Notes::parse`] reads, one line each.
pub const QUERY: &str = "SELECT count(*) FROM seed WHERE id <= 1000; \
     SELECT sum(length(body) * id) FROM seed WHERE id <= 1000; \
     SELECT count(*) FROM writes; \
     SELECT coalesce(max(id), 0) FROM writes; \
     PRAGMA integrity_check;";

/// What a copy of the app's database holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Notes {
    /// Seeded rows.
    pub seeded: String,
    /// Their checksum.
    pub checksum: String,
    /// Rows in `writes`.
    pub writes: u64,
    /// The last write's id.
    pub last: u64,
    /// `PRAGMA integrity_check`.
    pub integrity: String,
}

impl Notes {
    /// Reads sqlite3's output of [`QUERY`].
    pub fn parse(out: &str) -> Notes {
        let l: Vec<&str> = out.lines().collect();
        assert_eq!(l.len(), 5, "{out}");
        Notes {
            seeded: l[0].into(),
            checksum: l[1].into(),
            writes: l[2].parse().unwrap(),
            last: l[3].parse().unwrap(),
            integrity: l[4].into(),
        }
    }

    /// A sound copy of one moment of the app's: `source`'s seeded rows,
    /// every write up to the last and none missing, no older than `source`
    /// and older than the app's last write `after` the backup.
    pub fn assert_one_moment(&self, source: &Notes, after: u64) {
        assert_eq!(self.integrity, "ok", "integrity_check of the copy");
        assert_eq!(
            (&self.seeded, &self.checksum),
            (&source.seeded, &source.checksum),
            "seeded rows differ"
        );
        assert_eq!(
            self.writes, self.last,
            "a gap in the app's writes: {self:?}"
        );
        assert!(
            self.last >= source.last,
            "older than the moment before the backup"
        );
        assert!(self.last < after, "the app wrote nothing during the backup");
    }

    /// The database restored from `copy`: sound, with its seeded rows.
    pub fn assert_restored_from(&self, copy: &Notes) {
        assert_eq!(self.integrity, "ok");
        assert_eq!(
            (&self.seeded, &self.checksum),
            (&copy.seeded, &copy.checksum)
        );
    }
}

/// `restore database` of `service` refuses while the file at `path` has
/// its two tables, and says so.
pub fn assert_refused_while_it_has_tables(stack: &Stack, service: &str, path: &str) {
    let refused = stack.restore_database(service, false);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("it already has data (2 tables in {path})")),
        "{err}"
    );
}
