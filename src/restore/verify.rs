//! `stackshot verify`: proves that a run can be restored by reading it.
//!
//! - `restic check` (structure; `--read-data-subset` reads part of the packs);
//! - every dump streamed out and compared with `SHA256SUMS`;
//! - by default, every other file of the run too: each snapshot's `/volumes`
//!   (and a split run's database snapshots) streamed out as a tar through
//!   `restic dump`, which authenticates each blob as it reads it. A damaged
//!   pack fails the read, naming what restic said. `--quick` skips this read
//!   and says what it did not read.

use anyhow::Result;

use super::{parse_sums, small_file, stream_file};
use crate::backup::Context;
use crate::backup::snapshot::VOLUMES_DIR;
use crate::catalog;
use crate::discovery;
use crate::dumps::DATABASES_DIR;

/// Counts the regular files and their bytes in a tar stream fed in chunks.
/// Pure: it only parses 512-byte headers (ustar, and GNU long names).
#[derive(Debug, Default)]
pub struct TarCount {
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    header: Vec<u8>,
    skip: u64,
    ended: bool,
}

fn octal(field: &[u8]) -> u64 {
    field
        .iter()
        .skip_while(|b| **b == b' ' || **b == 0)
        .take_while(|b| (b'0'..=b'7').contains(*b))
        .fold(0, |n, b| n * 8 + u64::from(b - b'0'))
}

impl TarCount {
    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.ended {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len() as u64) as usize;
                self.skip -= n as u64;
                chunk = &chunk[n..];
                continue;
            }
            let need = 512 - self.header.len();
            let n = need.min(chunk.len());
            self.header.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.header.len() < 512 {
                return;
            }
            let h = std::mem::take(&mut self.header);
            if h.iter().all(|b| *b == 0) {
                self.ended = true;
                return;
            }
            let size = octal(&h[124..136]);
            if matches!(h[156], b'0' | 0) {
                self.files += 1;
                self.bytes += size;
            }
            self.skip = size.div_ceil(512) * 512;
        }
    }
}

/// `stackshot verify`. Returns the problems found (none: the run restores).
pub async fn verify(
    ctx: &Context,
    snapshot: &str,
    read_data_subset: Option<&str>,
    quick: bool,
) -> Result<Vec<String>> {
    ctx.restic.reachable().await?;
    let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    let host = crate::backup::plan_options(&ctx.config, &found).host;
    let runs = catalog::list_here(&ctx.restic, &found, &host).await?;
    let run = catalog::resolve(&runs, snapshot)?;
    let mut problems = Vec::new();
    let subset_arg = read_data_subset.map(|s| format!("--read-data-subset={s}"));
    let mut args = vec!["check"];
    if let Some(a) = &subset_arg {
        args.push(a);
    }
    match ctx.restic.run(&args).await {
        Ok(_) => println!(
            "restic check{}: ok",
            subset_arg.map(|a| format!(" {a}")).unwrap_or_default()
        ),
        Err(e) => problems.push(format!("restic check: {e:#}")),
    }

    // The dumps, against their checksums.
    let mut checked = 0;
    for snap in run
        .snapshots
        .iter()
        .filter(|s| s.paths.iter().any(|p| p == DATABASES_DIR))
    {
        let Some(sums) = small_file(ctx, &snap.id, &format!("{DATABASES_DIR}/SHA256SUMS")).await
        else {
            // A split run's database snapshot has no SHA256SUMS (it is read whole
            // below); an atomic one must have it.
            if snap.tags.iter().any(|t| t == "mode=atomic") {
                problems.push(format!(
                    "snapshot {} has /databases but no SHA256SUMS",
                    snap.short_id
                ));
            }
            continue;
        };
        for (rel, want) in parse_sums(&sums) {
            let path = format!("{DATABASES_DIR}/{rel}");
            match stream_file(ctx, &snap.id, &path, None, |_| {}).await {
                Ok((_, got)) if got == want => {
                    checked += 1;
                    println!("{rel}: OK");
                }
                Ok((_, got)) => problems.push(format!(
                    "{rel}: SHA-256 {got} does not match SHA256SUMS {want}"
                )),
                Err(e) => problems.push(format!("{rel}: {e:#}")),
            }
        }
    }

    // Every other file of the run, read once.
    let mut to_read: Vec<(&str, &str)> = Vec::new();
    for snap in &run.snapshots {
        if snap.paths.iter().any(|p| p == VOLUMES_DIR) {
            to_read.push((&snap.id, VOLUMES_DIR));
        } else if snap.paths.iter().any(|p| p == DATABASES_DIR) && checked == 0 {
            to_read.push((&snap.id, DATABASES_DIR));
        }
    }
    if quick {
        println!(
            "--quick: did not read the file data of {}; run verify without --quick to read every blob",
            to_read
                .iter()
                .map(|(id, path)| format!("{path} in snapshot {}", &id[..8.min(id.len())]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        let (mut files, mut bytes) = (0u64, 0u64);
        for (id, path) in to_read {
            let mut count = TarCount::default();
            match stream_file(ctx, id, path, None, |c| count.feed(c)).await {
                Ok(_) => {
                    files += count.files;
                    bytes += count.bytes;
                }
                Err(e) => problems.push(format!("reading {path}: {e:#}")),
            }
        }
        println!("read {files} file(s), {bytes} bytes of file data: every blob authenticated");
    }
    println!(
        "verified run {}: {checked} dump(s) match their checksums, {} problem(s)",
        run.run_id.as_deref().unwrap_or(&run.time),
        problems.len()
    );
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::TarCount;

    fn header(name: &str, size: u64, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let s = format!("{size:011o}\0");
        h[124..136].copy_from_slice(s.as_bytes());
        h[156] = kind;
        h
    }

    #[test]
    fn counts_files_and_bytes_across_chunks() {
        let mut tar = Vec::new();
        tar.extend(header("volumes/", 0, b'5'));
        tar.extend(header("volumes/a", 700, b'0'));
        tar.extend(vec![7u8; 1024]);
        tar.extend(header("volumes/b", 3, b'0'));
        tar.extend(vec![1u8; 512]);
        tar.extend(header("volumes/l", 0, b'2'));
        tar.extend(vec![0u8; 1024]);
        for size in [1, 7, 512, 513, 100_000] {
            let mut c = TarCount::default();
            for chunk in tar.chunks(size) {
                c.feed(chunk);
            }
            assert_eq!((c.files, c.bytes), (2, 703), "chunks of {size}");
        }
    }
}
