//! How many rows each user table holds: estimates read when a backup checks
//! its databases (recorded in `manifest.json`), and exact counts read by the
//! restore drill after it loaded a dump into a throwaway server. The
//! comparison itself is pure ([`compare`]).

use anyhow::{Result, bail};

use super::command::{maria_quote_ident as quote_ident, maria_quote_literal as quote_literal};
use super::{Prepared, query_lines};
use crate::engine::Engine;
use crate::labels::Engine as DbEngine;
pub use crate::report::TableRows;

const MARIA_SYSTEM: &str = "('mysql', 'information_schema', 'performance_schema', 'sys')";

/// Redis: the keys of each logical database (`db0` → keys), exact, from
/// `INFO keyspace`.
async fn redis_keys(engine: &Engine, p: &Prepared) -> Result<TableRows> {
    Ok(parse_keyspace(
        &query_lines(engine, p, None, "INFO keyspace", "read its keyspace").await?,
    ))
}

/// `db0:keys=1000,expires=0,avg_ttl=0` lines → `db0` → 1000. Pure.
pub fn parse_keyspace(lines: &[String]) -> TableRows {
    lines
        .iter()
        .filter_map(|l| {
            let (db, rest) = l.trim().split_once(':')?;
            let keys = rest.split(',').find_map(|kv| kv.strip_prefix("keys="))?;
            Some((db.to_string(), keys.parse().ok()?))
        })
        .filter(|(db, _): &(String, i64)| db.starts_with("db"))
        .collect()
}

/// SQLite: the rows of every table of each file `p` copies, as
/// `<file name>.<table>`.
async fn sqlite_counts(engine: &Engine, p: &Prepared) -> Result<TableRows> {
    let mut out = TableRows::new();
    for job in &p.jobs {
        let Some(path) = job.database.as_deref() else {
            continue;
        };
        let tables = query_lines(
            engine,
            p,
            Some(path),
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
            "list its tables",
        )
        .await?;
        if tables.is_empty() {
            continue;
        }
        let sql = sqlite_count_sql(&tables);
        for (table, rows) in
            parse(&query_lines(engine, p, Some(path), &sql, "count its rows").await?)?
        {
            out.insert(format!("{}.{table}", job.file), rows);
        }
    }
    Ok(out)
}

