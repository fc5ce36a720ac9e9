//! Placing files into a stopped container, for the servers that read their
//! data only when they start (Redis's RDB, an app's SQLite file): the
//! container is stopped inside a stop window, the files are written into it
//! as a tar, and it is started again on every path.

use anyhow::{Context as _, Result, bail};

use super::{Checked, stream_file};
use crate::context::Context;
use crate::dumps::Prepared;
use crate::plan::StopEntry;
use crate::window::journal::Journal;
use crate::window::{self, Shutdown};

/// Unpacks `tar` at `at` in `p`'s container while it is stopped. `drill`:
/// the container is a drill's throwaway, stopped under a journal of its own
/// (a drill does not hold the run lock, and must not touch the journal of a
/// backup running beside it). `what` names the files in errors.
pub async fn while_stopped(
    ctx: &Context,
    p: &Prepared,
    at: &str,
    tar: Vec<u8>,
    drill: bool,
    what: &str,
) -> Result<()> {
    let who = &p.plan.container.container;
    let journal = if drill {
        let j = Journal::in_dir(&ctx.config.state_dir.join("drill"));
        // What a killed drill left names a throwaway removed since.
        j.clear()?;
        j
    } else {
        ctx.journal.clone()
    };
    let stop = StopEntry {
        container: p.plan.container.clone(),
        wave: 0,
        after: vec![],
        running: true,
        pre_stop: None,
        freeze: false,
    };
    let run_id = format!("restore-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
    let (_never_fires, never) = Shutdown::new();
    let (placed, report) = window::with_stop_window(
        &ctx.engine,
        &journal,
        &run_id,
        std::slice::from_ref(&stop),
        ctx.config.stop_timeout,
        &never,
        || async {
            ctx.engine
                .docker()
                .upload_to_container(
                    &p.plan.container.id,
                    Some(bollard::query_parameters::UploadToContainerOptions {
                        path: at.to_string(),
                        ..Default::default()
                    }),
                    bollard::body_full(bytes::Bytes::from(tar)),
                )
                .await
                .with_context(|| format!("cannot place {what} in {who}"))
        },
    )
    .await;
    // Whether it runs again comes first: a failed placement must not hide it.
    window::running_again(&report.restart_failed, &journal, placed)
}

/// The checked dump, read into memory, and checked again against the hash
/// it had when it was verified.
pub(super) async fn read_checked(ctx: &Context, c: &Checked) -> Result<Vec<u8>> {
    let mut data: Vec<u8> = Vec::with_capacity(c.bytes as usize);
    let (_, sha) = stream_file(ctx, &c.file.snap.id, &c.file.path, None, |chunk| {
        data.extend_from_slice(chunk)
    })
    .await?;
    if sha != c.sha {
        bail!(
            "the dump changed between verification and loading ({} then {sha})",
            c.sha
        );
    }
    Ok(data)
}

/// A restore's result line: printed, or logged by a drill (whose `--json`
/// output stays JSON).
pub fn announce(line: &str, printed: bool) {
    if printed {
        println!("{line}");
    } else {
        tracing::info!("{line}");
    }
}
