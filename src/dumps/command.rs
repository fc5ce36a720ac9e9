//! Dump and probe commands per engine. Pure: argv and environment only, and
//! never a secret in argv.

use crate::env::Secret;
use crate::labels::{Engine, REDIS_DEFAULT_USER};
use crate::layout::{REDIS_DUMP, sqlite_file_name};

/// Credentials resolved for one database container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name the dump connects as (empty for SQLite).
    pub user: String,
    /// The password, if one was found; commands get it in their environment, never in argv.
    pub password: Option<Secret>,
}

/// The client tools found in a database container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// `pg_dumpall` / `mariadb-dump` / `mysqldump` (the all-databases tool).
    pub dump_all: String,
    /// `pg_dump` / `mariadb-dump` / `mysqldump` (per database).
    pub dump_one: String,
    /// `psql` / `mariadb` / `mysql`.
    pub client: String,
}

/// The tools to look for, in order of preference: (dump-all, dump-one, client) candidates.
pub fn tool_candidates(engine: Engine) -> [&'static [&'static str]; 3] {
    match engine {
        Engine::Postgres => [&["pg_dumpall"], &["pg_dump"], &["psql"]],
        Engine::Mariadb | Engine::Mysql => [
            &["mariadb-dump", "mysqldump"],
            &["mariadb-dump", "mysqldump"],
            &["mariadb", "mysql"],
        ],
        Engine::Redis => [&["redis-cli"], &["redis-cli"], &["redis-cli"]],
        Engine::Sqlite => [&["sqlite3"], &["sqlite3"], &["sqlite3"]],
    }
}

/// A shell probe printing the path of every candidate tool present.
pub fn probe_tools(engine: Engine) -> Vec<String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        r#"for t in "$@"; do command -v "$t" || true; done"#.to_string(),
        "sh".to_string(),
    ];
    let mut names: Vec<&str> = tool_candidates(engine)
        .iter()
        .flat_map(|c| c.iter().copied())
        .collect();
    names.dedup();
    argv.extend(names.into_iter().map(str::to_string));
    argv
}

/// Picks the tools from the probe's output (one path a line).
pub fn pick_tools(engine: Engine, probe_output: &str) -> Result<Tools, String> {
    let found: Vec<&str> = probe_output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let pick = |candidates: &[&str]| -> Option<String> {
        candidates.iter().find_map(|c| {
            found
                .iter()
                .find(|p| p.rsplit('/').next() == Some(*c))
                .map(|p| p.to_string())
        })
    };
    let [all, one, client] = tool_candidates(engine);
    match (pick(all), pick(one), pick(client)) {
        (Some(dump_all), Some(dump_one), Some(client)) => Ok(Tools {
            dump_all,
            dump_one,
            client,
        }),
        _ => Err(format!(
            "needs {} in the container, found {}",
            [all, one, client]
                .iter()
                .map(|c| c.join(" or "))
                .collect::<Vec<_>>()
                .join(", "),
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        )),
    }
}

/// How to reach PostgreSQL: with a password, over TCP on loopback inside the
/// container (where the official image checks passwords); without, the socket.
fn pg_conn(login: &Login) -> Vec<String> {
    let mut v = vec!["-U".to_string(), login.user.clone(), "-w".to_string()];
    if login.password.is_some() {
        v.extend(["-h".to_string(), "127.0.0.1".to_string()]);
    }
    v
}

