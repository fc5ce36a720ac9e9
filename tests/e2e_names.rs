//! End to end: hostile database names, on the real engine.
//!
//! Two findings of a security review, proven fixed against a real PostgreSQL:
//!
//! 1. A database name reaches libpq as a database name, never as a
//!    connection string. libpq reads a `-d` value holding `=` as a
//!    connection string whose `host=` overrides the `-h` before it, so a
//!    database named `host=evil port=5432 dbname=postgres` used to make the
//!    sidecar's per-database queries (the backup's row estimates, the
//!    restore's emptiness check) connect, with the dump user's password, to
//!    whatever server answers as `evil`. Here a second PostgreSQL answers as
//!    `evil` on the stack's network and logs every connection it receives:
//!    neither the backup nor `restore all --replace` may reach it, and the
//!    backup's row estimates must come from the real database of that name.
//!
//! 2. `restore … --replace` drops exactly the databases the dump's statements
//!    create. It used to take any dump line starting with `CREATE DATABASE `
//!    (a row of a `COPY` data block included) and cut a quoted name at its
//!    first space. Here a row of `my db` reads `CREATE DATABASE victim`
//!    (a line of its own in pg_dumpall's COPY data), and `victim`, created
//!    after the backup, must survive `restore all --replace`; `my db` and
//!    the `host=…` database, changed after the backup, must be dropped by
//!    their whole names and come back exactly as backed up (not merged with
//!    what they held).

mod common;

use common::*;

const PROJECT: &str = "stackshot-e2e-names";
/// The rogue server's container (its alias on the stack's network is `evil`).
const EVIL_CONTAINER: &str = "stackshot-e2e-names-evil";
/// A database name that libpq would read as a connection string to `evil`.
const HOSTILE: &str = "host=evil port=5432 dbname=postgres";
/// A database name with a space (the old parser kept `my`).
const SPACED: &str = "my db";
/// The row of `my db` that looks like a statement in the dump's COPY data.
const TRAP_ROW: &str = "CREATE DATABASE victim";
/// The row of the `host=…` database's table.
const HOSTILE_ROW: &str = "hostile-db-row";
/// The row of `victim`.
const VICTIM_ROW: &str = "victim-row";
/// A row added after the backup: `--replace` must drop it with its database.
const LATE_ROW: &str = "added-after-backup";

/// `psql` in the stack's PostgreSQL (socket, as `app`) in database `db`,
/// named as a connection-string value (`dbname='…'`) so that the test itself
/// never connects anywhere a name says; stops at the first error. Its
/// trimmed output, or what went wrong.
fn psql_in(stack: &Stack, db: &str, sql: &str) -> Result<String, String> {
    let conninfo = format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"));
    let out = stack.exec(
        "postgres",
        &[],
        &[
            "psql",
            "-U",
            "app",
            "-d",
            &conninfo,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ],
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(text(&out))
    }
}

/// Runs SQL in `db` that must succeed.
fn psql_ok(stack: &Stack, db: &str, sql: &str) -> String {
    psql_in(stack, db, sql).unwrap_or_else(|e| panic!("{sql:?} in database {db:?} failed: {e}"))
}

/// An SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A quoted SQL identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// True when the stack's PostgreSQL has a database named exactly `db`.
fn database_exists(stack: &Stack, db: &str) -> bool {
    let n = stack
        .psql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            literal(db)
        ))
        .expect("list the databases");
    n == "1"
}

/// The rows of `table`'s one text column in `db`, sorted.
fn rows(stack: &Stack, db: &str, table: &str) -> Vec<String> {
    let out = psql_ok(
        stack,
        db,
        &format!("SELECT body FROM {} ORDER BY body", ident(table)),
    );
    out.lines().map(str::to_string).collect()
}

