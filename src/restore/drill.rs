//! `stackshot drill`: proves that a run's dumps load. For each database
//! service, a throwaway container from the service's own image and
//! environment (on no network, with fresh volumes) gets the run's dump,
//! checked against `SHA256SUMS` and loaded exactly as `restore database`
//! would; then every user table is counted and compared with the rows
//! `manifest.json` recorded at backup time: exactly with the rows counted in
//! the dump as it was written, or (a run from before those counts) loosely
//! with the server's estimates. The throwaway and its volumes are removed on
//! every path.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use super::{
    DatabaseOptions, DumpFile, Scene, check_dump, dump_files, load_dump, scene, small_file, target,
};
use crate::catalog::{self, Run};
use crate::context::Context;
use crate::dumps::stats::{self, TableRows};
use crate::dumps::{self, DATABASES_DIR, Prepared, query_lines};
use crate::engine::owner::Owner;
use crate::engine::throwaway;
use crate::labels::Engine as DbEngine;
use crate::plan::DumpPlan;

/// How long a throwaway server may take to initialise and serve.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// What the drill found for one database service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceDrill {
    /// The compose service of the database the drill loaded.
    pub service: String,
    /// Dumps loaded (relative to `/databases`).
    pub files: Vec<String>,
    /// User tables in the throwaway after the load.
    pub tables: usize,
    /// The rows in those tables, counted after the load.
    pub rows: i64,
    /// What the counts were compared with.
    pub compared: Compared,
    /// What is wrong; empty when the drill passed.
    pub problems: Vec<String>,
    /// What is worth knowing but not wrong.
    pub notes: Vec<String>,
    /// Seconds, from the throwaway's creation to its removal.
    pub seconds: f64,
}

/// What a drill compared the loaded tables with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compared {
    /// The rows counted in the dump as it was written: each table exactly.
    DumpCounts,
    /// The server's row estimates (a run from before dump counts): loosely.
    Estimates,
    /// Nothing recorded: only the load itself was checked.
    Nothing,
}

impl Compared {
    /// The verdict of a drill that found nothing wrong.
    fn verdict(self) -> &'static str {
        match self {
            Compared::DumpCounts => "every table holds the rows counted in the dump at backup time",
            Compared::Estimates => {
                "every table as estimated at backup time (the run recorded estimates only: compared loosely)"
            }
            Compared::Nothing => "loaded (nothing recorded to compare with)",
        }
    }
}

/// A drill of one run.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The run (its id, or its time for runs without one).
    pub run: String,
    /// One entry per database service.
    pub services: Vec<ServiceDrill>,
}

impl DrillReport {
    /// Every problem, prefixed with its service.
    pub fn problems(&self) -> Vec<String> {
        self.services
            .iter()
            .flat_map(|s| {
                s.problems
                    .iter()
                    .map(move |p| format!("{}: {p}", s.service))
            })
            .collect()
    }

    /// The lines `stackshot drill` prints.
    pub fn render(&self) -> String {
        let mut out = format!("drill of run {}\n", self.run);
        for s in &self.services {
            let verdict = if s.problems.is_empty() {
                s.compared.verdict().to_string()
            } else {
                format!("FAILED: {}", s.problems.join("; "))
            };
            out += &format!(
                "  {}: {} → {} tables, {} rows: {verdict} ({:.1} s)\n",
                s.service,
                if s.files.is_empty() {
                    "-".to_string()
                } else {
                    s.files.join(", ")
                },
                s.tables,
                s.rows,
                s.seconds
            );
            for n in &s.notes {
                out += &format!("    note: {n}\n");
            }
        }
        let problems = self.problems().len();
        out += &if problems == 0 {
            "drill passed: every dump loads into a fresh server of its service\n".to_string()
        } else {
            format!("drill FAILED: {problems} problem(s)\n")
        };
        out
    }
}

