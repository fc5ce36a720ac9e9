//! The tar counter of `stackshot verify` (`restic dump` streams): no panic or
//! overflow on any stream, and the same counts however the stream is cut
//! into chunks. The first byte picks the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackshot::restore::verify::TarCount;

fuzz_target!(|data: &[u8]| {
    let Some((size, stream)) = data.split_first() else {
        return;
    };
    let mut whole = TarCount::default();
    whole.feed(stream);
    let mut chunked = TarCount::default();
    for chunk in stream.chunks(usize::from(*size).max(1)) {
        chunked.feed(chunk);
    }
    assert_eq!(
        (whole.files, whole.bytes),
        (chunked.files, chunked.bytes),
        "chunks of {size} count differently"
    );
});
