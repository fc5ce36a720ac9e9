//! The dump files on disk: each written whole or not at all through a
//! `.partial` file ([`write_whole`]), the `SHA256SUMS` and `manifest.json`
//! beside them ([`write_sums`]), the directory emptied of an earlier run's
//! files ([`clear_dir`]), and a full disk told apart from other failures
//! ([`is_out_of_space`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufWriter};

use super::{DumpResult, Prepared, stats};
use crate::labels::Engine as DbEngine;

/// Writes the file `dir/name` whole or not at all: `fill` writes into a
/// buffered `dir/name.partial`, which is synced and renamed into place only
/// when `fill` and the sync succeeded, and removed otherwise (the error says
/// so). Returns the final path and what `fill` returned. Every dump file is
/// written through here, so a snapshot never holds half a dump.
pub async fn write_whole<T>(
    dir: &Path,
    name: &str,
    fill: impl AsyncFnOnce(&mut BufWriter<tokio::fs::File>) -> Result<T>,
) -> Result<(PathBuf, T)> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut sink = BufWriter::with_capacity(1 << 20, file);
    let filled = match fill(&mut sink).await {
        Ok(v) => sink.flush().await.context("cannot write it").map(|()| v),
        Err(e) => Err(e),
    };
    let file = sink.into_inner();
    let synced = match filled {
        Ok(v) => file.sync_all().await.context("cannot sync it").map(|()| v),
        Err(e) => Err(e),
    };
    drop(file);
    let value = match synced {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e.context(format!("dump {} (removed)", path.display())));
        }
    };
    tokio::fs::rename(&partial, &path)
        .await
        .with_context(|| format!("cannot rename {} into place", partial.display()))?;
    Ok((path, value))
}

/// True when `e` comes from a full disk or an exhausted quota: a dump that
/// a second attempt in the same place cannot fix.
pub fn is_out_of_space(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        })
    })
}

/// The `manifest.json` beside the dumps.
#[derive(Debug, Serialize)]
struct Manifest<'a> {
    created: String,
    dumps: &'a [DumpResult],
    /// Service → table → rows (estimates) when the databases were checked.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tables: BTreeMap<&'a str, &'a stats::TableRows>,
    /// Service → table → rows counted in its dumps as they were written
    /// (exact), for each service all of whose dumps were counted.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    rows: BTreeMap<&'a str, stats::TableRows>,
    /// Dumps whose stream did not end as a whole dump does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cut_short: Vec<&'a str>,
}

/// The databases (`engine`) whose tables the drill does not count: MariaDB's
/// system schemas, PostgreSQL's templates.
fn not_counted(engine: DbEngine, db: &str) -> bool {
    match engine {
        DbEngine::Postgres => matches!(db, "template0" | "template1"),
        _ => matches!(
            db,
            "mysql" | "information_schema" | "performance_schema" | "sys"
        ),
    }
}

/// The counted rows of each service (see [`Manifest`]), and the dumps cut
/// short. Pure.
fn counted_rows(results: &[DumpResult]) -> (BTreeMap<&str, stats::TableRows>, Vec<&str>) {
    let mut rows: BTreeMap<&str, stats::TableRows> = BTreeMap::new();
    let mut uncounted = Vec::new();
    let mut cut_short = Vec::new();
    for r in results {
        let Some(c) = &r.counted else {
            uncounted.push(r.service.as_str());
            continue;
        };
        if !c.complete {
            cut_short.push(r.file.as_str());
        }
        let of = rows.entry(&r.service).or_default();
        for (table, n) in &c.tables {
            let db = table.split('.').next().unwrap_or_default();
            if !not_counted(r.engine, db) {
                *of.entry(table.clone()).or_insert(0) += n;
            }
        }
    }
    rows.retain(|service, _| !uncounted.contains(service));
    cut_short.sort();
    (rows, cut_short)
}

/// Writes `SHA256SUMS` (checkable with `sha256sum -c` from `/databases`) and
/// `manifest.json` (with the row estimates of `prepared`) into `root`.
pub fn write_sums(root: &Path, results: &[DumpResult], prepared: &[Prepared]) -> Result<()> {
    let mut sorted: Vec<&DumpResult> = results.iter().collect();
    sorted.sort_by(|a, b| a.file.cmp(&b.file));
    let sums: String = sorted
        .iter()
        .map(|r| format!("{}  {}\n", r.sha256, r.file))
        .collect();
    std::fs::write(root.join("SHA256SUMS"), sums).context("cannot write SHA256SUMS")?;
    let (rows, cut_short) = counted_rows(results);
    let manifest = Manifest {
        created: chrono::Utc::now().to_rfc3339(),
        dumps: results,
        rows,
        cut_short,
        tables: prepared
            .iter()
            .filter_map(|p| Some((p.plan.container.service.as_str(), p.estimates.as_ref()?)))
            .collect(),
    };
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .context("cannot write manifest.json")?;
    Ok(())
}

