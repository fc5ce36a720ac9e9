//! Restore: volumes back into their volumes and bind mounts (through a worker
//! container, inside the same always-closing stop window as a backup), and
//! dumps back into database containers — each dump checked against the
//! snapshot's `SHA256SUMS` before a byte reaches the database.
//!
//! Every restore starts from the same scene (discovery, the plan and the
//! repository's runs: here); then [`volumes`](mod@volumes),
//! [`database`](mod@database) (its checks in [`check`](mod@check), with
//! [`redis`], [`sqlite`] and [`place`] for the servers that read their data
//! at start), [`all`](mod@all) (both, dumps checked first);
//! [`verify`](mod@verify) and [`drill`](mod@drill) beside them.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::catalog::{self, Run};
use crate::container::ContainerInfo;
use crate::context::{Context, plan_options};
use crate::discovery::{self, Discovery};
use crate::engine::worker;
use crate::labels::Engine as DbEngine;
use crate::plan::{self, Plan};
use crate::window::{self};

/// Discovery, plan and the repository's runs: what every restore starts from.
struct Scene {
    found: Discovery,
    sidecar: ContainerInfo,
    plan: Plan,
    runs: Vec<Run>,
}

/// `mutate`: the caller holds the run lock and will change things; only then are
/// an interrupted run's worker removed and its containers started.
async fn scene(ctx: &Context, mutate: bool) -> Result<Scene> {
    crate::engine::access::check(&ctx.engine, ctx.config.docker_host_shown()).await?;
    ctx.restic.reachable().await?;
    let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    let sidecar = found.self_container.clone().ok_or_else(|| {
        anyhow!("restore must run inside the sidecar container: use `docker compose exec backup stackshot restore …`")
    })?;
    if mutate {
        worker::remove_leftovers(&ctx.engine, &found.project).await;
        let recovered = window::recover(&ctx.engine, &ctx.journal).await?;
        if !recovered.is_empty() {
            tracing::warn!(containers = ?recovered, "started containers an interrupted run had stopped");
        }
    }
    let plan = plan::build(&plan_options(&ctx.config, &found), &found.containers);
    let runs = catalog::list_here(&ctx.restic, &found, &plan.host).await?;
    Ok(Scene {
        found,
        sidecar,
        plan,
        runs,
    })
}

/// Streams `path` of snapshot `id` out of the repository into `sink` (or just
/// hashes it when `sink` is `None`); returns (bytes, sha256 hex).
pub(crate) async fn stream_file(
    ctx: &Context,
    id: &str,
    path: &str,
    mut sink: Option<&mut (dyn tokio::io::AsyncWrite + Send + Unpin)>,
    mut on_chunk: impl FnMut(&[u8]),
) -> Result<(u64, String)> {
    let mut child = ctx
        .restic
        .command(&["dump", id, path])
        .spawn()
        .context("cannot run restic dump")?;
    let mut out = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = out.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        on_chunk(&buf[..n]);
        bytes += n as u64;
        if let Some(s) = sink.as_mut() {
            s.write_all(&buf[..n])
                .await
                .context("writing into the database container")?;
        }
    }
    let status = child.wait().await?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        bail!(
            "restic dump {path} from snapshot {id} failed: {}",
            ctx.restic.redact(last)
        );
    }
    Ok((bytes, crate::dumps::hex(&hasher.finalize())))
}

pub(crate) async fn small_file(ctx: &Context, id: &str, path: &str) -> Option<String> {
    let out = ctx.restic.run(&["dump", id, path]).await.ok()?;
    Some(out)
}

/// Parses `SHA256SUMS` into relative path → hash.
pub fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, p)| (p.trim().to_string(), h.trim().to_string()))
        .collect()
}

/// The major version to compare: PostgreSQL's first number, MariaDB/MySQL's first two.
pub fn major(engine: DbEngine, version: &str) -> Option<(u32, u32)> {
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse::<u32>().ok());
    let a = nums.next()?;
    Some(match engine {
        // One file format across SQLite 3 versions: any copy opens.
        DbEngine::Sqlite => return None,
        DbEngine::Postgres => (a, 0),
        _ => (a, nums.next().unwrap_or(0)),
    })
}

pub mod all;
pub mod check;
pub mod created;
pub mod database;
pub mod drill;
pub mod place;
pub mod redis;
pub mod sqlite;
pub mod verify;
pub mod volumes;
pub use all::all;
pub use check::DatabaseOptions;
use check::DumpFile;
use check::{Checked, check_dump, target};
pub use database::database;
use database::{dump_files, load_dump, wait_ready};
pub use drill::drill;
pub use verify::verify;
pub use volumes::{VolumeOptions, volumes};

