//! The plan: what a backup will stop, dump and snapshot, and what it leaves out
//! and why. Built by a pure function from inspected containers and options, so
//! every rule is tested on recorded fixtures without an engine.

mod diff;
pub mod mounts;
pub mod names;
mod order;
mod render;
pub mod swarm;

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobMatcher};
use serde::Serialize;

use crate::container::{self, ContainerInfo, MountKind, ROLE_LABEL};
use crate::labels::{self, BackupLabels, Engine};

pub use diff::{PlanSummary, changes};
pub use render::render_table;

/// Stop waves for `stop` (a subset of `scope`): dependents first.
pub fn stop_order(scope: &[&ContainerInfo], stop: &[&ContainerInfo]) -> Vec<StopEntry> {
    order::stop_waves(scope, stop).0
}

/// The options that shape a plan (from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The compose project being backed up.
    pub project: String,
    /// restic `--host`.
    pub host: String,
    /// One snapshot for volumes and dumps together.
    pub atomic: bool,
    /// Every compose project on the engine, not only ours.
    pub include_all_projects: bool,
    /// Leave bind mounts out.
    pub exclude_bind_mounts: bool,
    /// Our own container's id, never part of a plan.
    pub self_id: Option<String>,
    /// Why the whole run uses the full stop window (`STOP_WINDOW=full`,
    /// split snapshots, a repository that cannot be merged); `None`: short.
    pub full_window: Option<String>,
    /// `APPEND_ONLY=true`: the repository refuses deletions.
    pub append_only: bool,
}

/// A container named in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    /// Compose project.
    pub project: String,
    /// Compose service.
    pub service: String,
    /// Container name.
    pub container: String,
    /// Full container id.
    pub id: String,
}

impl ContainerRef {
    fn of(c: &ContainerInfo) -> Self {
        ContainerRef {
            project: c.project.clone(),
            service: c.service.clone(),
            container: c.name.clone(),
            id: c.id.clone(),
        }
    }
}

/// A container to stop for the stop window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopEntry {
    /// The container.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// Stop wave: wave 0 first; containers of one wave stop concurrently, and
    /// start again in reverse wave order.
    pub wave: usize,
    /// The ids of the containers in this stop list that it depends on, directly
    /// or not (all in later waves): it starts again as soon as each of them has
    /// started, without waiting for the rest of their wave.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Running when the plan was made (a stopped container stays stopped).
    pub running: bool,
    /// `stackshot.exec.pre-stop`: run in it just before it is stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Hook>,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPhase {
    /// Before the stop window; a failure fails the run before anything is stopped.
    PreBackup,
    /// Just before its container is stopped, inside the window.
    PreStop,
    /// After the window, on every path.
    PostBackup,
}

impl HookPhase {
    /// `pre-backup`, `pre-stop`, `post-backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::PreBackup => "pre-backup",
            HookPhase::PreStop => "pre-stop",
            HookPhase::PostBackup => "post-backup",
        }
    }
}

/// A command run with `docker exec` (`sh -c`) in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// The command.
    pub command: String,
    /// Its time limit.
    pub timeout_seconds: u64,
}

/// One hook of the run, in the order hooks run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookPlan {
    /// The container it runs in.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// When.
    pub phase: HookPhase,
    /// What.
    #[serde(flatten)]
    pub hook: Hook,
}

/// Where a credential comes from. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum CredentialSource {
    /// The container's environment variable.
    Env {
        /// Variable name.
        var: String,
    },
    /// A file named by the container's `…_FILE` variable, read inside that container.
    FileInContainer {
        /// Variable name (ending in `_FILE`).
        var: String,
    },
    /// A default, not a secret (a user name).
    Default {
        /// The default value.
        value: String,
    },
    /// The value after this flag in the container's command line (Redis's
    /// `redis-server --requirepass …`), read from its configuration.
    CommandArg {
        /// The flag.
        flag: String,
    },
    /// Nothing found: connect without a password.
    None,
}

