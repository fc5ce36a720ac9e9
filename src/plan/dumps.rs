//! The plan's database dumps: where each dump's credentials come from, what it
//! writes, whether it is pinned at the stop or taken inside the window, and
//! the rules on data directories copied as files.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Building, ContainerRef, CredentialSource, Credentials, DumpPlan, Plan, PlanOptions,
    dump_dir_segment,
};
use crate::container::{ContainerInfo, MountKind};
use crate::labels::{self, BackupLabels, Engine};
use crate::layout::{DATABASES_DIR, StopWindow};

/// Where a database container's credentials come from, given its variables'
/// names and its command line's flags.
pub fn credentials(engine: Engine, env: &[String], cmd_flags: &[String]) -> Credentials {
    let has = |v: &str| env.iter().any(|e| e == v);
    let pick = |vars: &[&str]| -> Option<CredentialSource> {
        vars.iter().find_map(|v| {
            let file = format!("{v}_FILE");
            if has(v) {
                Some(CredentialSource::Env { var: v.to_string() })
            } else if has(&file) {
                Some(CredentialSource::FileInContainer { var: file })
            } else {
                None
            }
        })
    };
    match engine {
        Engine::Postgres => Credentials {
            user: pick(&["POSTGRES_USER"]).unwrap_or(CredentialSource::Default {
                value: "postgres".into(),
            }),
            password: pick(&["POSTGRES_PASSWORD"]).unwrap_or(CredentialSource::None),
        },
        Engine::Sqlite => Credentials {
            user: CredentialSource::Default {
                value: String::new(),
            },
            password: CredentialSource::None,
        },
        Engine::Redis => Credentials {
            user: pick(&["REDIS_USERNAME"]).unwrap_or(CredentialSource::Default {
                value: labels::REDIS_DEFAULT_USER.into(),
            }),
            password: pick(&["REDIS_PASSWORD"]).unwrap_or_else(|| {
                if cmd_flags.iter().any(|f| f == REQUIREPASS) {
                    CredentialSource::CommandArg {
                        flag: REQUIREPASS.into(),
                    }
                } else {
                    CredentialSource::None
                }
            }),
        },
        Engine::Mariadb | Engine::Mysql => {
            if let Some(pw) = pick(&["MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"]) {
                Credentials {
                    user: CredentialSource::Default {
                        value: "root".into(),
                    },
                    password: pw,
                }
            } else if let Some(user) = pick(&["MARIADB_USER", "MYSQL_USER"]) {
                Credentials {
                    user,
                    password: pick(&["MARIADB_PASSWORD", "MYSQL_PASSWORD"])
                        .unwrap_or(CredentialSource::None),
                }
            } else {
                Credentials {
                    user: CredentialSource::Default {
                        value: "root".into(),
                    },
                    password: CredentialSource::None,
                }
            }
        }
    }
}

/// Redis's password flag, honoured when no `REDIS_PASSWORD[_FILE]` is set.
pub const REQUIREPASS: &str = "--requirepass";

/// The value of `flag` in a command line (`--flag value` or `--flag=value`). Pure.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(flag)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        }
    })
}

/// What is wrong with the files a `stackshot.sqlite` label names on `c`,
/// one line each: each must be an absolute path without `..`, NUL or
/// newlines, inside one of the container's volumes or bind mounts (a file in
/// the container's own layer is lost with it), and their names must differ
/// (each is `/databases/<service>/<name>`).
pub fn sqlite_path_errors(who: &str, paths: &[String], c: &ContainerInfo) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for p in paths {
        let name = crate::layout::sqlite_file_name(p);
        let why = if !p.starts_with('/') {
            Some("is not an absolute path")
        } else if p.contains(['*', '?', '[', ']', '{', '}', '\\', '!']) {
            Some("holds a glob character (* ? [ ] { } \\ !)")
        } else if p.chars().any(char::is_control) {
            Some("holds a control character")
        } else if p.split('/').any(|s| s == ".." || s == ".") {
            Some("holds a . or .. component")
        } else if name.is_empty() {
            Some("names a directory, not a file")
        } else if !c.mounts.iter().any(|m| {
            m.kind != MountKind::Other
                && p.starts_with(&format!("{}/", m.destination.trim_end_matches('/')))
        }) {
            Some("is in none of the container's volumes or bind mounts")
        } else if !names.insert(name) {
            Some("has the same file name as another one it names")
        } else {
            None
        };
        if let Some(why) = why {
            errors.push(format!(
                "{who}: label stackshot.sqlite names {p:?}, which {why}; accepted: absolute paths of files in the container's mounts, with distinct names"
            ));
        }
    }
    errors
}

fn valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

fn dump_dir(
    c: &ContainerInfo,
    opts: &PlanOptions,
    replicas: &BTreeMap<(&str, &str), usize>,
) -> String {
    let seg = dump_dir_segment(c, replicas);
    if opts.include_all_projects {
        format!("{}/{seg}", c.project)
    } else {
        seg
    }
}