#[cfg(test)]
mod tests {
    use super::check::engine_hint;
    use super::database::{load_argv, pg_create_database, pg_drop_database, statement_argv};
    use super::*;

    #[test]
    fn sums_parse_like_sha256sum_writes_them() {
        let s = parse_sums("abc  postgres/postgres-all.sql\ndef  mariadb/shop.sql\n");
        assert_eq!(s["postgres/postgres-all.sql"], "abc");
        assert_eq!(s.len(), 2);
    }

    fn psql() -> Vec<String> {
        ["/bin/psql", "-U", "app", "-w", "-h", "127.0.0.1", "-X"]
            .map(String::from)
            .to_vec()
    }

    /// The database of each PostgreSQL statement and load is a
    /// connection-string value: a name with `host=` connects nowhere else.
    #[test]
    fn restore_commands_name_the_database_as_a_conninfo_value() {
        let evil = "host=evil.example port=5432";
        let argv = statement_argv(DbEngine::Postgres, &psql(), evil, "SELECT 1".into());
        assert_eq!(
            argv[psql().len()..],
            [
                "-d",
                "dbname='host=evil.example port=5432'",
                "-c",
                "SELECT 1"
            ]
        );
        assert_eq!(
            load_argv(DbEngine::Postgres, &psql(), Some("it's \\ my db"))[psql().len()..],
            [
                "-q",
                "-v",
                "ON_ERROR_STOP=0",
                "-d",
                r"dbname='it\'s \\ my db'"
            ]
        );
        assert_eq!(
            load_argv(DbEngine::Postgres, &psql(), None)[psql().len()..],
            ["-q", "-v", "ON_ERROR_STOP=0", "-d", "dbname='postgres'"]
        );
        let maria: Vec<String> = vec!["/usr/bin/mariadb".into(), "-u".into(), "root".into()];
        assert_eq!(load_argv(DbEngine::Mariadb, &maria, Some("-x")), maria);
        assert_eq!(
            statement_argv(DbEngine::Mariadb, &maria, "-x", "SELECT 1".into())[3..],
            ["-e", "SELECT 1"]
        );
    }

    /// `--replace` and a per-database restore quote the names they put into
    /// SQL as identifiers.
    #[test]
    fn replace_statements_quote_names_as_identifiers() {
        assert_eq!(
            pg_drop_database("a\"b"),
            "DROP DATABASE IF EXISTS \"a\"\"b\" WITH (FORCE)"
        );
        assert_eq!(
            pg_drop_database("x\" WITH (FORCE); DROP DATABASE \"prod"),
            "DROP DATABASE IF EXISTS \"x\"\" WITH (FORCE); DROP DATABASE \"\"prod\" WITH (FORCE)"
        );
        assert_eq!(
            pg_create_database("my db", "o\"wner"),
            "CREATE DATABASE \"my db\" OWNER \"o\"\"wner\""
        );
    }

    #[test]
    fn the_engine_of_a_dump_from_its_manifest_entry_or_name() {
        let entry = serde_json::json!({"engine": "mariadb"});
        assert_eq!(
            engine_hint(Some(&entry), "db/postgres-all.sql"),
            Some(DbEngine::Mariadb)
        );
        assert_eq!(
            engine_hint(None, "db/postgres-all.sql"),
            Some(DbEngine::Postgres)
        );
        assert_eq!(engine_hint(None, "cache/dump.rdb"), Some(DbEngine::Redis));
        assert_eq!(engine_hint(None, "db/shop.sql"), None);
    }

    #[test]
    fn major_versions() {
        assert_eq!(
            major(DbEngine::Postgres, "15.18 (Debian 15.18-0+deb12u1)"),
            Some((15, 0))
        );
        assert_eq!(major(DbEngine::Postgres, "16.2"), Some((16, 0)));
        assert_eq!(
            major(DbEngine::Mariadb, "10.11.18-MariaDB-0+deb12u1"),
            Some((10, 11))
        );
        assert!(
            major(DbEngine::Mariadb, "11.4.2-MariaDB")
                > major(DbEngine::Mariadb, "10.11.18-MariaDB")
        );
        assert_eq!(major(DbEngine::Mysql, "unknown"), None);
    }
}
