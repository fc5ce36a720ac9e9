//! The snapshot watchdog's rule, pure: a `restic backup` has stalled when
//! none of its progress counters moved for the allowed time.
//!
//! restic 0.14 can hang on a full repository disk with every file read: its
//! status lines keep coming, their numbers never change, and the process
//! never ends. Line arrival is therefore no sign of life; only a counter that
//! moves is. The scan's totals count too, so a long scan before the first
//! file is read is progress.

use std::time::{Duration, Instant};

use crate::restic::json::Progress;

/// The exit code of a worker whose restic the watchdog stopped (the
/// convention of `timeout(1)`).
pub const STALLED_EXIT: i32 = 124;

/// A watchdog that tells when a `restic backup`'s progress counters have not moved for its limit.
#[derive(Debug, Clone)]
pub struct Stall {
    limit: Duration,
    last: Option<(u64, u64, u64, u64)>,
    moved_at: Instant,
}

impl Stall {
    /// A watch that starts counting at `now` (restic started).
    pub fn new(limit: Duration, now: Instant) -> Self {
        Stall {
            limit,
            last: None,
            moved_at: now,
        }
    }

    /// Takes one status line's counters seen at `now`.
    pub fn observe(&mut self, p: &Progress, now: Instant) {
        let counters = (p.files_done, p.bytes_done, p.total_files, p.total_bytes);
        if self.last != Some(counters) {
            self.last = Some(counters);
            self.moved_at = now;
        }
    }

    /// True when nothing moved for the limit, as of `now`.
    pub fn stalled(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.moved_at) >= self.limit
    }

    /// The allowed time, for messages.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(files_done: u64, bytes_done: u64, total_files: u64) -> Progress {
        Progress {
            files_done,
            bytes_done,
            total_files,
            total_bytes: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn moving_counters_keep_it_alive_and_repeated_lines_do_not() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut w = Stall::new(Duration::from_secs(60), t0);
        assert!(!w.stalled(s(59)));
        assert!(w.stalled(s(60)), "no status line at all for the limit");
        w.observe(&progress(0, 0, 10), s(50));
        assert!(!w.stalled(s(100)), "the first line is a move");
        w.observe(&progress(0, 0, 20), s(100));
        assert!(!w.stalled(s(150)), "the scan's total grew");
        w.observe(&progress(3, 300, 20), s(150));
        // The hang: the same numbers, once a second, for ever.
        for t in 151..=209 {
            w.observe(&progress(3, 300, 20), s(t));
            assert!(!w.stalled(s(t)));
        }
        w.observe(&progress(3, 300, 20), s(210));
        assert!(w.stalled(s(210)), "a minute of identical lines is a stall");
        w.observe(&progress(3, 301, 20), s(211));
        assert!(!w.stalled(s(211)));
    }
}
