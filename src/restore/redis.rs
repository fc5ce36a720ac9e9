//! Restoring a Redis dump: Redis reads its RDB only when it starts, so the
//! container is stopped (inside the same always-closing stop window as any
//! restore), the checked `dump.rdb` is placed in its data directory, and it
//! is started again. A server with `appendonly yes` would load its AOF
//! instead: it is refused before anything is changed.

use anyhow::{Context as _, Result, anyhow, bail};

use super::{Checked, place, wait_ready};
use crate::context::Context;
use crate::dumps::{self, Prepared, query_lines};

/// One `CONFIG GET name` value.
async fn config(ctx: &Context, p: &Prepared, name: &str) -> Result<String> {
    let lines = query_lines(
        &ctx.engine,
        p,
        None,
        &format!("CONFIG GET {name}"),
        &format!("read its {name} setting"),
    )
    .await?;
    config_value(&lines, name).ok_or_else(|| {
        anyhow!(
            "service {}: CONFIG GET {name} gave no value (is CONFIG renamed or disabled?): {lines:?}",
            p.plan.container.service
        )
    })
}

/// The value in `CONFIG GET name`'s output lines (`name`, then the value). Pure.
pub fn config_value(lines: &[String], name: &str) -> Option<String> {
    let at = lines.iter().position(|l| l == name)?;
    lines.get(at + 1).cloned()
}

/// The keys in the server, all logical databases together.
pub async fn keys(ctx: &Context, p: &Prepared) -> Result<i64> {
    Ok(dumps::stats::counts(&ctx.engine, p).await?.values().sum())
}

/// A tar holding one file, `name`, with `data` (mode 0644: the server reads it
/// whatever user it runs as).
fn tar_of(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header, name, data)?;
    Ok(b.into_inner()?)
}

/// Loads a checked Redis dump into its container: refused when the server
/// uses an AOF; otherwise stopped, given the file, started again, and its
/// keys counted. `announce` false: a drill's throwaway, stopped under a
/// journal of its own (a drill does not hold the run lock, and must not
/// touch the journal of a backup running beside it).
pub(super) async fn load(ctx: &Context, c: &Checked, announce: bool) -> Result<()> {
    let p = &c.target;
    let who = &p.plan.container.container;
    wait_ready(ctx, p).await?;
    if config(ctx, p, "appendonly").await? == "yes" {
        bail!(
            "refusing to restore {} into {who}: it runs with appendonly yes, so on its start Redis would load its AOF and ignore the restored dump.rdb; nothing was changed: run it with appendonly no for the restore, then turn it on again",
            c.file.rel
        );
    }
    let dir = config(ctx, p, "dir").await?;
    let file = config(ctx, p, "dbfilename").await?;
    // A Redis dump is at most the size of the data set in the server's
    // memory: it is read into memory here too.
    let data = place::read_checked(ctx, c).await?;
    let tar = tar_of(&file, &data).context("cannot pack the dump")?;
    // Stopped first: a Redis that stops saves its own data set over the file.
    place::while_stopped(ctx, p, &dir, tar, !announce, &format!("{file} in {dir}")).await?;
    wait_ready(ctx, p).await?;
    let keys = keys(ctx, p).await?;
    let line = format!(
        "Restored {} ({} bytes, sha256 {}) into {who} (redis {}): {keys} keys",
        c.file.rel,
        c.bytes,
        &c.sha[..16],
        p.server_version
    );
    place::announce(&line, announce);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_get_output() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config_value(&l(&["dir", "/data"]), "dir").as_deref(),
            Some("/data")
        );
        assert_eq!(config_value(&l(&["dir"]), "dir"), None);
        assert_eq!(config_value(&l(&[]), "appendonly"), None);
    }

    #[test]
    fn the_tar_holds_the_file() {
        let t = tar_of("dump.rdb", b"REDIS0011").unwrap();
        let mut a = tar::Archive::new(&t[..]);
        let mut e = a.entries().unwrap();
        let mut f = e.next().unwrap().unwrap();
        assert_eq!(f.path().unwrap().to_str(), Some("dump.rdb"));
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "REDIS0011");
    }
}
