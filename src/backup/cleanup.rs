//! The last phase of a backup, on every path that reached a window: the
//! dump files removed from `/databases` (they are in the snapshot, or the
//! run failed) and any worker container still there removed.

use std::path::Path;
use std::time::Instant;

use crate::context::Context;
use crate::dumps::{self, DATABASES_DIR};
use crate::engine::worker;
use crate::report::RunReport;

/// Cleans up after `project`'s window; `dump_files`: the run wrote dump
/// files. Never fails: what cannot be removed is logged, and the next run
/// removes it before its own window.
pub async fn run(ctx: &Context, r: &mut RunReport, project: &str, dump_files: bool) {
    let t = Instant::now();
    if dump_files && let Err(e) = dumps::clear_dir(Path::new(DATABASES_DIR)) {
        tracing::warn!(error = %format!("{e:#}"), "could not remove the dump files");
    }
    worker::remove_leftovers(&ctx.engine, project).await;
    r.phase("cleanup", t);
}
