//! Container labels: each input line `key=value` becomes a label.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let labels: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let parsed = stackshot::labels::parse(&labels);
    for e in &parsed.errors {
        assert!(
            !e.contains('\n'),
            "a label error of more than one line: {e:?}"
        );
    }
    let _ = parsed.wanted();
});
