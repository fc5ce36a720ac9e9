//! The environment: each input line `NAME=value` becomes a variable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackshot::config::Config;
use stackshot::env::Env;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = Env::from_pairs(pairs);
    if let Err(e) = Config::from_env(&env) {
        let line = e.to_string();
        assert!(
            !line.contains('\n'),
            "a config error of more than one line: {line:?}"
        );
    }
    let _ = Config::http_addr_from_env(&env);
});
