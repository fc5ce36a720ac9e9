//! A test hook: hold a short-window run at a named step, so that a drill can
//! act on the repository (a `restic prune` from another host, a bench's
//! change to the files) at exactly that moment.
//!
//! Off unless `STACKSHOT_TEST_PAUSE_DIR` names a directory. Then, at each
//! step `STACKSHOT_TEST_PAUSE_AT` lists (comma-separated; every step when it
//! is unset), the run creates the file `<dir>/<step>` and waits until it is
//! removed, for at most ten minutes. The directory is never created: a test
//! that removes it lets the run go on through every later step (what a
//! failed drill does, so that it never leaves a run held). Nothing in a
//! production run sets these.

use std::path::PathBuf;
use std::time::Duration;

/// The directory the pause files go in.
pub const DIR_VAR: &str = "STACKSHOT_TEST_PAUSE_DIR";
/// The steps to pause at.
pub const AT_VAR: &str = "STACKSHOT_TEST_PAUSE_AT";

/// The steps of a short-window run a pause can hold, in order.
pub const STEPS: &[&str] = &[
    "locked",
    "armed",
    "window",
    "uploaded",
    "dumps-snapshot",
    "merged",
    "checked",
    "released",
];

/// The longest a step is held.
const LIMIT: Duration = Duration::from_secs(600);

/// Whether `step` is one of `at` (a comma-separated list; `None`: every
/// step). Pure.
pub fn wanted(step: &str, at: Option<&str>) -> bool {
    at.is_none_or(|list| list.split(',').any(|s| s.trim() == step))
}

/// Holds the run at `step` while the test wants it held (see the module).
pub async fn at(step: &str) {
    debug_assert!(STEPS.contains(&step), "unknown pause step {step}");
    let Some(dir) = std::env::var_os(DIR_VAR).map(PathBuf::from) else {
        return;
    };
    if !wanted(step, std::env::var(AT_VAR).ok().as_deref()) {
        return;
    }
    let file = dir.join(step);
    if let Err(e) = std::fs::write(&file, b"") {
        tracing::warn!(step, error = %e, "test pause: cannot create the pause file; going on");
        return;
    }
    tracing::info!(step, file = %file.display(), "test pause: held until the file is removed");
    let t = std::time::Instant::now();
    while file.exists() && t.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(
        step,
        seconds = t.elapsed().as_secs_f64(),
        "test pause: going on"
    );
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn a_list_names_the_steps_and_none_means_all() {
        assert!(wanted("armed", None));
        assert!(wanted("armed", Some("locked, armed")));
        assert!(!wanted("armed", Some("locked,window")));
        assert!(!wanted("armed", Some("")));
    }
}
