//! The row counter of SQL dumps (any bytes, either dialect): no panic, and
//! the same counts however the stream is cut into chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackshot::dumps::rows::{RowCounter, count};

fuzz_target!(|data: &[u8]| {
    let Some((&first, dump)) = data.split_first() else {
        return;
    };
    let pg = first & 1 == 1;
    let size = usize::from(first >> 1) + 1;
    let whole = count(pg, Some("db"), dump);
    let mut c = RowCounter::new(pg, Some("db"));
    for chunk in dump.chunks(size) {
        c.feed(chunk);
    }
    assert_eq!(c.finish(), whole, "chunks of {size} count otherwise");
});
