use super::*;

fn login(pw: bool) -> Login {
    Login {
        user: "app".into(),
        password: pw.then(|| Secret::new("s3cret")),
    }
}

#[test]
fn redis_streams_one_rdb_with_the_password_in_the_environment() {
    let tools = pick_tools(Engine::Redis, "/usr/bin/redis-cli\n").unwrap();
    let default = Login {
        user: REDIS_DEFAULT_USER.into(),
        password: Some(Secret::new("s3cret")),
    };
    let jobs = dump_jobs(Engine::Redis, &tools, &default, &[]);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].file, "dump.rdb");
    assert_eq!(jobs[0].database, None);
    assert_eq!(jobs[0].argv, ["/usr/bin/redis-cli", "--rdb", "-"]);
    // An ACL user is named; the password never is.
    let jobs = dump_jobs(Engine::Redis, &tools, &login(true), &[]);
    assert_eq!(
        jobs[0].argv,
        ["/usr/bin/redis-cli", "--user", "app", "--rdb", "-"]
    );
    assert!(!jobs[0].argv.iter().any(|a| a.contains("s3cret")));
    let env = login_env(Engine::Redis, &default);
    assert_eq!(env[0].0, "REDISCLI_AUTH");
    assert_eq!(
        query(Engine::Redis, &tools, &default, None, "CONFIG GET dir"),
        ["/usr/bin/redis-cli", "CONFIG", "GET", "dir"]
    );
    // The version is read from INFO; an error answered with exit code 0 has none.
    assert_eq!(
        server_version(
            Engine::Redis,
            "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
        )
        .as_deref(),
        Some("7.0.15")
    );
    assert_eq!(
        server_version(Engine::Redis, "NOAUTH Authentication required."),
        None
    );
    assert_eq!(
        server_version(Engine::Postgres, " 15.18 \n").as_deref(),
        Some("15.18")
    );
}