/// Credentials a dump will use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    /// The user.
    pub user: CredentialSource,
    /// The password.
    pub password: CredentialSource,
}

/// One database dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpPlan {
    /// The database container.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// Engine.
    pub engine: Engine,
    /// Databases to dump; empty: all of them, with roles/users.
    pub databases: Vec<String>,
    /// Where the credentials come from.
    pub credentials: Credentials,
    /// Files written, as paths in the snapshot.
    pub outputs: Vec<String>,
    /// Pinned at the stop and dumped after the window (short window); false:
    /// dumped inside the window.
    pub pinned: bool,
    /// Why it is dumped inside the window, when it is.
    pub window_reason: Option<String>,
    /// `stackshot.volumes.data-dir=true`: its data directory is backed up as
    /// files too, the server stopped after its dump (full window).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub data_dir: bool,
}

/// One mount to back up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumePlan {
    /// The container it is reached through.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// Volume or bind.
    pub kind: MountKind,
    /// Volume name (volumes) or host path (binds).
    pub source: String,
    /// Destination in the container.
    pub destination: String,
    /// Path in the snapshot.
    pub snapshot_path: String,
}

/// Why something is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludeReason {
    /// The container has no stackshot label asking for its files.
    NoLabel,
    /// A database's data directory: its dump is the consistent copy.
    DatabaseDataDirectory,
    /// `EXCLUDE_BIND_MOUNTS=true`.
    BindMountExcluded,
    /// Not matched by `stackshot.volumes.include`.
    NotIncluded,
    /// Matched by `stackshot.volumes.exclude`.
    Excluded,
    /// Not a volume or bind mount (tmpfs and the like).
    UnsupportedMountType,
    /// The same volume or host path is already backed up through another container.
    Duplicate,
    /// A socket (the docker socket, say): not data.
    Socket,
}

/// Something left out of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exclusion {
    /// The container.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// The mount's destination; `None`: the whole container.
    pub mount: Option<String>,
    /// Why.
    pub reason: ExcludeReason,
    /// A human-readable detail.
    pub detail: String,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Compose project.
    pub project: String,
    /// restic `--host`.
    pub host: String,
    /// One snapshot for volumes and dumps.
    pub atomic: bool,
    /// The stop window: `short` or `full`.
    pub window: String,
    /// Why the window is full, when it is.
    pub window_reason: Option<String>,
    /// The repository refuses deletions (`APPEND_ONLY=true`): the run's part
    /// snapshots stay, and retention is the server's.
    #[serde(default)]
    pub append_only: bool,
    /// Containers stopped for the window, in stop order.
    pub stop: Vec<StopEntry>,
    /// Database dumps.
    pub dumps: Vec<DumpPlan>,
    /// Mounts backed up.
    pub volumes: Vec<VolumePlan>,
    /// Files left out of the file pass, as snapshot paths: SQLite files
    /// (their copy in `/databases` is the consistent one) and their `-wal`,
    /// `-shm` and `-journal`, which come and go while the app runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Exec hooks, in the order they run: pre-backup, pre-stop (in stop
    /// order), post-backup.
    pub hooks: Vec<HookPlan>,
    /// What is left out, and why.
    pub excluded: Vec<Exclusion>,
    /// Things worth knowing that do not stop a backup.
    pub warnings: Vec<String>,
    /// Problems that stop a backup before any container is touched.
    pub errors: Vec<String>,
}

