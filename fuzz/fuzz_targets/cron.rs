//! Cron expressions (`BACKUP_CRON`, `PRUNE_CRON`…), and their next ticks.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use stackshot::schedule::Schedule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<Schedule>() {
        Ok(s) => {
            let from = chrono::Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
            for tz in [chrono_tz::UTC, chrono_tz::Europe::Berlin] {
                if let Some(next) = s.next_after(from, tz) {
                    assert!(next > from, "{text:?}: next {next} not after {from}");
                }
            }
        }
        Err(e) => assert!(!e.contains('\n'), "{text:?}: {e:?}"),
    }
});