/// A database name as a libpq connection string, `dbname='<name>'`: what
/// every PostgreSQL client gets after `-d`. libpq reads a bare `-d` value
/// holding `=` or starting with `postgresql://`/`postgres://` as a
/// connection string whose `host=` would override the `-h` given before it;
/// a connection string naming only `dbname` changes nothing else. Quoted as
/// libpq's conninfo reader expects: in single quotes, `\` and `'` escaped
/// with a backslash.
pub fn pg_conninfo_dbname(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 10);
    s.push_str("dbname='");
    for c in name.chars() {
        if matches!(c, '\\' | '\'') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// `-d dbname='<name>'`: how a PostgreSQL client is told its database (see
/// [`pg_conninfo_dbname`]).
pub fn pg_database_args(name: &str) -> [String; 2] {
    ["-d".to_string(), pg_conninfo_dbname(name)]
}

/// A PostgreSQL identifier quoted for SQL text: `"name"`, double quotes doubled.
pub fn pg_quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A MariaDB/MySQL string literal: `'text'`, with `\` and `'` escaped.
pub fn maria_quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A MariaDB/MySQL identifier: `` `name` ``, backquotes doubled.
pub fn maria_quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// The environment carrying the password.
pub fn login_env(engine: Engine, login: &Login) -> Vec<(String, Secret)> {
    let var = match engine {
        Engine::Postgres => "PGPASSWORD",
        Engine::Mariadb | Engine::Mysql => "MYSQL_PWD",
        Engine::Redis => "REDISCLI_AUTH",
        Engine::Sqlite => return vec![],
    };
    login
        .password
        .iter()
        .map(|p| (var.to_string(), p.clone()))
        .collect()
}

/// The interactive client, connected as `login` (no database, no statement):
/// `psql -U user -w [-h 127.0.0.1] -X` or `mariadb -u user`. Reads SQL on stdin.
pub fn client(engine: Engine, tools: &Tools, login: &Login) -> Vec<String> {
    let mut v = vec![tools.client.clone()];
    match engine {
        Engine::Postgres => {
            v.extend(pg_conn(login));
            v.push("-X".into());
        }
        Engine::Mariadb | Engine::Mysql => v.extend(["-u".to_string(), login.user.clone()]),
        Engine::Redis => {
            if login.user != REDIS_DEFAULT_USER {
                v.extend(["--user".to_string(), login.user.clone()]);
            }
        }
        Engine::Sqlite => v.push("-batch".into()),
    }
    v
}

/// The server version in a version query's output: the output itself, or
/// for Redis the `redis_version:` line of `INFO server`. `None` when it is
/// not there (Redis answers an authentication error with exit code 0).
pub fn server_version(engine: Engine, stdout: &str) -> Option<String> {
    match engine {
        Engine::Redis => stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("redis_version:"))
            .map(|v| v.trim().to_string()),
        // `3.40.1 2022-12-28 14:03:47 df5c…`
        Engine::Sqlite => stdout.split_whitespace().next().map(str::to_string),
        _ => Some(stdout.trim().to_string()),
    }
}

/// A query whose rows come back bare (no headers, tab-separated), in
/// `database` (PostgreSQL: default `postgres`).
pub fn query(
    engine: Engine,
    tools: &Tools,
    login: &Login,
    database: Option<&str>,
    sql: &str,
) -> Vec<String> {
    let mut v = client(engine, tools, login);
    match engine {
        Engine::Postgres => {
            v.extend(["-A", "-t"].map(String::from));
            v.extend(pg_database_args(database.unwrap_or("postgres")));
            v.extend(["-c".to_string(), sql.to_string()]);
        }
        Engine::Mariadb | Engine::Mysql => {
            v.extend(["-N".to_string(), "-B".to_string()]);
            // An option with its value attached: a name starting with `-`
            // is never read as another option.
            v.extend(database.map(|d| format!("--database={d}")));
            v.extend(["-e".to_string(), sql.to_string()]);
        }
        // A Redis command, its words as arguments (`database`: a db number).
        Engine::Redis => {
            if let Some(db) = database {
                v.extend(["-n".to_string(), db.to_string()]);
            }
            v.extend(sql.split_whitespace().map(str::to_string));
        }
        // `database`: the file, opened read-only (none: an in-memory one).
        // The app may hold a write lock a moment (a restored file is checked
        // with the app running again): wait for it as the online copy does,
        // rather than fail with "database is locked".
        Engine::Sqlite => {
            v.extend(["-readonly", "-cmd", ".timeout 60000", "-separator", "\t"].map(String::from));
            v.push(database.unwrap_or(":memory:").to_string());
            v.push(sql.to_string());
        }
    }
    v
}

