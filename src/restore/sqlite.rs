//! Restoring a SQLite copy: with the container stopped (inside the same
//! always-closing stop window as any restore), the checked file is placed at
//! its path with the owner and mode of the file it replaces, and the old
//! file's `-wal`, `-shm` and `-journal` are emptied (a stale write-ahead log
//! would be replayed onto the restored file); then the container starts and
//! `PRAGMA integrity_check` must say `ok`. In an image without a shell or
//! `sqlite3`, the look at the old file and the check run in a worker
//! ([`crate::dumps::sqlite_worker`]); the file is placed by the engine.

use anyhow::{Context as _, Result, anyhow, bail};

use super::{Checked, place};
use crate::context::Context;
use crate::dumps::{Prepared, query_lines};
use crate::engine::exec;

/// The largest copy placed (it is held in memory on the way); a larger one
/// is restored by hand with restic (docs/restore.md, "Without stackshot").
pub const MAX_BYTES: u64 = 2 << 30;

/// The files beside a SQLite database that belong to its state.
pub fn side_files(path: &str) -> [String; 3] {
    ["-wal", "-shm", "-journal"].map(|s| format!("{path}{s}"))
}

/// What the container says of the file it will replace: (uid, gid, mode) of
/// the file, or of its directory when there is none yet, and which side
/// files exist.
async fn inspect(
    ctx: &Context,
    p: &Prepared,
    path: &str,
) -> Result<((u64, u64, u32), Vec<String>)> {
    let out = match &p.sqlite_worker {
        Some(w) => w.stat(&ctx.engine, path).await?,
        None => inspect_in(ctx, &p.plan.container.id, path).await?,
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let owner = lines.next().and_then(parse_owner).ok_or_else(|| {
        anyhow!(
            "cannot read the owner of {path} in the container: {}",
            out.stderr
        )
    })?;
    Ok((owner, lines.map(str::to_string).collect()))
}

/// [`inspect`] with the container's own shell and `stat`.
async fn inspect_in(ctx: &Context, id: &str, path: &str) -> Result<exec::Captured> {
    let mut argv: Vec<String> = [
        "sh",
        "-c",
        r#"p=$1; shift; if [ -e "$p" ]; then stat -c '%u %g %a' "$p"; else stat -c '%u %g 644' "$(dirname "$p")"; fi; for f; do [ -e "$f" ] && echo "$f"; done; true"#,
        "sh",
        path,
    ]
    .map(String::from)
    .to_vec();
    argv.extend(side_files(path));
    exec::capture(&ctx.engine, id, &argv, &[]).await
}

/// Reads the owner line `stat -c '%u %g %a'` prints, `uid gid mode(octal)`,
/// into the uid, the gid and the permission bits. Pure.
pub fn parse_owner(line: &str) -> Option<(u64, u64, u32)> {
    let mut w = line.split_whitespace();
    let uid = w.next()?.parse().ok()?;
    let gid = w.next()?.parse().ok()?;
    let mode = u32::from_str_radix(w.next()?, 8).ok()?;
    Some((uid, gid, mode & 0o777))
}

/// A tar placing `data` at `path` and emptying each of `empty`, all owned
/// by `owner`. Pure.
pub fn tar_of(
    path: &str,
    data: &[u8],
    empty: &[String],
    owner: (u64, u64, u32),
) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mode(owner.2);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        b.append_data(&mut h, name.trim_start_matches('/'), bytes)?;
        Ok(())
    };
    add(path, data)?;
    for f in empty {
        add(f, &[])?;
    }
    Ok(b.into_inner()?)
}

/// Loads a checked SQLite copy into its container. `announce` false: a
/// drill's throwaway, stopped under a journal of its own.
pub(super) async fn load(ctx: &Context, c: &Checked, announce: bool) -> Result<()> {
    let p = &c.target;
    let who = &p.plan.container.container;
    let path = c.file.database.as_deref().ok_or_else(|| {
        anyhow!(
            "{}: no stackshot.sqlite label of service {} names a file called that any more; nothing was changed: put the label back, or restore it by hand with restic",
            c.file.rel,
            p.plan.container.service
        )
    })?;
    if c.bytes > MAX_BYTES {
        bail!(
            "{} is {} bytes: stackshot places SQLite copies up to {MAX_BYTES} bytes; nothing was changed: restore it with restic by hand (docs/restore.md, Without stackshot)",
            c.file.rel,
            c.bytes
        );
    }
    let (owner, sides) = inspect(ctx, p, path).await?;
    let data = place::read_checked(ctx, c).await?;
    let tar = tar_of(path, &data, &sides, owner).context("cannot pack the copy")?;
    place::while_stopped(ctx, p, "/", tar, !announce, path).await?;
    let check = query_lines(
        &ctx.engine,
        p,
        Some(path),
        "PRAGMA integrity_check",
        "check the restored file",
    )
    .await?;
    if check != ["ok"] {
        bail!("the restored {path} in {who} fails PRAGMA integrity_check: {check:?}");
    }
    let line = format!(
        "Restored {} ({} bytes, sha256 {}) to {path} in {who} (integrity_check ok)",
        c.file.rel,
        c.bytes,
        &c.sha[..16]
    );
    place::announce(&line, announce);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_side_files() {
        assert_eq!(parse_owner("1000 1000 644"), Some((1000, 1000, 0o644)));
        assert_eq!(parse_owner("0 0 4755"), Some((0, 0, 0o755)));
        assert_eq!(parse_owner("x"), None);
        assert_eq!(
            side_files("/data/db.sqlite3"),
            [
                "/data/db.sqlite3-wal",
                "/data/db.sqlite3-shm",
                "/data/db.sqlite3-journal"
            ]
        );
    }

    #[test]
    fn the_tar_places_the_file_and_empties_the_log() {
        let t = tar_of(
            "/data/db.sqlite3",
            b"SQLite format 3\0",
            &["/data/db.sqlite3-wal".into()],
            (1000, 1001, 0o600),
        )
        .unwrap();
        let mut a = tar::Archive::new(&t[..]);
        let got: Vec<(String, u64, u64, u32)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.size().unwrap(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("data/db.sqlite3".to_string(), 16, 1000, 0o600),
                ("data/db.sqlite3-wal".to_string(), 0, 1000, 0o600)
            ]
        );
    }
}
