//! `SHA256SUMS` of a run's dumps, as restore and verify read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (file, sum) in stackshot::restore::parse_sums(&text) {
        assert!(
            !file.contains('\n') && !sum.contains('\n'),
            "{file:?} {sum:?}"
        );
    }
});