/// The `connection received` lines the rogue server logged so far (one per
/// connection attempt, before any authentication).
fn connections(evil: &FreshDb) -> Vec<String> {
    let out = output(&mut docker(&["logs", &evil.name]));
    assert!(
        out.status.success(),
        "cannot read the logs of {}: {}",
        evil.name,
        text(&out)
    );
    // The server logs on stderr; stdout holds the entrypoint's own lines.
    [&out.stdout, &out.stderr]
        .iter()
        .flat_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("connection received"))
        .collect()
}

/// No connection reached the rogue server since the first `baseline` ones.
fn assert_evil_untouched(evil: &FreshDb, baseline: usize, during: &str) {
    let now = connections(evil);
    let new = &now[baseline.min(now.len())..];
    assert!(
        new.is_empty(),
        "{during} connected to the server answering as `evil`: the database name {HOSTILE:?} \
         was read by libpq as a connection string (its host= won over -h): {new:#?}"
    );
}

/// The compose network of the stack's PostgreSQL and its address on it.
fn postgres_network(stack: &Stack) -> (String, String) {
    let out = run(&mut docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}{{println}}{{end}}",
        &stack.container("postgres"),
    ]));
    let line = out
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("the stack's postgres is on no network: {out:?}"));
    let (net, ip) = line
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (net.to_string(), ip.to_string())
}

/// A second PostgreSQL, with the stack's user and password, on the stack's
/// network as `evil`, logging every connection; removed when dropped (the
/// [`FreshDb`] guard; declared after the stack, it goes before the stack's
/// network). Returns it with the number of connections it had logged once
/// its own checks were done.
///
/// The bench image's entrypoint ignores extra server arguments, so
/// `log_connections` is set with `ALTER SYSTEM` and a reload instead of
/// `-c log_connections=on`: it applies to every connection started after it.
fn start_evil(stack: &Stack) -> (FreshDb, usize) {
    let evil = FreshDb::start(
        EVIL_CONTAINER,
        "stackshot-test/postgres:local",
        &[
            "POSTGRES_USER=app",
            "POSTGRES_PASSWORD=pg-secret-password",
            "POSTGRES_DB=appdb",
        ],
        // Over TCP: only the real server listens there, not the init one.
        &strs(&psql_tcp("pg-secret-password", "select 1")),
    );
    let (network, postgres_ip) = postgres_network(stack);
    run(&mut docker(&[
        "network", "connect", "--alias", "evil", &network, &evil.name,
    ]));
    let set = evil.exec(
        &[],
        &[
            "psql",
            "-U",
            "app",
            "-d",
            "appdb",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "ALTER SYSTEM SET log_connections = on",
            "-c",
            "SELECT pg_reload_conf()",
        ],
    );
    assert!(
        set.status.success(),
        "cannot turn on log_connections in {}: {}",
        evil.name,
        text(&set)
    );
    wait_for("the evil server to log connections", 30, || {
        let argv = psql_tcp("pg-secret-password", "SHOW log_connections");
        let out = evil.exec(&[], &strs(&argv));
        (String::from_utf8_lossy(&out.stdout).trim() == "on").then_some(())
    });
    // The control: from the stack's PostgreSQL container (where stackshot
    // runs its clients), `evil` resolves, answers (it is the server whose
    // log_connections is on, not the stack's own), and the connection shows
    // in its log. Without this, "no connection" would prove nothing.
    wait_for("`evil` to answer from the stack's postgres", 30, || {
        let out = stack.exec(
            "postgres",
            &[("PGPASSWORD", "pg-secret-password")],
            &[
                "psql",
                "-h",
                "evil",
                "-U",
                "app",
                "-d",
                "postgres",
                "-Atc",
                "SHOW log_connections",
            ],
        );
        (String::from_utf8_lossy(&out.stdout).trim() == "on").then_some(())
    });
    let from_stack = format!("connection received: host={postgres_ip} ");
    // The control's line is the last the server logs before the test's
    // own steps: once it is in, the count is final.
    let baseline = wait_for("the evil server to log the control connection", 30, || {
        let seen = connections(&evil);
        seen.iter()
            .any(|l| l.contains(&from_stack))
            .then_some(seen.len())
    });
    (evil, baseline)
}