/// A query printing the server version: checks the credentials too.
pub fn version_query(engine: Engine, tools: &Tools, login: &Login) -> Vec<String> {
    let sql = match engine {
        Engine::Postgres => "SHOW server_version",
        Engine::Mariadb | Engine::Mysql => "SELECT VERSION()",
        Engine::Redis => "INFO server",
        Engine::Sqlite => return vec![tools.client.clone(), "-version".into()],
    };
    query(engine, tools, login, None, sql)
}

/// One dump: the file it writes (relative to the service's dump directory) and its argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpJob {
    /// Database name, or `None` for all of them.
    pub database: Option<String>,
    /// The file it writes, relative to the service's dump directory.
    pub file: String,
    /// The command line run in the database container, with no secret in it.
    pub argv: Vec<String>,
}

/// The dumps for one database container.
pub fn dump_jobs(
    engine: Engine,
    tools: &Tools,
    login: &Login,
    databases: &[String],
) -> Vec<DumpJob> {
    let maria_common = |tool: &str| -> Vec<String> {
        vec![
            tool.to_string(),
            "-u".into(),
            login.user.clone(),
            "--single-transaction".into(),
            "--routines".into(),
            "--events".into(),
            "--triggers".into(),
        ]
    };
    if engine == Engine::Sqlite {
        // One copy per file, through the backup API, checked, then streamed.
        return databases
            .iter()
            .map(|path| DumpJob {
                database: Some(path.clone()),
                file: sqlite_file_name(path).to_string(),
                argv: [
                    "sh",
                    "-c",
                    SQLITE_COPY,
                    "sh",
                    tools.client.as_str(),
                    path.as_str(),
                ]
                .map(String::from)
                .to_vec(),
            })
            .collect();
    }
    if engine == Engine::Redis {
        // One RDB of the whole server, streamed to stdout: no file is left
        // in the container.
        let mut argv = client(engine, tools, login);
        argv.extend(["--rdb".to_string(), "-".to_string()]);
        return vec![DumpJob {
            database: None,
            file: REDIS_DUMP.to_string(),
            argv,
        }];
    }
    if databases.is_empty() {
        let argv = match engine {
            Engine::Postgres => {
                let mut v = vec![tools.dump_all.clone()];
                v.extend(pg_conn(login));
                v
            }
            Engine::Mariadb | Engine::Mysql => {
                let mut v = maria_common(&tools.dump_all);
                v.push("--all-databases".into());
                v
            }
            Engine::Redis | Engine::Sqlite => unreachable!("returned above"),
        };
        return vec![DumpJob {
            database: None,
            file: format!("{}-all.sql", engine.as_str()),
            argv,
        }];
    }
    databases
        .iter()
        .map(|db| {
            let argv = match engine {
                Engine::Postgres => {
                    let mut v = vec![tools.dump_one.clone()];
                    v.extend(pg_conn(login));
                    v.extend(pg_database_args(db));
                    v
                }
                Engine::Mariadb | Engine::Mysql => {
                    let mut v = maria_common(&tools.dump_one);
                    // After `--`: a name starting with `-` is never an option.
                    v.extend(["--databases", "--", db].map(String::from));
                    v
                }
                Engine::Redis | Engine::Sqlite => unreachable!("returned above"),
            };
            DumpJob {
                database: Some(db.clone()),
                file: format!("{db}.sql"),
                argv,
            }
        })
        .collect()
}

/// Copies the SQLite file `$2` with `$1` (sqlite3): the backup API into a
/// temporary file (removed on every path), waiting up to a minute for a lock
/// the app holds (an app that opens and closes the file checkpoints its log
/// on each close, under a lock), `PRAGMA integrity_check` on the
/// copy (anything but `ok` fails the dump), then the copy on stdout. A file
/// that does not exist is an error, never created.
pub const SQLITE_COPY: &str = r#"set -eu
[ -f "$2" ] || { echo "no such file: $2" >&2; exit 4; }
t=$(mktemp "${TMPDIR:-/tmp}/stackshot-sqlite.XXXXXX")
trap 'rm -f "$t"' EXIT
"$1" -batch -cmd ".timeout 60000" "$2" ".backup '$t'"
r=$("$1" -batch "$t" "PRAGMA integrity_check")
[ "$r" = ok ] || { echo "PRAGMA integrity_check of the copy: $r" >&2; exit 3; }
cat "$t""#;