/// The files the dump of `c` writes into `dir`: one RDB (Redis), one copy
/// of each file (SQLite), one file of all databases or one per database.
fn outputs(engine: Engine, labels: &BackupLabels, dir: &str) -> Vec<String> {
    if engine == Engine::Redis {
        vec![format!("{dir}/{}", crate::layout::REDIS_DUMP)]
    } else if engine == Engine::Sqlite {
        labels
            .databases
            .iter()
            .map(|p| format!("{dir}/{}", crate::layout::sqlite_file_name(p)))
            .collect()
    } else if labels.databases.is_empty() {
        vec![format!("{dir}/{}-all.sql", engine.as_str())]
    } else {
        labels
            .databases
            .iter()
            .map(|d| format!("{dir}/{d}.sql"))
            .collect()
    }
}

/// Why a dump is taken inside the window; `None`: pinned at the stop.
fn window_reason(opts: &PlanOptions, labels: &BackupLabels, engine: Engine) -> Option<String> {
    match &opts.full_window {
        Some(why) => Some(why.clone()),
        None if labels.window_full => Some("label stackshot.window=full".into()),
        None if engine == Engine::Redis => {
            Some("Redis has no snapshot to pin: its RDB is taken inside the window".into())
        }
        None if engine == Engine::Sqlite => Some(
            "SQLite has no snapshot to pin: each file is copied with its backup API inside the window".into(),
        ),
        None => None,
    }
}

/// The dump of `c`, a database container of `engine`, with the warnings and
/// errors its labels and state call for.
pub(super) fn dump(
    building: &mut Building<'_>,
    c: &ContainerInfo,
    who: &str,
    labels: &BackupLabels,
    engine: Engine,
) {
    let plan = &mut building.plan;
    if labels.stop {
        plan.warnings.push(format!(
            "{who}: stop label ignored on a database container: it must answer the dump"
        ));
    }
    if labels.freeze == Some(true) {
        plan.warnings.push(format!(
            "{who}: stackshot.freeze-during-backup ignored on a database container: it must answer the dump"
        ));
    }
    if !c.running {
        plan.warnings.push(format!(
            "{who}: database container {} is {}; its dump will fail unless it is started",
            c.name, c.state
        ));
    }
    if engine == Engine::Sqlite {
        plan.errors
            .extend(sqlite_path_errors(who, &labels.databases, c));
    }
    let bad: Vec<&String> = labels
        .databases
        .iter()
        .filter(|d| engine != Engine::Sqlite && !valid_database_name(d))
        .collect();
    if !bad.is_empty() {
        plan.errors.push(format!(
            "{who}: label stackshot.databases names {bad:?}; accepted: database names without '/', '\\' or a leading '-'"
        ));
    }
    if engine == Engine::Redis && !labels.databases.is_empty() {
        plan.errors.push(format!(
            "{who}: label stackshot.databases does not apply to Redis (its dump is one RDB of the whole server); remove it"
        ));
    }
    let dir = format!(
        "{DATABASES_DIR}/{}",
        dump_dir(c, building.opts, &building.replicas)
    );
    let outputs = outputs(engine, labels, &dir);
    let credentials = credentials(engine, &c.env_names, &c.cmd_flags);
    if matches!(engine, Engine::Mariadb | Engine::Mysql)
        && credentials.password == CredentialSource::None
    {
        plan.warnings.push(format!(
            "{who}: no MARIADB_ROOT_PASSWORD/MYSQL_ROOT_PASSWORD (or _FILE) in the container's environment; the dump will connect as root without a password"
        ));
    }
    let window_reason = window_reason(building.opts, labels, engine);
    if labels.data_dir && !labels.volumes {
        plan.errors.push(format!(
            "{who}: label stackshot.volumes.data-dir=true needs stackshot.volumes=true on the same service (its data directory is one of its mounts)"
        ));
    }
    plan.dumps.push(DumpPlan {
        data_dir: labels.data_dir,
        container: ContainerRef::of(c),
        engine,
        databases: labels.databases.clone(),
        credentials,
        outputs,
        pinned: window_reason.is_none(),
        window_reason,
    });
}

/// The rules on data directories copied as files (`stackshot.volumes.data-dir`):
/// not in a swarm (an error), and only in the full window, which they make the
/// plan's.
pub(super) fn data_dir_rules(scope: &[&ContainerInfo], plan: &mut Plan) {
    // Stopping a database after its dump stops its container, which in a
    // swarm only makes swarm start another task.
    for d in plan.dumps.iter().filter(|d| d.data_dir) {
        if let Some(svc) = scope
            .iter()
            .find(|c| c.id == d.container.id)
            .and_then(|c| c.swarm_service.as_deref())
        {
            plan.errors.push(format!(
                "{}: stackshot.volumes.data-dir is not supported in a swarm: the server would be stopped after its dump as a container, and swarm replaces a stopped task of {svc}; remove the label (the dump is the consistent copy)",
                d.container.service
            ));
        }
    }
    // A data directory copied as files needs its server stopped after its
    // dump, inside the window: the full window.
    let copied: Vec<String> = plan
        .dumps
        .iter()
        .filter(|d| d.data_dir)
        .map(|d| d.container.service.clone())
        .collect();
    if !copied.is_empty() && plan.window_reason.is_none() {
        let why = format!(
            "stackshot.volumes.data-dir on {}: its data directory is copied as files with the server stopped after its dump, inside the window",
            copied.join(", ")
        );
        plan.window = StopWindow::Full.as_str().into();
        plan.window_reason = Some(why.clone());
        for d in &mut plan.dumps {
            d.pinned = false;
            d.window_reason.get_or_insert_with(|| why.clone());
        }
    }
}
