//! What restic prints: `version`, `backup --json` lines, `snapshots --json`,
//! `forget --json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackshot::restic::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = json::parse_version(text);
    for line in text.lines() {
        let _ = json::parse_backup_line(line);
    }
    if let Ok(snaps) = json::parse_snapshots(text) {
        for s in &snaps {
            let _ = s.matches("0123abcd");
        }
    }
    let _ = json::parse_forget(text);
});