#[test]
fn hostile_database_names_connect_nowhere_and_replace_drops_only_what_the_dump_creates() {
    let _serial = serial();
    // A rogue server left by a killed run would keep the stack's network busy.
    let _ = output(&mut docker(&["rm", "-f", "-v", EVIL_CONTAINER]));
    let stack = Stack::up(PROJECT, &root().join("tests/stack/docker-compose.yml"));
    stack.wait_for_databases();
    let (evil, baseline) = start_evil(&stack);

    // The hostile name, quoted as an identifier, with a table to dump.
    stack
        .psql(&format!("CREATE DATABASE {}", ident(HOSTILE)))
        .unwrap_or_else(|| panic!("cannot create database {HOSTILE:?}"));
    psql_ok(
        &stack,
        HOSTILE,
        &format!(
            "CREATE TABLE hostile_marker (body text); INSERT INTO hostile_marker VALUES ({})",
            literal(HOSTILE_ROW)
        ),
    );
    // `my db`: one text column, one row that reads like a statement: in
    // pg_dumpall's COPY data it is the line `CREATE DATABASE victim`. (A
    // newline inside a value is written `\n` in COPY data, so the value is
    // the statement alone, and the only column.)
    stack
        .psql(&format!("CREATE DATABASE {}", ident(SPACED)))
        .unwrap_or_else(|| panic!("cannot create database {SPACED:?}"));
    psql_ok(
        &stack,
        SPACED,
        &format!(
            "CREATE TABLE notes (body text); INSERT INTO notes VALUES ({})",
            literal(TRAP_ROW)
        ),
    );
    assert!(
        database_exists(&stack, HOSTILE) && database_exists(&stack, SPACED),
        "the test's databases were not created"
    );
    assert_evil_untouched(&evil, baseline, "setting up the test's databases");

    // The backup: it dumps with pg_dumpall and reads row estimates database
    // by database, each named to psql.
    let (code, report, stderr) = stack.backup(&[]);
    assert_evil_untouched(&evil, baseline, "the backup");
    let (hostile_backed_up, report) = if code == 0 {
        (true, report)
    } else {
        // The other acceptable outcome: a refusal, in one line naming the
        // database. The rest of the test then runs on a backup without it.
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(HOSTILE) && !reason.contains('\n'),
            "the backup failed (exit code {code}) without a one-line refusal naming {HOSTILE:?}:\n\
             {report}\n{stderr}"
        );
        stack
            .psql(&format!("DROP DATABASE {}", ident(HOSTILE)))
            .unwrap_or_else(|| panic!("cannot drop database {HOSTILE:?}"));
        let (code, report, stderr) = stack.backup(&[]);
        assert_evil_untouched(&evil, baseline, "the second backup");
        assert_eq!(
            code, 0,
            "the backup without {HOSTILE:?} failed: {report}\n{stderr}"
        );
        (false, report)
    };
    assert_eq!(report["result"], "success", "{report}");

    // What the snapshot holds, read with plain restic.
    let copy = stack.restore("latest");
    let dump = std::fs::read_to_string(copy.path().join("databases/postgres/postgres-all.sql"))
        .expect("the snapshot has no databases/postgres/postgres-all.sql");
    let dump_lines: Vec<&str> = dump.lines().collect();
    assert!(
        dump.contains(&format!("CREATE DATABASE {}", ident(SPACED))),
        "the dump does not create {SPACED:?}"
    );
    assert!(
        dump_lines.contains(&TRAP_ROW),
        "the dump has no line {TRAP_ROW:?} (the COPY row of {SPACED:?}): the --replace trap is not set"
    );
    if hostile_backed_up {
        assert!(
            dump.contains(&format!("CREATE DATABASE {}", ident(HOSTILE))),
            "the dump does not create {HOSTILE:?}"
        );
        assert!(
            dump_lines.contains(&HOSTILE_ROW),
            "the dump lacks the row of {HOSTILE:?}'s table (its COPY data line {HOSTILE_ROW:?})"
        );
        // The row estimates of that database came from the stack's server:
        // the rogue one has no such database (or table).
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(copy.path().join("databases/manifest.json"))
                .expect("the snapshot has no databases/manifest.json"),
        )
        .expect("manifest.json is not JSON");
        let key = format!("{HOSTILE}.public.hostile_marker");
        assert!(
            manifest["tables"]["postgres"][key.as_str()].is_i64(),
            "no row estimate for {key:?} in manifest.json: the estimates of database {HOSTILE:?} \
             were not read from it (from another server?): {}",
            manifest["tables"]
        );
    }

    // After the backup: `victim` (not in it), and a row more in each
    // database the dump creates: --replace must drop those whole.
    stack
        .psql("CREATE DATABASE victim")
        .expect("cannot create database victim");
    psql_ok(
        &stack,
        "victim",
        &format!(
            "CREATE TABLE keep (body text); INSERT INTO keep VALUES ({})",
            literal(VICTIM_ROW)
        ),
    );
    psql_ok(
        &stack,
        SPACED,
        &format!("INSERT INTO notes VALUES ({})", literal(LATE_ROW)),
    );
    if hostile_backed_up {
        psql_ok(
            &stack,
            HOSTILE,
            &format!("INSERT INTO hostile_marker VALUES ({})", literal(LATE_ROW)),
        );
    }
    assert_evil_untouched(&evil, baseline, "changing the databases after the backup");

    // The stack is running and its databases exist: restore over them.
    let all = stack.exec(
        "backup",
        &[],
        &["stackshot", "restore", "all", "--yes", "--replace"],
    );
    // First, before any query of the test's own touches a database.
    assert_evil_untouched(&evil, baseline, "restore all --replace");
    assert!(
        all.status.success(),
        "restore all --yes --replace failed: {}",
        text(&all)
    );

    // `victim` is in no CREATE DATABASE statement of the dump: untouched.
    assert!(
        database_exists(&stack, "victim"),
        "restore --replace dropped database victim, which the dump does not create \
         (a COPY data row {TRAP_ROW:?} was taken for a statement):\n{}",
        text(&all)
    );
    assert_eq!(
        psql_in(&stack, "victim", "SELECT body FROM keep").as_deref(),
        Ok(VICTIM_ROW),
        "victim's row is gone"
    );
    // `my db` was dropped by its whole name and loaded again: its one row,
    // without the one added after the backup (nor the dump's row twice).
    assert!(
        database_exists(&stack, SPACED),
        "database {SPACED:?} is missing after the restore:\n{}",
        text(&all)
    );
    assert_eq!(
        rows(&stack, SPACED, "notes"),
        [TRAP_ROW],
        "{SPACED:?} is not exactly as backed up: not dropped before the load \
         (its name cut at the space?)\n{}",
        text(&all)
    );
    if hostile_backed_up {
        assert!(
            database_exists(&stack, HOSTILE),
            "database {HOSTILE:?} is missing after the restore:\n{}",
            text(&all)
        );
        assert_eq!(
            rows(&stack, HOSTILE, "hostile_marker"),
            [HOSTILE_ROW],
            "{HOSTILE:?} is not exactly as backed up: not dropped before the load \
             (its name cut at the first space?)\n{}",
            text(&all)
        );
    }
    // The rest of the stack's data came back too.
    assert_eq!(
        stack.psql("SELECT count(*) FROM customers").as_deref(),
        Some("1000"),
        "appdb's customers are not back after the restore"
    );
    assert_evil_untouched(&evil, baseline, "the test's last checks");
}
