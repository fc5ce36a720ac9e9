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
use crate::catalog;
use crate::context::Context;
use crate::discovery;
use crate::layout::{DATABASES_DIR, SnapshotMode, VOLUMES_DIR};

/// Counts the regular files and their bytes in a tar stream fed in chunks.
/// Pure: it only parses 512-byte headers (ustar, GNU long names and
/// base-256 sizes, and the `size` of a PAX extended header: Go's tar, which
/// `restic dump` writes with, puts a file of 8 GiB or more there and 0 in the
/// ustar field).
#[derive(Debug, Default)]
pub struct TarCount {
    /// How many regular files the stream held so far.
    pub files: u64,
    /// The total size of those files in bytes.
    pub bytes: u64,
    header: Vec<u8>,
    skip: u64,
    ended: bool,
    /// The PAX extended header being read: its bytes, and how many are left.
    pax: Vec<u8>,
    pax_left: u64,
    /// The `size` its records gave, for the next entry.
    pax_size: Option<u64>,
}

/// The longest PAX extended header kept (its `size` record comes early);
/// the rest of a longer one is skipped.
const PAX_KEPT: u64 = 64 * 1024;

/// A numeric header field: octal, or base-256 when its first byte has the
/// high bit (GNU, for values octal cannot hold; negative ones read as 0).
fn numeric(field: &[u8]) -> u64 {
    match field.first() {
        Some(&b) if b & 0x80 != 0 => {
            if b == 0xff {
                return 0;
            }
            std::iter::once(b & 0x7f)
                .chain(field[1..].iter().copied())
                .fold(0u64, |n, b| {
                    n.saturating_mul(256).saturating_add(u64::from(b))
                })
        }
        _ => field
            .iter()
            .skip_while(|b| **b == b' ' || **b == 0)
            .take_while(|b| (b'0'..=b'7').contains(*b))
            .fold(0u64, |n, b| {
                n.saturating_mul(8).saturating_add(u64::from(b - b'0'))
            }),
    }
}

/// The `size` record of a PAX extended header (`<length> size=<n>\n`
/// records), if any. Pure.
fn pax_size(mut records: &[u8]) -> Option<u64> {
    let mut size = None;
    while let Some(space) = records.iter().position(|b| *b == b' ') {
        let len: usize = std::str::from_utf8(&records[..space]).ok()?.parse().ok()?;
        if len <= space || len > records.len() {
            break;
        }
        let record = &records[space + 1..len];
        if let Some(value) = record.strip_prefix(b"size=") {
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            size = std::str::from_utf8(value).ok()?.parse().ok();
        }
        records = &records[len..];
    }
    size
}

impl TarCount {
    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.ended {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len() as u64) as usize;
                if self.pax_left > 0 {
                    let keep = self.pax_left.min(n as u64) as usize;
                    if self.pax.len() < PAX_KEPT as usize {
                        let room = PAX_KEPT as usize - self.pax.len();
                        self.pax.extend_from_slice(&chunk[..keep.min(room)]);
                    }
                    self.pax_left -= keep as u64;
                    if self.pax_left == 0 {
                        self.pax_size = pax_size(&std::mem::take(&mut self.pax));
                    }
                }
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
            let kind = h[156];
            let mut size = numeric(&h[124..136]);
            match kind {
                b'x' => {
                    self.pax.clear();
                    self.pax_left = size;
                    self.pax_size = None;
                }
                // GNU long names and PAX globals describe no entry of their own.
                b'L' | b'K' | b'g' => {}
                _ => {
                    if let Some(s) = self.pax_size.take() {
                        size = s;
                    }
                    if matches!(kind, b'0' | 0) {
                        self.files += 1;
                        self.bytes = self.bytes.saturating_add(size);
                    }
                }
            }
            self.skip = size.div_ceil(512).saturating_mul(512);
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
    let host = crate::context::plan_options(&ctx.config, &found).host;
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
            if catalog::tag_values(snap, "mode")
                .into_iter()
                .any(|m| SnapshotMode::from_tag(m) == Some(SnapshotMode::Atomic))
            {
                problems.push(format!(
                    "snapshot {} has {DATABASES_DIR} but no SHA256SUMS",
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

    /// What Go's tar (restic dump) writes for a file octal cannot size: a
    /// PAX header with `size=` and 0 in the ustar field; GNU base-256 too.
    #[test]
    fn reads_pax_and_base_256_sizes() {
        let mut tar = Vec::new();
        let record = "15 size=100000\n";
        tar.extend(header("PaxHeaders/big", record.len() as u64, b'x'));
        let mut content = record.as_bytes().to_vec();
        content.resize(512, 0);
        tar.extend(content);
        tar.extend(header("volumes/big", 0, b'0'));
        // Content that would read as headers if the size were taken as 0.
        for _ in 0..(100_000usize.div_ceil(512)) {
            tar.extend(header("volumes/not-a-file", 1, b'0'));
        }
        let mut gnu = header("volumes/gnu", 0, b'0');
        gnu[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8]);
        tar.extend(gnu);
        tar.extend(vec![5u8; 1024]);
        tar.extend(vec![0u8; 1024]);
        for size in [1, 100, 512, 4096] {
            let mut c = TarCount::default();
            for chunk in tar.chunks(size) {
                c.feed(chunk);
            }
            assert_eq!((c.files, c.bytes), (2, 101_000), "chunks of {size}");
        }
    }

    #[test]
    fn a_huge_base_256_size_neither_overflows_nor_panics() {
        let mut h = header("volumes/x", 0, b'0');
        h[124..136].copy_from_slice(&[0xbf; 12]);
        let mut c = TarCount::default();
        c.feed(&h);
        c.feed(&h);
        assert_eq!((c.files, c.bytes), (1, u64::MAX));
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