/// Drills the run `snapshot` (`latest`, a run id or a snapshot id).
pub async fn drill(ctx: &Context, snapshot: &str) -> Result<DrillReport> {
    let sc = scene(ctx, false).await?;
    if sc.plan.dumps.is_empty() {
        bail!(
            "nothing to drill: no service of this stack is a labelled database (stackshot.postgres=true, stackshot.mariadb=true, …)"
        );
    }
    let run = catalog::resolve(&sc.runs, snapshot)?.clone();
    let owner = Owner::this_process(&sc.sidecar.id);
    let removed = throwaway::remove_leftovers(&ctx.engine, &sc.found.project, &owner).await?;
    if removed > 0 {
        tracing::warn!(
            removed,
            "removed drill containers and volumes an interrupted drill left"
        );
    }
    let mut services = Vec::new();
    for d in &sc.plan.dumps {
        let t = Instant::now();
        let mut s = ServiceDrill {
            service: d.container.service.clone(),
            files: vec![],
            tables: 0,
            rows: 0,
            compared: Compared::Nothing,
            problems: vec![],
            notes: vec![],
            seconds: 0.0,
        };
        if let Err(e) = one(ctx, &sc, &run, d, &owner, &mut s).await {
            s.problems.push(format!("{e:#}"));
        }
        s.seconds = t.elapsed().as_secs_f64();
        tracing::info!(service = %s.service, tables = s.tables, rows = s.rows, problems = s.problems.len(), seconds = s.seconds, "drilled");
        services.push(s);
    }
    Ok(DrillReport {
        run: run.run_id.clone().unwrap_or_else(|| run.time.clone()),
        services,
    })
}

/// One service: its throwaway is removed whatever happened inside.
async fn one(
    ctx: &Context,
    sc: &Scene,
    run: &Run,
    d: &DumpPlan,
    owner: &Owner,
    s: &mut ServiceDrill,
) -> Result<()> {
    let service = &d.container.service;
    let files = dump_files(ctx, run, &sc.plan, service).await?;
    if files.is_empty() {
        bail!("the run holds no dump of {service}");
    }
    s.files = files.iter().map(|f| f.rel.clone()).collect();
    let name = format!(
        "{}-stackshot-drill-{}-{}",
        sc.found.project,
        service.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-"),
        owner.suffix()
    );
    let id = throwaway::start(
        &ctx.engine,
        &d.container.id,
        &name,
        &sc.found.project,
        owner,
    )
    .await?;
    let result = load_and_count(ctx, sc, run, d, &files, &id, s).await;
    throwaway::remove(&ctx.engine, &id).await;
    result
}