impl Plan {
    /// True when a backup may run from this plan.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

struct Filters {
    include: Vec<(String, GlobMatcher)>,
    exclude: Vec<(String, GlobMatcher)>,
}

fn compile(
    patterns: &[String],
    label: &str,
    errors: &mut Vec<String>,
    who: &str,
) -> Vec<(String, GlobMatcher)> {
    patterns
        .iter()
        .filter_map(|p| match Glob::new(p) {
            Ok(g) => Some((p.clone(), g.compile_matcher())),
            Err(e) => {
                errors.push(format!(
                    "{who}: label {label} has a bad glob {p:?} ({e}); accepted: comma-separated globs such as /data, /var/www/*, uploads-*"
                ));
                None
            }
        })
        .collect()
}

fn matches(
    globs: &[(String, GlobMatcher)],
    destination: &str,
    name: Option<&str>,
) -> Option<String> {
    globs
        .iter()
        .find(|(_, g)| g.is_match(destination) || name.is_some_and(|n| g.is_match(n)))
        .map(|(p, _)| p.clone())
}

/// True when `path` is `dir` or lies below it (or the reverse).
fn overlaps(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    let b = b.trim_end_matches('/');
    a == b
        || a.starts_with(&format!("{b}/"))
        || b.starts_with(&format!("{a}/"))
        || a.is_empty()
        || b.is_empty()
}

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

fn snapshot_segment(s: &str) -> String {
    s.trim_matches('/').to_string()
}

/// Builds the plan. Pure: no engine, no clock, no file system.
pub fn build(opts: &PlanOptions, containers: &[ContainerInfo]) -> Plan {
    let mut plan = Plan {
        project: opts.project.clone(),
        host: opts.host.clone(),
        atomic: opts.atomic,
        window: if opts.full_window.is_some() {
            "full"
        } else {
            "short"
        }
        .into(),
        window_reason: opts.full_window.clone(),
        append_only: opts.append_only,
        stop: vec![],
        dumps: vec![],
        volumes: vec![],
        excludes: vec![],
        hooks: vec![],
        excluded: vec![],
        warnings: vec![],
        errors: vec![],
    };

    // Scope: our project (or all), never ourselves, our workers or one-off containers.
    fn role(c: &ContainerInfo) -> Option<&str> {
        c.labels.get(ROLE_LABEL).map(String::as_str)
    }
    let mut scope: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| !c.project.is_empty())
        .filter(|c| opts.include_all_projects || c.project == opts.project)
        .filter(|c| opts.self_id.as_deref() != Some(c.id.as_str()))
        .filter(|c| !c.oneoff)
        .collect();
    // stackshot's own containers carry no compose or swarm labels: a service
    // with their mark is left out as they are, but not silently. (Another
    // `stackshot.role` value stays in scope: its label is a plan error.)
    for c in scope.iter().filter(|c| container::is_own_role(role(c))) {
        plan.warnings.push(format!(
            "container {:?} (service {}): label {ROLE_LABEL}={:?} marks the containers stackshot starts itself; \
             it is left out of the backup: remove the label from the service",
            c.name,
            c.service,
            role(c).unwrap_or_default()
        ));
    }
    scope.retain(|c| !container::is_own_role(role(c)));
    scope.sort_by(|a, b| {
        (&a.project, &a.service, a.number, &a.name)
            .cmp(&(&b.project, &b.service, b.number, &b.name))
    });