/// The databases of a PostgreSQL server that `pg_dumpall` would dump.
pub const PG_DATABASES_SQL: &str = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname <> 'postgres', datname";

/// A fingerprint of one PostgreSQL database's schema: its tables and columns
/// (by oid, so a table dropped and created again differs).
pub const PG_FINGERPRINT_SQL: &str = "SELECT 'fp:' || md5(coalesce(string_agg(c.oid::text || ':' || n.nspname || '.' || c.relname || ':' || a.attname || ':' || a.atttypid::text, ',' ORDER BY c.oid, a.attnum), '')) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";

/// A fingerprint of a MariaDB/MySQL server's schema: tables with their
/// creation times, and columns.
pub const MARIA_FINGERPRINT_SQL: &str = "SET SESSION group_concat_max_len = 67108864; SELECT MD5(IFNULL(GROUP_CONCAT(CONCAT_WS(':', c.table_schema, c.table_name, t.create_time, c.column_name, c.column_type) ORDER BY c.table_schema, c.table_name, c.ordinal_position SEPARATOR ','), '')) FROM information_schema.columns c JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name WHERE c.table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";

/// Tables that `--single-transaction` does not cover (not InnoDB), outside the
/// system schemas, as `schema.table (ENGINE)`.
pub const MARIA_NON_INNODB_SQL: &str = "SELECT CONCAT(table_schema, '.', table_name, ' (', engine, ')') FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND engine <> 'InnoDB' AND table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1 LIMIT 5";

/// A `psql` session in `db` that reads SQL on stdin and prints bare rows.
pub fn pg_session(tools: &Tools, login: &Login, db: &str) -> Vec<String> {
    let mut v = client(Engine::Postgres, tools, login);
    v.extend(["-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"].map(String::from));
    v.extend(pg_database_args(db));
    v
}

/// What the pinning session sends: a repeatable-read transaction, its
/// exported snapshot (`snap:<id>`), and the schema fingerprint as of that
/// snapshot (`fp:<md5>`). The transaction stays open until the dump is done.
pub fn pg_pin_sql() -> String {
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT 'snap:' || pg_export_snapshot();\n{PG_FINGERPRINT_SQL};\n"
    )
}

/// `pg_dumpall --globals-only` (roles, tablespaces): it has no `--snapshot`.
pub fn pg_globals(tools: &Tools, login: &Login) -> Vec<String> {
    let mut v = vec![tools.dump_all.clone()];
    v.extend(pg_conn(login));
    v.push("--globals-only".into());
    v
}

/// `pg_dump` of `db` as of an exported snapshot; `create` adds `CREATE
/// DATABASE` and `\connect` (as `pg_dumpall` does for each database but `postgres`).
pub fn pg_dump_pinned(
    tools: &Tools,
    login: &Login,
    db: &str,
    snapshot: &str,
    create: bool,
) -> Vec<String> {
    let mut v = vec![tools.dump_one.clone()];
    v.extend(pg_conn(login));
    v.push(format!("--snapshot={snapshot}"));
    if create {
        v.push("--create".into());
    }
    v.extend(pg_database_args(db));
    v
}

/// A MariaDB/MySQL dump made pinnable: `--verbose`, so that its stderr says
/// when its consistent-snapshot transaction has started.
pub fn maria_pinnable(job: &DumpJob) -> DumpJob {
    let mut j = job.clone();
    if !j.argv.iter().any(|a| a == "--verbose") {
        j.argv.insert(1, "--verbose".into());
    }
    j
}

#[cfg(test)]
mod tests;
