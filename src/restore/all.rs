//! `restore all`: every dump checked first, then every mount restored
//! (inside a stop window), then the dumps loaded.

use anyhow::Result;

use super::check::check_dump;
use super::database::{dump_files, load_dump};
use super::volumes::volumes_in;
use super::{DatabaseOptions, VolumeOptions, scene};
use crate::catalog;
use crate::context::Context;

/// `restore all`: every database dump is checked first (checksum, version,
/// emptiness); then every mount is restored (inside a stop window); then the
/// dumps are loaded.
pub async fn all(ctx: &Context, snapshot: &str, yes: bool, replace: bool) -> Result<bool> {
    let sc = scene(ctx, yes).await?;
    let run = catalog::resolve(&sc.runs, snapshot)?.clone();
    let selector = run.snapshots[0].id.clone();
    let mut files = Vec::new();
    for d in &sc.plan.dumps {
        files.extend(
            dump_files(ctx, &run, &sc.plan, &d.container.service)
                .await?
                .into_iter()
                .map(|f| (d.container.service.clone(), f)),
        );
    }
    let every_mount = |dry_run: bool| VolumeOptions {
        snapshot: selector.clone(),
        services: vec![],
        to_volume: None,
        dry_run,
        yes: !dry_run,
    };
    if !yes {
        volumes_in(ctx, &sc, &every_mount(true), || async { Ok(()) }).await?;
        println!(
            "Databases that would be restored: {}",
            files
                .iter()
                .map(|(_, f)| f.rel.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("Nothing was changed: add --yes to restore.");
        return Ok(false);
    }
    let mut checked = Vec::new();
    for (service, file) in &files {
        let opts = DatabaseOptions {
            snapshot: selector.clone(),
            service: service.clone(),
            database: file.database.clone(),
            target_container: None,
            replace,
        };
        checked.push(check_dump(ctx, &sc, &opts, file).await?);
    }
    // The dumps are loaded inside the volume restore's window: no app starts
    // between the first restored file and the last loaded row.
    volumes_in(ctx, &sc, &every_mount(false), || async {
        for c in &checked {
            load_dump(ctx, c, replace, true).await?;
        }
        Ok(())
    })
    .await?;
    Ok(true)
}