/// One statement counting the rows of each table: `name<TAB>rows` lines. Pure.
pub fn sqlite_count_sql(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| {
            format!(
                "SELECT '{}', count(*) FROM \"{}\"",
                t.replace('\'', "''"),
                t.replace('"', "\"\"")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The databases `p` dumps: the ones its jobs name, or every one.
async fn databases(engine: &Engine, p: &Prepared) -> Result<Vec<String>> {
    let named: Vec<String> = p.jobs.iter().filter_map(|j| j.database.clone()).collect();
    if !named.is_empty() && p.jobs.iter().all(|j| j.database.is_some()) {
        return Ok(named);
    }
    let sql = match p.plan.engine {
        DbEngine::Postgres => {
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1"
                .to_string()
        }
        _ => format!(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN {MARIA_SYSTEM} ORDER BY 1"
        ),
    };
    query_lines(engine, p, None, &sql, "list its databases").await
}

/// Runs `sql` in each PostgreSQL database of `dbs` and gathers its `table|rows` lines.
async fn per_pg_database(
    engine: &Engine,
    p: &Prepared,
    dbs: &[String],
    sql: &str,
    what: &str,
) -> Result<TableRows> {
    let mut out = TableRows::new();
    for db in dbs {
        out.extend(parse(&query_lines(engine, p, Some(db), sql, what).await?)?);
    }
    Ok(out)
}

/// `'a', 'b'` for an SQL `IN (…)` of MariaDB schemas; `None` when there are none.
fn schema_list(dbs: &[String]) -> Option<String> {
    (!dbs.is_empty()).then(|| {
        dbs.iter()
            .map(|d| quote_literal(d))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn parse(lines: &[String]) -> Result<TableRows> {
    let mut out = TableRows::new();
    for l in lines {
        let Some((name, rows)) = l.rsplit_once(['\t', '|']) else {
            bail!("unexpected row count line {l:?}");
        };
        let rows = rows.trim().parse::<i64>().unwrap_or(0);
        out.insert(name.to_string(), rows);
    }
    Ok(out)
}

/// The server's own row estimates (PostgreSQL's `n_live_tup`, InnoDB's
/// `table_rows`): cheap, read no table.
pub async fn estimates(engine: &Engine, p: &Prepared) -> Result<TableRows> {
    match p.plan.engine {
        DbEngine::Redis => return redis_keys(engine, p).await,
        // Counting would read every table at each backup: the drill checks
        // the load and its integrity alone.
        DbEngine::Sqlite => return Ok(TableRows::new()),
        _ => {}
    }
    let dbs = databases(engine, p).await?;
    match p.plan.engine {
        DbEngine::Postgres => {
            per_pg_database(
                engine,
                p,
                &dbs,
                "SELECT current_database() || '.' || schemaname || '.' || relname, n_live_tup FROM pg_stat_user_tables",
                "read its row estimates",
            )
            .await
        }
        _ => {
            let Some(list) = schema_list(&dbs) else {
                return Ok(TableRows::new());
            };
            let sql = format!(
                "SELECT CONCAT(table_schema, '.', table_name), COALESCE(table_rows, 0) FROM information_schema.tables \
                 WHERE table_type = 'BASE TABLE' AND table_schema IN ({list})"
            );
            parse(&query_lines(engine, p, None, &sql, "read its row estimates").await?)
        }
    }
}

/// Exact row counts of every user table (the drill's throwaway server: it
/// reads every table once, as the load just wrote them).
pub async fn counts(engine: &Engine, p: &Prepared) -> Result<TableRows> {
    match p.plan.engine {
        DbEngine::Redis => return redis_keys(engine, p).await,
        DbEngine::Sqlite => return sqlite_counts(engine, p).await,
        _ => {}
    }
    let dbs = databases(engine, p).await?;
    match p.plan.engine {
        DbEngine::Postgres => {
            per_pg_database(
                engine,
                p,
                &dbs,
                "SELECT current_database() || '.' || table_schema || '.' || table_name, \
                 (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint \
                 FROM information_schema.tables WHERE table_type = 'BASE TABLE' \
                 AND table_schema NOT IN ('pg_catalog', 'information_schema')",
                "count its rows",
            )
            .await
        }
        _ => {
            let Some(list) = schema_list(&dbs) else {
                return Ok(TableRows::new());
            };
            let tables = query_lines(
                engine,
                p,
                None,
                &format!(
                    "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables \
                     WHERE table_type = 'BASE TABLE' AND table_schema IN ({list}) ORDER BY 1"
                ),
                "list its tables",
            )
            .await?;
            if tables.is_empty() {
                return Ok(TableRows::new());
            }
            let sql = tables
                .iter()
                .map(|t| {
                    let (db, table) = t.split_once('.').unwrap_or(("", t));
                    format!(
                        "SELECT {}, COUNT(*) FROM {}.{}",
                        quote_literal(t),
                        quote_ident(db),
                        quote_ident(table)
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            parse(&query_lines(engine, p, None, &sql, "count its rows").await?)
        }
    }
}

/// What a drill found when it compared a loaded dump with the manifest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// How many tables were compared.
    pub tables: usize,
    /// Rows loaded, in all.
    pub rows: i64,
    /// What is wrong: a table missing, or far fewer or more rows than estimated.
    pub problems: Vec<String>,
    /// What is worth saying but not wrong (a table that was not in the estimates).
    pub notes: Vec<String>,
}

/// Whether `loaded` rows are plausible for an estimate of `estimated`.
/// Estimates are estimates (InnoDB's are often off by a third; PostgreSQL's
/// lag behind the last writes), so the check catches what a damaged or
/// truncated load looks like: an empty table that held rows, or a count off
/// by more than half (or double) plus a margin for the writes around the pin.
pub fn plausible(estimated: i64, loaded: i64) -> bool {
    if estimated <= 0 {
        return true;
    }
    let margin = 100;
    loaded > 0 && loaded * 2 + margin >= estimated && loaded <= estimated * 2 + margin
}

/// Compares the tables a drill loaded with the ones recorded at backup time.
pub fn compare(expected: &TableRows, loaded: &TableRows) -> Comparison {
    let mut c = Comparison {
        tables: loaded.len(),
        rows: loaded.values().sum(),
        ..Default::default()
    };
    for (table, &est) in expected {
        match loaded.get(table) {
            None => c.problems.push(format!(
                "table {table} is missing (it had about {est} rows)"
            )),
            Some(&got) if !plausible(est, got) => c.problems.push(format!(
                "table {table}: {got} rows loaded, about {est} at backup time"
            )),
            Some(_) => {}
        }
    }
    let extra: Vec<&str> = loaded
        .keys()
        .filter(|t| !expected.contains_key(*t))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        c.notes.push(format!(
            "not in the backup-time estimates (created since?): {}",
            extra.join(", ")
        ));
    }
    c
}

/// Compares the tables a drill loaded with the rows counted in the dump as
/// it was written (`exact`): each table must hold exactly its rows. A table
/// the dump held no rows of (MariaDB writes nothing for an empty one) but
/// that the backup's `estimated` tables name must exist.
pub fn compare_exact(
    exact: &TableRows,
    estimated: Option<&TableRows>,
    loaded: &TableRows,
) -> Comparison {
    let mut c = Comparison {
        tables: loaded.len(),
        rows: loaded.values().sum(),
        ..Default::default()
    };
    for (table, &want) in exact {
        match loaded.get(table) {
            None => c.problems.push(format!(
                "table {table} is missing (the dump held {want} rows)"
            )),
            Some(&got) if got != want => c.problems.push(format!(
                "table {table}: {got} rows loaded, {want} in the dump"
            )),
            Some(_) => {}
        }
    }
    let empty = TableRows::new();
    let estimated = estimated.unwrap_or(&empty);
    for table in estimated.keys() {
        if !exact.contains_key(table) && !loaded.contains_key(table) {
            c.problems
                .push(format!("table {table} is missing (the dump held no rows)"));
        }
    }
    let extra: Vec<&str> = loaded
        .keys()
        .filter(|t| !exact.contains_key(*t) && !estimated.contains_key(*t))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        c.notes.push(format!(
            "not in the backup's tables (created since?): {}",
            extra.join(", ")
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(&str, i64)]) -> TableRows {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn sqlite_counts_every_table_in_one_statement_whatever_its_name() {
        let t = vec!["items".to_string(), "it's \"odd\"".to_string()];
        assert_eq!(
            sqlite_count_sql(&t),
            "SELECT 'items', count(*) FROM \"items\" UNION ALL SELECT 'it''s \"odd\"', count(*) FROM \"it's \"\"odd\"\"\""
        );
    }

    #[test]
    fn redis_keyspace() {
        let lines: Vec<String> = [
            "# Keyspace",
            "db0:keys=1000,expires=2,avg_ttl=0",
            "db3:keys=7,expires=0,avg_ttl=0",
            "garbage",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(parse_keyspace(&lines), rows(&[("db0", 1000), ("db3", 7)]));
        assert!(parse_keyspace(&["# Keyspace".to_string()]).is_empty());
    }

    #[test]
    fn counts_parse_from_psql_and_mariadb_output() {
        let psql = [
            "appdb.public.customers|3".to_string(),
            "appdb.public.big|300000".into(),
        ];
        assert_eq!(
            parse(&psql).unwrap(),
            rows(&[("appdb.public.customers", 3), ("appdb.public.big", 300000)])
        );
        let maria = ["shop.orders\t12".to_string()];
        assert_eq!(parse(&maria).unwrap(), rows(&[("shop.orders", 12)]));
        assert!(parse(&["no count".to_string()]).is_err());
    }

    #[test]
    fn estimates_are_checked_loosely_but_an_empty_or_truncated_table_is_caught() {
        assert!(plausible(0, 0) && plausible(-1, 5) && plausible(3, 3));
        assert!(
            plausible(1000, 700) && plausible(1000, 1800),
            "estimates drift"
        );
        assert!(plausible(50, 120), "small tables get a margin");
        assert!(!plausible(1000, 0), "an empty table that held rows");
        assert!(!plausible(300_000, 100_000), "a truncated load");
        assert!(!plausible(1000, 5000));
    }

    #[test]
    fn exact_counts_hold_whatever_the_estimates_said() {
        // InnoDB estimated 158 rows of a table bulk-filled before the backup.
        let estimated = rows(&[("shop.bulk", 158), ("shop.empty", 0)]);
        let exact = rows(&[("shop.bulk", 50_000)]);
        let loaded = rows(&[("shop.bulk", 50_000), ("shop.empty", 0)]);
        assert!(
            !compare(&estimated, &loaded).problems.is_empty(),
            "the old check cries wolf"
        );
        let c = compare_exact(&exact, Some(&estimated), &loaded);
        assert!(c.problems.is_empty() && c.notes.is_empty(), "{c:?}");
        assert_eq!((c.tables, c.rows), (2, 50_000));
    }

    #[test]
    fn an_empty_or_truncated_load_fails_an_exact_comparison() {
        let exact = rows(&[("app.public.customers", 1000), ("app.public.t", 3)]);
        let empty = rows(&[("app.public.customers", 0), ("app.public.t", 3)]);
        assert_eq!(
            compare_exact(&exact, None, &empty).problems,
            ["table app.public.customers: 0 rows loaded, 1000 in the dump"]
        );
        // Half the rows would pass a comparison with estimates.
        let half = rows(&[("app.public.customers", 500), ("app.public.t", 3)]);
        assert!(compare(&exact, &half).problems.is_empty());
        assert_eq!(
            compare_exact(&exact, None, &half).problems,
            ["table app.public.customers: 500 rows loaded, 1000 in the dump"]
        );
        let one_more = rows(&[("app.public.customers", 1000), ("app.public.t", 4)]);
        assert_eq!(
            compare_exact(&exact, None, &one_more).problems,
            ["table app.public.t: 4 rows loaded, 3 in the dump"]
        );
        // A table gone, one with no rows in the dump gone, one new.
        let estimated = rows(&[("app.public.customers", 990), ("app.public.none", 0)]);
        let c = compare_exact(
            &exact,
            Some(&estimated),
            &rows(&[("app.public.customers", 1000), ("app.public.new", 1)]),
        );
        assert_eq!(
            c.problems,
            [
                "table app.public.t is missing (the dump held 3 rows)",
                "table app.public.none is missing (the dump held no rows)"
            ]
        );
        assert_eq!(
            c.notes,
            ["not in the backup's tables (created since?): app.public.new"]
        );
    }

    #[test]
    fn a_missing_table_or_implausible_count_is_a_problem_an_extra_table_a_note() {
        let expected = rows(&[("shop.orders", 1000), ("shop.items", 10), ("shop.empty", 0)]);
        let good = rows(&[("shop.orders", 1003), ("shop.items", 10), ("shop.empty", 0)]);
        let c = compare(&expected, &good);
        assert!(c.problems.is_empty() && c.notes.is_empty(), "{c:?}");
        assert_eq!((c.tables, c.rows), (3, 1013));

        let bad = rows(&[("shop.orders", 0), ("shop.empty", 0), ("shop.new", 1)]);
        let c = compare(&expected, &bad);
        assert_eq!(
            c.problems,
            [
                "table shop.items is missing (it had about 10 rows)",
                "table shop.orders: 0 rows loaded, about 1000 at backup time"
            ]
        );
        assert_eq!(
            c.notes,
            ["not in the backup-time estimates (created since?): shop.new"]
        );
    }
}