async fn load_and_count(
    ctx: &Context,
    sc: &Scene,
    run: &Run,
    d: &DumpPlan,
    files: &[DumpFile],
    id: &str,
    s: &mut ServiceDrill,
) -> Result<()> {
    let opts = |f: &DumpFile| DatabaseOptions {
        snapshot: run.snapshots[0].id.clone(),
        service: d.container.service.clone(),
        database: f.database.clone(),
        target_container: Some(id.to_string()),
        // A file placed into a throwaway replaces what its app may have
        // created on its first start.
        replace: matches!(d.engine, DbEngine::Redis | DbEngine::Sqlite),
    };
    let mut p = serving(ctx, sc, &opts(&files[0]), d.engine, id).await?;
    for f in files {
        let checked = check_dump(ctx, sc, &opts(f), f).await?;
        load_dump(ctx, &checked, false, false).await?;
    }
    // Count what the run's dumps cover, as the backup estimated it.
    p.jobs = dumps::command::dump_jobs(p.plan.engine, &p.tools, &p.login, &d.databases);
    let loaded = stats::counts(&ctx.engine, &p).await?;
    let recorded = recorded(ctx, &files[0], &d.container.service).await;
    for f in files {
        if recorded.cut_short.contains(&f.rel) {
            s.problems.push(format!(
                "{}: the dump's stream did not end as a whole dump does when it was written",
                f.rel
            ));
        }
    }
    let expected = recorded.exact.as_ref().or(recorded.estimates.as_ref());
    // A server the backup found empty (say, a Redis without keys) loads
    // empty. SQLite records no estimates: empty there proves nothing.
    let recorded_empty = d.engine != DbEngine::Sqlite && expected.is_some_and(|e| e.is_empty());
    let c = match (&recorded.exact, &recorded.estimates) {
        (Some(exact), estimates) => {
            s.compared = Compared::DumpCounts;
            Some(stats::compare_exact(exact, estimates.as_ref(), &loaded))
        }
        (None, Some(_)) if d.engine == DbEngine::Sqlite => {
            s.notes.push(
                "no row counts are recorded for SQLite: its integrity check and its load were checked"
                    .into(),
            );
            None
        }
        (None, Some(estimates)) => {
            s.compared = Compared::Estimates;
            Some(stats::compare(estimates, &loaded))
        }
        (None, None) => {
            s.notes.push(
                "manifest.json has no row counts (a run from before drills, or split mode): only the load itself was checked"
                    .into(),
            );
            None
        }
    };
    if let Some(c) = c {
        s.problems.extend(c.problems);
        s.notes.extend(c.notes);
    }
    s.tables = loaded.len();
    s.rows = loaded.values().sum();
    if loaded.is_empty() {
        if recorded_empty {
            s.notes
                .push("empty, as the backup found it: nothing to count".into());
        } else {
            s.problems.push("the load left no user table".into());
        }
    }
    Ok(())
}

/// What the run's `manifest.json` recorded of one service.
#[derive(Debug, Default, PartialEq)]
struct Recorded {
    /// The rows counted in its dumps as they were written.
    exact: Option<TableRows>,
    /// The server's row estimates.
    estimates: Option<TableRows>,
    /// Dumps (of any service) whose stream did not end as a whole dump does.
    cut_short: Vec<String>,
}

/// What `manifest` records of `service`. Pure.
fn parse_recorded(manifest: &str, service: &str) -> Recorded {
    let Ok(m) = serde_json::from_str::<serde_json::Value>(manifest) else {
        return Recorded::default();
    };
    Recorded {
        exact: serde_json::from_value(m["rows"][service].clone()).ok(),
        estimates: serde_json::from_value(m["tables"][service].clone()).ok(),
        cut_short: serde_json::from_value(m["cut_short"].clone()).unwrap_or_default(),
    }
}

/// What the run's `manifest.json` records of `service`.
async fn recorded(ctx: &Context, file: &DumpFile, service: &str) -> Recorded {
    small_file(
        ctx,
        &file.snap.id,
        &format!("{DATABASES_DIR}/manifest.json"),
    )
    .await
    .map(|text| parse_recorded(&text, service))
    .unwrap_or_default()
}