#[test]
fn sqlite_copies_each_file_through_the_backup_api() {
    let tools = pick_tools(Engine::Sqlite, "/usr/bin/sqlite3\n").unwrap();
    let none = Login {
        user: String::new(),
        password: None,
    };
    let jobs = dump_jobs(
        Engine::Sqlite,
        &tools,
        &none,
        &["/data/a.db".into(), "/srv/x/b.sqlite3".into()],
    );
    assert_eq!(
        jobs.iter().map(|j| j.file.as_str()).collect::<Vec<_>>(),
        ["a.db", "b.sqlite3"]
    );
    assert_eq!(jobs[0].database.as_deref(), Some("/data/a.db"));
    // The path is an argument of the script, never spliced into it.
    assert_eq!(
        jobs[0].argv,
        [
            "sh",
            "-c",
            SQLITE_COPY,
            "sh",
            "/usr/bin/sqlite3",
            "/data/a.db"
        ]
    );
    assert!(SQLITE_COPY.contains(".backup") && SQLITE_COPY.contains("PRAGMA integrity_check"));
    assert!(SQLITE_COPY.contains(r#"-cmd ".timeout 60000" "$2" ".backup"#));
    assert!(login_env(Engine::Sqlite, &none).is_empty());
    assert_eq!(
        version_query(Engine::Sqlite, &tools, &none),
        ["/usr/bin/sqlite3", "-version"]
    );
    assert_eq!(
        server_version(Engine::Sqlite, "3.40.1 2022-12-28 14:03:47 df5c253c\n").as_deref(),
        Some("3.40.1")
    );
    assert_eq!(
        query(
            Engine::Sqlite,
            &tools,
            &none,
            Some("/data/a.db"),
            "SELECT 1"
        ),
        [
            "/usr/bin/sqlite3",
            "-batch",
            "-readonly",
            "-cmd",
            ".timeout 60000",
            "-separator",
            "\t",
            "/data/a.db",
            "SELECT 1"
        ]
    );
}

#[test]
fn picks_mariadb_or_mysql_tools() {
    let t = pick_tools(Engine::Mysql, "/usr/bin/mysqldump\n/usr/bin/mysql\n").unwrap();
    assert_eq!(
        (t.dump_all.as_str(), t.client.as_str()),
        ("/usr/bin/mysqldump", "/usr/bin/mysql")
    );
    let t = pick_tools(
        Engine::Mariadb,
        "/usr/bin/mariadb-dump\n/usr/bin/mysqldump\n/usr/bin/mariadb\n",
    )
    .unwrap();
    assert_eq!(t.dump_one, "/usr/bin/mariadb-dump");
    let e = pick_tools(Engine::Postgres, "/usr/bin/psql\n").unwrap_err();
    assert_eq!(
        e,
        "needs pg_dumpall, pg_dump, psql in the container, found /usr/bin/psql"
    );
}

#[test]
fn postgres_commands_never_carry_the_password() {
    let tools = pick_tools(
        Engine::Postgres,
        "/bin/pg_dumpall\n/bin/pg_dump\n/bin/psql\n",
    )
    .unwrap();
    let jobs = dump_jobs(Engine::Postgres, &tools, &login(true), &[]);
    assert_eq!(jobs[0].file, "postgres-all.sql");
    assert_eq!(
        jobs[0].argv,
        ["/bin/pg_dumpall", "-U", "app", "-w", "-h", "127.0.0.1"]
    );
    let jobs = dump_jobs(
        Engine::Postgres,
        &tools,
        &login(false),
        &["a".into(), "b".into()],
    );
    assert_eq!(
        jobs[1].argv,
        ["/bin/pg_dump", "-U", "app", "-w", "-d", "dbname='b'"]
    );
    assert_eq!(jobs[1].file, "b.sql");
    for j in jobs {
        assert!(!j.argv.join(" ").contains("s3cret"));
    }
    assert_eq!(login_env(Engine::Postgres, &login(true))[0].0, "PGPASSWORD");
    assert!(login_env(Engine::Postgres, &login(false)).is_empty());
}

/// Every argv built here, for every engine, login and database choice,
/// is free of the password (it travels in the exec's environment).
#[test]
fn no_argv_of_any_job_carries_the_secret() {
    for engine in [Engine::Postgres, Engine::Mariadb, Engine::Mysql] {
        let probe = match engine {
            Engine::Postgres => "/bin/pg_dumpall\n/bin/pg_dump\n/bin/psql\n",
            _ => "/usr/bin/mariadb-dump\n/usr/bin/mariadb\n",
        };
        let tools = pick_tools(engine, probe).unwrap();
        for l in [login(true), login(false)] {
            let mut argvs = vec![
                client(engine, &tools, &l),
                version_query(engine, &tools, &l),
                query(engine, &tools, &l, Some("app"), "select 1"),
            ];
            for dbs in [
                vec![],
                vec!["app".to_string()],
                vec!["a".into(), "b".into()],
            ] {
                for job in dump_jobs(engine, &tools, &l, &dbs) {
                    argvs.push(maria_pinnable(&job).argv);
                    argvs.push(job.argv);
                }
            }
            if engine == Engine::Postgres {
                argvs.push(pg_session(&tools, &l, "app"));
                argvs.push(pg_globals(&tools, &l));
                argvs.push(pg_dump_pinned(&tools, &l, "app", "0000-1", true));
            }
            for argv in argvs {
                assert!(
                    !argv.iter().any(|a| a.contains("s3cret")),
                    "{engine:?}: the password is in {argv:?}"
                );
            }
            if l.password.is_some() {
                assert_eq!(login_env(engine, &l)[0].1.expose(), "s3cret");
            }
        }
    }
}

#[test]
fn pinned_commands_never_carry_the_password() {
    let tools = pick_tools(
        Engine::Postgres,
        "/bin/pg_dumpall\n/bin/pg_dump\n/bin/psql\n",
    )
    .unwrap();
    let l = login(true);
    assert_eq!(
        pg_dump_pinned(&tools, &l, "appdb", "00000003-0000001B-1", true),
        [
            "/bin/pg_dump",
            "-U",
            "app",
            "-w",
            "-h",
            "127.0.0.1",
            "--snapshot=00000003-0000001B-1",
            "--create",
            "-d",
            "dbname='appdb'"
        ]
    );
    assert_eq!(
        pg_globals(&tools, &l),
        [
            "/bin/pg_dumpall",
            "-U",
            "app",
            "-w",
            "-h",
            "127.0.0.1",
            "--globals-only"
        ]
    );
    let s = pg_session(&tools, &l, "appdb");
    assert_eq!(
        s[s.len() - 2..],
        ["-d".to_string(), "dbname='appdb'".to_string()]
    );
    assert!(pg_pin_sql().starts_with(
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT 'snap:' || pg_export_snapshot();"
    ));
    let mt = pick_tools(Engine::Mariadb, "/usr/bin/mariadb-dump\n/usr/bin/mariadb\n").unwrap();
    let jobs = dump_jobs(Engine::Mariadb, &mt, &l, &[]);
    let pinned = maria_pinnable(&jobs[0]);
    assert_eq!(pinned.argv[1], "--verbose");
    assert!(pinned.argv.contains(&"--single-transaction".to_string()));
    for argv in [
        pg_dump_pinned(&tools, &l, "a", "s", false),
        pg_globals(&tools, &l),
        s,
        pinned.argv,
    ] {
        assert!(!argv.join(" ").contains("s3cret"), "{argv:?}");
    }
}

#[test]
fn mariadb_commands() {
    let tools = pick_tools(Engine::Mariadb, "/usr/bin/mariadb-dump\n/usr/bin/mariadb\n").unwrap();
    let jobs = dump_jobs(Engine::Mariadb, &tools, &login(true), &["shop".into()]);
    assert_eq!(
        jobs[0].argv,
        [
            "/usr/bin/mariadb-dump",
            "-u",
            "app",
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--databases",
            "--",
            "shop"
        ]
    );
    let all = dump_jobs(Engine::Mariadb, &tools, &login(true), &[]);
    assert_eq!(all[0].file, "mariadb-all.sql");
    assert!(all[0].argv.contains(&"--all-databases".to_string()));
    assert_eq!(login_env(Engine::Mariadb, &login(true))[0].0, "MYSQL_PWD");
    let q = version_query(Engine::Mariadb, &tools, &login(true));
    assert_eq!(
        q,
        [
            "/usr/bin/mariadb",
            "-u",
            "app",
            "-N",
            "-B",
            "-e",
            "SELECT VERSION()"
        ]
    );
    let pg = pick_tools(
        Engine::Postgres,
        "/bin/pg_dumpall\n/bin/pg_dump\n/bin/psql\n",
    )
    .unwrap();
    assert_eq!(
        version_query(Engine::Postgres, &pg, &login(true)),
        [
            "/bin/psql",
            "-U",
            "app",
            "-w",
            "-h",
            "127.0.0.1",
            "-X",
            "-A",
            "-t",
            "-d",
            "dbname='postgres'",
            "-c",
            "SHOW server_version"
        ]
    );
    assert_eq!(
        client(Engine::Postgres, &pg, &login(false)),
        ["/bin/psql", "-U", "app", "-w", "-X"]
    );
    assert_eq!(
        query(
            Engine::Mariadb,
            &tools,
            &login(true),
            Some("shop"),
            "SELECT 1"
        )[5],
        "--database=shop"
    );
}

/// How libpq reads a `-d` value (`recognized_connection_string`, then
/// `conninfo_parse`): a URI, a `keyword=value` connection string (values
/// bare or in single quotes, `\` escaping the next character), or else
/// a plain database name.
fn libpq_reads(d: &str) -> Vec<(String, String)> {
    if d.starts_with("postgresql://") || d.starts_with("postgres://") {
        return vec![("uri".into(), d.into())];
    }
    if !d.contains('=') {
        return vec![("dbname".into(), d.into())];
    }
    let mut out = Vec::new();
    let mut it = d.chars().peekable();
    loop {
        while it.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if it.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| *c != '=' && !c.is_ascii_whitespace()) {
            key.push(c);
        }
        while it.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        assert_eq!(it.next(), Some('='), "missing = after {key:?} in {d:?}");
        while it.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next().expect("unterminated quoted string") {
                    '\\' => value.extend(it.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_ascii_whitespace()) {
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// Names that libpq would read as a connection string (or break) if
/// passed bare, and ordinary ones.
const HOSTILE_NAMES: &[&str] = &[
    "host=evil.example port=5432",
    "postgresql://evil.example/app",
    "postgres://u@evil.example:5432/app",
    "dbname=x host=evil.example",
    "my db",
    "it's",
    "back\\slash\\",
    "a\"b",
    "'quoted'",
    "a=b",
    "ünïcødé 数据库",
    "-x",
    "",
    "app",
];

#[test]
fn conninfo_dbname_is_read_back_by_libpq_as_the_name_alone() {
    assert_eq!(pg_conninfo_dbname("app"), "dbname='app'");
    assert_eq!(pg_conninfo_dbname("it's"), r"dbname='it\'s'");
    assert_eq!(pg_conninfo_dbname(r"a\b"), r"dbname='a\\b'");
    assert_eq!(
        pg_conninfo_dbname("host=evil.example port=5432"),
        "dbname='host=evil.example port=5432'"
    );
    for name in HOSTILE_NAMES {
        assert_eq!(
            libpq_reads(&pg_conninfo_dbname(name)),
            [("dbname".to_string(), name.to_string())],
            "{name:?}"
        );
    }
    assert_eq!(pg_quote_ident("my db"), "\"my db\"");
    assert_eq!(pg_quote_ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(maria_quote_literal(r"it's\"), r"'it''s\\'");
    assert_eq!(maria_quote_ident("a`b"), "`a``b`");
}

/// The value after each `-d` of `argv`, as libpq reads it.
fn dash_d(argv: &[String]) -> Vec<Vec<(String, String)>> {
    argv.windows(2)
        .filter(|w| w[0] == "-d")
        .map(|w| libpq_reads(&w[1]))
        .collect()
}

/// Every PostgreSQL command line naming a database (queries, sessions,
/// per-database and pinned dumps) names it as a connection-string value:
/// no `host=` in a name reaches libpq as a host.
#[test]
fn every_postgres_command_names_its_database_as_a_conninfo_value() {
    let tools = pick_tools(
        Engine::Postgres,
        "/bin/pg_dumpall\n/bin/pg_dump\n/bin/psql\n",
    )
    .unwrap();
    let l = login(true);
    for name in HOSTILE_NAMES {
        let only = vec![("dbname".to_string(), name.to_string())];
        let mut argvs = vec![
            query(Engine::Postgres, &tools, &l, Some(name), "SELECT 1"),
            pg_session(&tools, &l, name),
            pg_dump_pinned(&tools, &l, name, "0000-1", true),
            pg_dump_pinned(&tools, &l, name, "0000-1", false),
        ];
        let jobs = dump_jobs(Engine::Postgres, &tools, &l, &[name.to_string()]);
        assert_eq!(jobs[0].database.as_deref(), Some(*name));
        argvs.extend(jobs.into_iter().map(|j| j.argv));
        for argv in &argvs {
            assert_eq!(dash_d(argv), std::slice::from_ref(&only), "{argv:?}");
            // Still over loopback, as the login says.
            assert!(
                argv.windows(2).any(|w| w == ["-h", "127.0.0.1"]),
                "{argv:?}"
            );
        }
    }
    // No database named: `postgres`, the same way.
    assert_eq!(
        dash_d(&version_query(Engine::Postgres, &tools, &l)),
        [[("dbname".to_string(), "postgres".to_string())]]
    );
    // pg_dumpall names none (it connects to each database itself).
    let all = dump_jobs(Engine::Postgres, &tools, &l, &[]);
    assert!(dash_d(&all[0].argv).is_empty());
    assert!(dash_d(&pg_globals(&tools, &l)).is_empty());
}

/// A MariaDB/MySQL database name starting with `-` is never read as an
/// option: after `--` for the dumps, attached to `--database=` for queries.
#[test]
fn mariadb_database_names_are_never_options() {
    for engine in [Engine::Mariadb, Engine::Mysql] {
        let tools = pick_tools(engine, "/usr/bin/mariadb-dump\n/usr/bin/mariadb\n").unwrap();
        for name in ["--host=evil.example", "-hevil", "my db", "shop"] {
            let jobs = dump_jobs(engine, &tools, &login(true), &[name.to_string()]);
            let argv = &jobs[0].argv;
            assert_eq!(
                argv[argv.len() - 3..],
                ["--databases", "--", name],
                "{argv:?}"
            );
            assert_eq!(argv.iter().filter(|a| *a == name).count(), 1);
            let pinned = maria_pinnable(&jobs[0]).argv;
            assert_eq!(pinned[pinned.len() - 2..], ["--", name]);
            let q = query(engine, &tools, &login(true), Some(name), "SELECT 1");
            assert!(q.contains(&format!("--database={name}")), "{q:?}");
            assert!(!q.iter().any(|a| a == name), "{q:?}");
        }
    }
}
