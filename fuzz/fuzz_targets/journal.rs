//! The stop-window journal as found on disk after a crash (any bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackshot::window::journal::Journal;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::in_dir(dir.path());
    std::fs::write(journal.path(), data).unwrap();
    if let Err(e) = journal.read() {
        let line = format!("{e:#}");
        assert!(
            !line.contains('\n'),
            "a journal error of more than one line: {line:?}"
        );
    }
});