/// Empties `root` (left-overs of an earlier run), keeping the directory.
pub fn clear_dir(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    for entry in
        std::fs::read_dir(root).with_context(|| format!("cannot read {}", root.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::dumps::{hex, rows};

    #[tokio::test]
    async fn a_dump_file_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("postgres");
        let (path, n) = write_whole(&sub, "app.sql", async |w| {
            w.write_all(b"CREATE TABLE t();\n").await?;
            Ok(18)
        })
        .await
        .unwrap();
        assert_eq!(path, sub.join("app.sql"));
        assert_eq!(n, 18);
        assert_eq!(std::fs::read(&path).unwrap(), b"CREATE TABLE t();\n");
        // A failed fill leaves neither the file nor its partial behind.
        let err = write_whole(&sub, "b.sql", async |w| {
            w.write_all(b"half a dump").await?;
            Err::<(), _>(anyhow!("pg_dump exited with 1"))
        })
        .await
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "dump {} (removed): pg_dump exited with 1",
                sub.join("b.sql").display()
            )
        );
        let mut left: Vec<_> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["app.sql"]);
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_dump_failures() {
        use anyhow::Context as _;
        let full: Result<(), _> = Err(std::io::Error::from_raw_os_error(28));
        let e = full.context("service pg: writing the dump").unwrap_err();
        assert!(is_out_of_space(
            &e.context("dump /databases/pg/all.sql (removed)")
        ));
        let quota: Result<(), _> = Err(std::io::Error::from_raw_os_error(122));
        assert!(is_out_of_space(&quota.context("x").unwrap_err()));
        let broken: Result<(), _> = Err(std::io::Error::from_raw_os_error(32));
        assert!(!is_out_of_space(&broken.context("x").unwrap_err()));
        assert!(!is_out_of_space(&anyhow::anyhow!(
            "pg_dump exited with code 1"
        )));
    }

    fn result(file: &str, sha: &str) -> DumpResult {
        DumpResult {
            service: "s".into(),
            engine: DbEngine::Postgres,
            database: None,
            file: file.into(),
            bytes: 3,
            sha256: sha.into(),
            seconds: 0.1,
            server_version: "15".into(),
            integrity_check: None,
            counted: None,
        }
    }

    #[test]
    fn sums_are_sha256sum_compatible() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pg")).unwrap();
        std::fs::write(dir.path().join("pg/postgres-all.sql"), b"abc").unwrap();
        let sha = hex(&Sha256::digest(b"abc"));
        write_sums(dir.path(), &[result("pg/postgres-all.sql", &sha)], &[]).unwrap();
        let sums = std::fs::read_to_string(dir.path().join("SHA256SUMS")).unwrap();
        assert_eq!(sums, format!("{sha}  pg/postgres-all.sql\n"));
        let status = std::process::Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["dumps"][0]["sha256"], sha);
    }

    #[test]
    fn the_manifest_records_counted_rows_of_services_counted_whole() {
        let counted = |tables: &[(&str, i64)], complete: bool| {
            Some(rows::Counted {
                tables: tables.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
                complete,
            })
        };
        let mut maria = result("mariadb/all.sql", "x");
        maria.service = "mariadb".into();
        maria.engine = DbEngine::Mariadb;
        maria.counted = counted(&[("shop.orders", 4), ("mysql.user", 3)], false);
        let mut pg_a = result("pg/a.sql", "x");
        pg_a.counted = counted(&[("a.public.t", 1), ("template1.public.x", 1)], true);
        let mut pg_b = result("pg/b.sql", "x");
        pg_b.counted = counted(&[("b.public.t", 2)], true);
        let mut redis = result("redis/dump.rdb", "x");
        redis.service = "redis".into();
        redis.engine = DbEngine::Redis;
        let results = [maria, pg_a, pg_b, redis];
        let (rows, cut) = counted_rows(&results);
        assert_eq!(
            serde_json::to_value(&rows).unwrap(),
            serde_json::json!({
                "mariadb": {"shop.orders": 4},
                "s": {"a.public.t": 1, "b.public.t": 2},
            })
        );
        assert_eq!(cut, ["mariadb/all.sql"]);
        // A service with a dump that was not counted gets no counts.
        let mut half = result("pg/c.sql", "x");
        half.counted = counted(&[("c.public.t", 1)], true);
        let results = [half, result("pg/d.sql", "x")];
        let (rows, _) = counted_rows(&results);
        assert!(rows.is_empty(), "{rows:?}");
    }

    #[test]
    fn clear_dir_empties_but_keeps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("x"), b"1").unwrap();
        clear_dir(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