/// Waits until the throwaway's server is the real one, not the temporary
/// server an image's entrypoint runs while it initialises (PostgreSQL's
/// listens on no address, MariaDB's skips networking).
async fn serving(
    ctx: &Context,
    sc: &Scene,
    opts: &DatabaseOptions,
    engine: DbEngine,
    id: &str,
) -> Result<Prepared> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    let mut prepared: Option<Prepared> = None;
    while started.elapsed() < START_TIMEOUT {
        if !ctx.engine.is_running(id).await? {
            bail!(
                "the drill container stopped while it initialised (see `docker logs` of a drill run by hand)"
            );
        }
        // The container, its credentials and tools are checked once; then
        // only the question whether the real server serves is repeated.
        if prepared.is_none() {
            match target(ctx, sc, opts, Some(engine)).await {
                Ok(p) => prepared = Some(p),
                Err(e) => last = format!("{e:#}"),
            }
        }
        if let Some(p) = &prepared {
            let sql = match engine {
                DbEngine::Postgres => "SHOW listen_addresses",
                DbEngine::Redis => "PING",
                DbEngine::Sqlite => "SELECT 1",
                _ => "SELECT @@skip_networking",
            };
            match query_lines(&ctx.engine, p, None, sql, "ask whether it serves").await {
                Ok(lines) if serves(engine, &lines) => return Ok(p.clone()),
                Ok(lines) => last = format!("still initialising ({sql}: {lines:?})"),
                Err(e) => last = format!("{e:#}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "the drill container did not serve within {} s: {last}",
        START_TIMEOUT.as_secs()
    )
}

fn serves(engine: DbEngine, lines: &[String]) -> bool {
    match engine {
        DbEngine::Postgres => lines.first().is_some_and(|l| !l.trim().is_empty()),
        DbEngine::Redis => lines.first().is_some_and(|l| l.trim() == "PONG"),
        DbEngine::Sqlite => lines.first().is_some_and(|l| l.trim() == "1"),
        _ => lines.first().is_some_and(|l| l.trim() == "0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_init_server_is_not_serving() {
        let l = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(!serves(DbEngine::Postgres, &l(&[])));
        assert!(serves(DbEngine::Postgres, &l(&["*"])));
        assert!(!serves(DbEngine::Mariadb, &l(&["1"])));
        assert!(serves(DbEngine::Mariadb, &l(&["0"])));
        assert!(serves(DbEngine::Redis, &l(&["PONG"])));
        assert!(!serves(
            DbEngine::Redis,
            &l(&["LOADING Redis is loading the dataset in memory"])
        ));
    }

    #[test]
    fn the_report_names_each_problem_and_its_service() {
        let r = DrillReport {
            run: "20261123T010000Z".into(),
            services: vec![
                ServiceDrill {
                    service: "postgres".into(),
                    files: vec!["postgres/postgres-all.sql".into()],
                    tables: 3,
                    rows: 10,
                    compared: Compared::DumpCounts,
                    problems: vec![],
                    notes: vec![],
                    seconds: 1.0,
                },
                ServiceDrill {
                    service: "mariadb".into(),
                    files: vec!["mariadb/shop.sql".into()],
                    tables: 0,
                    rows: 0,
                    compared: Compared::Nothing,
                    problems: vec![
                        "refusing to restore mariadb/shop.sql: the dump is damaged".into(),
                    ],
                    notes: vec![],
                    seconds: 1.0,
                },
            ],
        };
        assert_eq!(
            r.problems(),
            ["mariadb: refusing to restore mariadb/shop.sql: the dump is damaged"]
        );
        let text = r.render();
        assert!(
            text.contains(
                "postgres: postgres/postgres-all.sql → 3 tables, 10 rows: every table holds the rows counted in the dump"
            ),
            "{text}"
        );
        assert!(text.contains("drill FAILED: 1 problem(s)"), "{text}");
    }

    #[test]
    fn the_manifest_says_what_to_compare_with() {
        let new = r#"{"dumps": [], "tables": {"db": {"shop.t": 158}},
            "rows": {"db": {"shop.t": 50000}}, "cut_short": ["db/shop.sql"]}"#;
        let r = parse_recorded(new, "db");
        assert_eq!(
            r.exact,
            Some(TableRows::from([("shop.t".to_string(), 50000)]))
        );
        assert_eq!(
            r.estimates,
            Some(TableRows::from([("shop.t".to_string(), 158)]))
        );
        assert_eq!(r.cut_short, ["db/shop.sql"]);
        // A run from before the counts: estimates only.
        let old = r#"{"dumps": [], "tables": {"db": {"shop.t": 158}}}"#;
        let r = parse_recorded(old, "db");
        assert_eq!((r.exact, r.cut_short.len()), (None, 0));
        assert!(r.estimates.is_some());
        assert_eq!(parse_recorded("{", "db"), Recorded::default());
        assert_eq!(parse_recorded(new, "other").exact, None);
    }
}
