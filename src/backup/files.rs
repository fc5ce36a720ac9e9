//! The short window's file pass: the incremental snapshot of `/volumes`
//! taken while the containers are stopped, with the pre-pass as its parent.
//!
//! By default (`WINDOW_FILE_PASS=rustic`) its worker is *armed* before the
//! window: started, handed its settings, and done with the key derivation and
//! the index, so that inside the window only the walk and the changed bytes
//! remain. When arming fails, or the armed pass fails inside the window, the
//! pass is taken by `restic backup` as before (the safe path), and the run's
//! report says so. `WINDOW_FILE_PASS=restic` always takes that path.
//!
//! On a remote repository the armed pass writes into a local spool: the
//! window closes once the snapshot is spooled, and its [`Upload`] is waited
//! for after the window ([`Taken::upload`]).

use std::time::Duration;

use anyhow::{Result, anyhow};

use super::snapshot::{
    self, ArmedSnapshot, Pass, SnapshotJob, Snapshotted, StartedSnapshot, Target, Upload,
    VOLUMES_DIR,
};
use crate::config::FilePass;
use crate::container::ContainerInfo;
use crate::engine::Engine;
use crate::layout::RunPart;
use crate::plan::Plan;

/// How long opening the repository ahead may take before restic is used.
const ARM_TIMEOUT: Duration = Duration::from_secs(300);

/// The window's file pass, ready before the window opens.
pub enum FilesPass {
    /// rustic, the repository open, waiting for `go`.
    Armed(ArmedSnapshot),
    /// `restic backup` in a started worker, waiting for its settings.
    Restic(StartedSnapshot),
}

/// Starts the pass's worker (created, attached, started; waiting for its settings).
async fn start(
    engine: &Engine,
    target: &Target<'_>,
    plan: &Plan,
    sidecar: &ContainerInfo,
    parent: &Option<String>,
    pass: Pass,
) -> Result<StartedSnapshot> {
    let job = SnapshotJob {
        mode: RunPart::Files.label(),
        with_volumes: true,
        paths: &[VOLUMES_DIR],
        tags: target.part_tags(RunPart::Files),
        parent: parent.clone(),
        pass,
    };
    snapshot::start_in_worker(engine, target, plan, sidecar, &job).await
}

/// Gets the file pass ready, before the window. Returns it and, when it is
/// not the one asked for, a note for the run's report.
pub async fn prepare(
    engine: &Engine,
    wanted: FilePass,
    target: &Target<'_>,
    plan: &Plan,
    sidecar: &ContainerInfo,
    parent: &Option<String>,
) -> Result<(FilesPass, Option<String>)> {
    let mut note = None;
    if wanted == FilePass::Rustic {
        let armed = async {
            let started = start(engine, target, plan, sidecar, parent, Pass::Armed).await?;
            tokio::time::timeout(ARM_TIMEOUT, started.arm(engine))
                .await
                .map_err(|_| anyhow!("opening the repository took over {ARM_TIMEOUT:?}"))?
        }
        .await;
        match armed {
            Ok(a) => return Ok((FilesPass::Armed(a), None)),
            Err(e) => {
                let why = format!(
                    "the window's file pass is taken by restic: the armed rustic pass could not open the repository ahead ({e:#})"
                );
                tracing::warn!("{why}");
                note = Some(why);
            }
        }
    }
    let started = start(engine, target, plan, sidecar, parent, Pass::Restic).await?;
    Ok((FilesPass::Restic(started), note))
}

/// The window's file pass, taken.
pub struct Taken {
    /// The pass's snapshot: its report and how restic ended.
    pub snapshot: Snapshotted,
    /// Why it is not the pass asked for, if it is not.
    pub note: Option<String>,
    /// A snapshot spooled locally, still uploading: wait for it after the
    /// window, before anything names it.
    pub upload: Option<Upload>,
}

impl FilesPass {
    /// Takes the pass, inside the window. An armed pass that fails is
    /// repeated there by restic; the note says so.
    pub async fn run(
        self,
        engine: &Engine,
        target: &Target<'_>,
        plan: &Plan,
        sidecar: &ContainerInfo,
        parent: &Option<String>,
    ) -> Result<Taken> {
        match self {
            FilesPass::Restic(w) => Ok(Taken {
                snapshot: w.finish(engine).await?,
                note: None,
                upload: None,
            }),
            FilesPass::Armed(a) => match a.finish(engine).await {
                Ok((snapshot, upload)) => Ok(Taken {
                    snapshot,
                    note: None,
                    upload,
                }),
                Err(e) => {
                    let why = format!(
                        "the armed rustic file pass failed inside the window ({e:#}); restic took the pass again there"
                    );
                    tracing::warn!("{why}");
                    let s = start(engine, target, plan, sidecar, parent, Pass::Restic)
                        .await?
                        .finish(engine)
                        .await?;
                    Ok(Taken {
                        snapshot: s,
                        note: Some(why),
                        upload: None,
                    })
                }
            },
        }
    }
}