    let replicas: BTreeMap<(&str, &str), usize> = scope.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry((c.project.as_str(), c.service.as_str()))
            .or_default() += 1;
        m
    });
    let mut seen_sources: BTreeMap<String, String> = BTreeMap::new();
    let mut stop_set: Vec<&ContainerInfo> = Vec::new();

    // Containers with exec hooks, in scope order, with their hooks.
    let mut hooked: Vec<(&ContainerInfo, labels::Hooks)> = Vec::new();
    for c in &scope {
        // Names that become paths: a crafted one stops the plan here.
        let problems = names::container_problems(c, opts.include_all_projects);
        if !problems.is_empty() {
            plan.errors.extend(problems);
            continue;
        }
        let who = format!("service {}", c.service);
        let labels: BackupLabels = labels::parse(&c.labels);
        if labels.hooks.any() {
            hooked.push((*c, labels.hooks.clone()));
        }
        for (label, globs) in [
            ("stackshot.volumes.include", &labels.include),
            ("stackshot.volumes.exclude", &labels.exclude),
        ] {
            for g in globs {
                if let Some(p) = names::glob_problem(g) {
                    plan.errors.push(format!(
                        "{who} ({}): label {label} glob {g:?} cannot be used: {p}; accepted: comma-separated globs such as /data, /var/www/*, uploads-*",
                        c.name
                    ));
                }
            }
        }
        plan.errors.extend(
            labels
                .errors
                .iter()
                .map(|e| format!("{who} ({}): {e}", c.name)),
        );
        for l in &labels.legacy {
            plan.warnings.push(format!(
                "{who}: read predecessor label {l}; it works, and the stackshot.* form is preferred"
            ));
        }
        for l in &labels.ignored {
            plan.warnings
                .push(format!("{who}: ignored predecessor label {l}"));
        }
        let cref = ContainerRef::of(c);

        if let Some(engine) = labels.engine {
            if labels.stop {
                plan.warnings.push(format!(
                    "{who}: stop label ignored on a database container: it must answer the dump"
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
                    .extend(sqlite_path_errors(&who, &labels.databases, c));
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
            let dir = format!("/databases/{}", dump_dir(c, opts, &replicas));
            let outputs = if engine == Engine::Redis {
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
            };
            let credentials = credentials(engine, &c.env_names, &c.cmd_flags);
            if matches!(engine, Engine::Mariadb | Engine::Mysql)
                && credentials.password == CredentialSource::None
            {
                plan.warnings.push(format!(
                    "{who}: no MARIADB_ROOT_PASSWORD/MYSQL_ROOT_PASSWORD (or _FILE) in the container's environment; the dump will connect as root without a password"
                ));
            }
            let window_reason = match &opts.full_window {
                Some(why) => Some(why.clone()),
                None if labels.window_full => Some("label stackshot.window=full".into()),
                None if engine == Engine::Redis => {
                    Some("Redis has no snapshot to pin: its RDB is taken inside the window".into())
                }
                None if engine == Engine::Sqlite => Some(
                    "SQLite has no snapshot to pin: each file is copied with its backup API inside the window".into(),
                ),
                None => None,
            };
            if labels.data_dir && !labels.volumes {
                plan.errors.push(format!(
                    "{who}: label stackshot.volumes.data-dir=true needs stackshot.volumes=true on the same service (its data directory is one of its mounts)"
                ));
            }
            plan.dumps.push(DumpPlan {
                data_dir: labels.data_dir,
                container: cref.clone(),
                engine,
                databases: labels.databases.clone(),
                credentials,
                outputs,
                pinned: window_reason.is_none(),
                window_reason,
            });
        } else {
            if labels.data_dir {
                plan.errors.push(format!(
                    "{who}: label stackshot.volumes.data-dir=true applies to a database service (stackshot.postgres, .mariadb, .mysql or .redis); remove it"
                ));
            }
            if labels.stop {
                stop_set.push(c);
            }
        }

        if !labels.volumes {
            if !labels.wanted() {
                plan.excluded.push(Exclusion {
                    container: cref.clone(),
                    mount: None,
                    reason: ExcludeReason::NoLabel,
                    detail: "no stackshot label: not stopped, not dumped, files not backed up"
                        .into(),
                });
            } else {
                for m in c.mounts.iter().filter(|m| m.kind != MountKind::Other) {
                    plan.excluded.push(Exclusion {
                        container: cref.clone(),
                        mount: Some(m.destination.clone()),
                        reason: ExcludeReason::NoLabel,
                        detail: "container has no stackshot.volumes=true label".into(),
                    });
                }
            }
            continue;
        }

        let filters = Filters {
            include: compile(
                &labels.include,
                "stackshot.volumes.include",
                &mut plan.errors,
                &who,
            ),
            exclude: compile(
                &labels.exclude,
                "stackshot.volumes.exclude",
                &mut plan.errors,
                &who,
            ),
        };
        let data_dir = labels
            .engine
            .filter(|e| *e != Engine::Sqlite)
            .map(|e| match e {
                Engine::Postgres => c
                    .pgdata
                    .clone()
                    .unwrap_or_else(|| e.default_data_dir().to_string()),
                _ => e.default_data_dir().to_string(),
            });
        let mut backed_up = 0;
        let mut included_by = BTreeSet::new();
        for m in &c.mounts {
            let exclude = |reason, detail: String| Exclusion {
                container: cref.clone(),
                mount: Some(m.destination.clone()),
                reason,
                detail,
            };
            if m.kind == MountKind::Other {
                plan.excluded.push(exclude(
                    ExcludeReason::UnsupportedMountType,
                    "not a volume or bind mount".into(),
                ));
                continue;
            }
            if m.kind == MountKind::Bind
                && (m.source.ends_with(".sock") || m.destination.ends_with(".sock"))
            {
                plan.excluded.push(exclude(
                    ExcludeReason::Socket,
                    format!("{} is a socket", m.source),
                ));
                continue;
            }
            if let Some(dir) = data_dir
                .as_deref()
                .filter(|d| !labels.data_dir && overlaps(&m.destination, d))
            {
                plan.excluded.push(exclude(
                    ExcludeReason::DatabaseDataDirectory,
                    format!(
                        "holds the database's data directory {dir}; the dump is the consistent copy"
                    ),
                ));
                continue;
            }
            if m.kind == MountKind::Bind && opts.exclude_bind_mounts {
                plan.excluded.push(exclude(
                    ExcludeReason::BindMountExcluded,
                    "EXCLUDE_BIND_MOUNTS=true".into(),
                ));
                continue;
            }
            if !filters.include.is_empty() {
                match matches(&filters.include, &m.destination, m.name.as_deref()) {
                    Some(p) => {
                        included_by.insert(p);
                    }
                    None => {
                        plan.excluded.push(exclude(
                            ExcludeReason::NotIncluded,
                            format!(
                                "matches none of stackshot.volumes.include {:?}",
                                labels.include
                            ),
                        ));
                        continue;
                    }
                }
            }
            if let Some(p) = matches(&filters.exclude, &m.destination, m.name.as_deref()) {
                plan.excluded.push(exclude(
                    ExcludeReason::Excluded,
                    format!("matches stackshot.volumes.exclude {p:?}"),
                ));
                continue;
            }
            let source = match (m.kind, &m.name) {
                (MountKind::Volume, Some(n)) => n.clone(),
                _ => m.source.clone(),
            };
            let key = format!("{:?}:{source}", m.kind);
            if let Some(first) = seen_sources.get(&key) {
                plan.excluded.push(exclude(
                    ExcludeReason::Duplicate,
                    format!("{source} is already backed up at {first}"),
                ));
                continue;
            }
            let mut path = String::from("/volumes");
            if opts.include_all_projects {
                path.push('/');
                path.push_str(&c.project);
            }
            path.push('/');
            path.push_str(&dump_dir_segment(c, &replicas));
            let dest = snapshot_segment(&m.destination);
            if !dest.is_empty() {
                path.push('/');
                path.push_str(&dest);
            }
            seen_sources.insert(key, path.clone());
            backed_up += 1;
            plan.volumes.push(VolumePlan {
                container: cref.clone(),
                kind: m.kind,
                source,
                destination: m.destination.clone(),
                snapshot_path: path,
            });
        }
        if labels.engine == Some(Engine::Sqlite) {
            for file in &labels.databases {
                let Some(v) = plan.volumes.iter().rev().find(|v| {
                    v.container.id == c.id
                        && file.starts_with(&format!("{}/", v.destination.trim_end_matches('/')))
                }) else {
                    continue;
                };
                let rest = &file[v.destination.trim_end_matches('/').len()..];
                let at = format!("{}{rest}", v.snapshot_path);
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    plan.excludes.push(format!("{at}{suffix}"));
                }
            }
        }
        for p in labels.include.iter().filter(|p| !included_by.contains(*p)) {
            plan.warnings.push(format!(
                "{who}: stackshot.volumes.include pattern {p:?} matches no mount"
            ));
        }
        if c.mounts.is_empty() {
            plan.warnings.push(format!(
                "{who}: has stackshot.volumes=true but no volumes or bind mounts"
            ));
        } else if backed_up == 0 && labels.engine.is_none() {
            plan.warnings.push(format!(
                "{who}: has stackshot.volumes=true but every mount is left out (see excluded)"
            ));
        }
    }

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
        plan.window = "full".into();
        plan.window_reason = Some(why.clone());
        for d in &mut plan.dumps {
            d.pinned = false;
            d.window_reason.get_or_insert_with(|| why.clone());
        }
    }

    // A swarm task is stopped by scaling its service to 0: a replicated
    // service, from a manager node.
    stop_set.retain(|c| match swarm::refusal(c, swarm::StopFor::Backup) {
        None => true,
        Some(why) => {
            plan.errors.push(format!(
                "{}: stackshot.stop-during-backup: {why}",
                c.service
            ));
            false
        }
    });
    let (stop, cycle) = order::stop_waves(&scope, &stop_set);
    if let Some(cycle) = cycle {
        plan.warnings.push(format!(
            "dependency cycle among {cycle:?}; those containers are stopped together"
        ));
    }
    plan.stop = stop;

    // Hooks: pre-backup (scope order), pre-stop (stop order), post-backup (scope order).
    let hook = |h: &labels::Hooks, command: &Option<String>| {
        command.as_ref().map(|command| Hook {
            command: command.clone(),
            timeout_seconds: h.timeout.unwrap_or(labels::HOOK_TIMEOUT).as_secs(),
        })
    };
    for entry in &mut plan.stop {
        if let Some((_, h)) = hooked
            .iter()
            .find(|(c, _)| swarm::target_of(c) == entry.container.id)
        {
            entry.pre_stop = hook(h, &h.pre_stop);
        }
    }
    let mut pre = vec![];
    let mut post = vec![];
    for (c, h) in &hooked {
        let cref = ContainerRef::of(c);
        if h.pre_stop.is_some()
            && !plan
                .stop
                .iter()
                .any(|e| e.container.id == swarm::target_of(c))
        {
            plan.warnings.push(format!(
                "service {}: stackshot.exec.pre-stop is set but the container is not stopped during backups; it never runs",
                c.service
            ));
        }
        if let Some(hook) = hook(h, &h.pre_backup) {
            pre.push(HookPlan {
                container: cref.clone(),
                phase: HookPhase::PreBackup,
                hook,
            });
        }
        if let Some(hook) = hook(h, &h.post_backup) {
            post.push(HookPlan {
                container: cref,
                phase: HookPhase::PostBackup,
                hook,
            });
        }
    }
    let pre_stop = plan.stop.iter().filter_map(|e| {
        e.pre_stop.clone().map(|hook| HookPlan {
            container: e.container.clone(),
            phase: HookPhase::PreStop,
            hook,
        })
    });
    plan.hooks = pre
        .into_iter()
        .chain(pre_stop.collect::<Vec<_>>())
        .chain(post)
        .collect();
    if plan.volumes.is_empty() && plan.dumps.is_empty() && plan.errors.is_empty() {
        plan.warnings.push(
            "nothing to back up: label services with stackshot.volumes=true or stackshot.postgres/mariadb/mysql=true".into(),
        );
    }
    plan
}

fn dump_dir_segment(c: &ContainerInfo, replicas: &BTreeMap<(&str, &str), usize>) -> String {
    if replicas
        .get(&(c.project.as_str(), c.service.as_str()))
        .copied()
        .unwrap_or(1)
        > 1
    {
        format!("{}-{}", c.service, c.number)
    } else {
        c.service.clone()
    }
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

#[cfg(test)]
mod tests;
