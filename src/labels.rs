//! The labels a stack's services carry, stackshot's own and its predecessors'.
//! Pure: a map of labels in, a [`BackupLabels`] out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layout::StopWindow;

/// A database engine stackshot can dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL (`pg_dumpall` / `pg_dump`).
    Postgres,
    /// MariaDB (`mariadb-dump`, or `mysqldump`).
    Mariadb,
    /// MySQL (`mysqldump`, or `mariadb-dump`).
    Mysql,
    /// Redis (`redis-cli --rdb -`: one RDB of the whole server).
    Redis,
    /// SQLite files (`stackshot.sqlite=/path/db.sqlite3`): each copied with
    /// the backup API of the container's `sqlite3`.
    Sqlite,
}

impl Engine {
    /// Lower-case name, as in labels and snapshot paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mariadb => "mariadb",
            Engine::Mysql => "mysql",
            Engine::Redis => "redis",
            Engine::Sqlite => "sqlite",
        }
    }

    /// The data directory of the official images, left out of file backups.
    pub fn default_data_dir(self) -> &'static str {
        match self {
            Engine::Postgres => "/var/lib/postgresql/data",
            Engine::Mariadb | Engine::Mysql => "/var/lib/mysql",
            Engine::Redis => "/data",
            // The files are named, not a directory: no mount is left out.
            Engine::Sqlite => "",
        }
    }
}

/// The label prefixes read, ours first.
pub const PREFIXES: [&str; 3] = ["stackshot", "stack-back", "restic-compose-backup"];

/// offen/docker-volume-backup's stop label, honoured like stackshot's own stop label.
pub const DVB_STOP: &str = "docker-volume-backup.stop-during-backup";
/// offen/docker-volume-backup's hook labels: run before and after its backup.
pub const DVB_PRE: &str = "docker-volume-backup.archive-pre";
/// offen/docker-volume-backup's hook label run after its backup, honoured as
/// `stackshot.exec.post-backup`.
pub const DVB_POST: &str = "docker-volume-backup.archive-post";

/// A hook's time limit when `stackshot.exec.timeout` does not say.
pub const HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Commands run with `docker exec` in the labelled container around a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hooks {
    /// `stackshot.exec.pre-backup`: before the stop window (a failure stops nothing).
    pub pre_backup: Option<String>,
    /// `stackshot.exec.pre-stop`: just before this container is stopped.
    pub pre_stop: Option<String>,
    /// `stackshot.exec.post-backup`: after the window, on every path.
    pub post_backup: Option<String>,
    /// Each hook's time limit, from `stackshot.exec.timeout` (default [`HOOK_TIMEOUT`]).
    pub timeout: Option<std::time::Duration>,
}

impl Hooks {
    /// True when any hook is set.
    pub fn any(&self) -> bool {
        self.pre_backup.is_some() || self.pre_stop.is_some() || self.post_backup.is_some()
    }
}

/// What a container's labels ask of stackshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackupLabels {
    /// Back up the container's volumes and bind mounts.
    pub volumes: bool,
    /// Globs on mount destination or volume name; empty: everything.
    pub include: Vec<String>,
    /// Globs on mount destination or volume name to leave out.
    pub exclude: Vec<String>,
    /// Stop the container for the stop window.
    pub stop: bool,
    /// `stackshot.freeze-during-backup`: `Some(true)` holds the container in
    /// the window frozen (the engine's pause) instead of stopped; `Some(false)`
    /// stops it even when `FREEZE_DURING_BACKUP=true`; `None`: as that says.
    pub freeze: Option<bool>,
    /// Dump this container's database server.
    pub engine: Option<Engine>,
    /// Only these databases; empty: all (plus roles/users).
    pub databases: Vec<String>,
    /// Predecessor-tool labels that were honoured (`label=value`): no
    /// stackshot label sets the same thing.
    pub legacy: Vec<String>,
    /// Predecessor-tool labels ignored because a stackshot label for the same
    /// setting disagrees (`label=value (stackshot's label=value wins)`).
    pub ignored: Vec<String>,
    /// `stackshot.window=full`: dump this database inside the stop window
    /// (not pinned), whatever `STOP_WINDOW` says.
    pub window_full: bool,
    /// `stackshot.volumes.data-dir=true`: on a database service, also back up
    /// its data directory as files, with the server stopped after its dump.
    pub data_dir: bool,
    /// The commands run with `docker exec` in this container around a backup.
    pub hooks: Hooks,
    /// Labels whose values could not be understood, each a one-line message.
    pub errors: Vec<String>,
}

impl BackupLabels {
    /// True when any label asks stackshot to do something with this container.
    pub fn wanted(&self) -> bool {
        self.volumes || self.held() || self.engine.is_some() || self.hooks.any()
    }

    /// True when the container is held in the stop window: stopped, or
    /// frozen (`stackshot.freeze-during-backup=true`).
    pub fn held(&self) -> bool {
        self.stop || self.freeze == Some(true)
    }
}

fn parse_bool(key: &str, value: &str, errors: &mut Vec<String>) -> bool {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => true,
        "false" | "0" | "no" | "off" | "" => false,
        _ => {
            errors.push(format!(
                "label {key}={value:?} is not a boolean; accepted: true or false"
            ));
            false
        }
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// What one label sets; a stackshot label and its predecessor equivalents
/// set the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Setting {
    Volumes,
    Include,
    Exclude,
    Stop,
    Dump(Engine),
    Databases,
}

impl Setting {
    fn is_list(self) -> bool {
        matches!(
            self,
            Setting::Include | Setting::Exclude | Setting::Databases
        )
    }
}

/// A label's value, read as its setting expects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Bool(bool),
    List(Vec<String>),
}

impl Value {
    /// True when the value asks for something (a predecessor label worth reporting).
    fn active(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::List(l) => !l.is_empty(),
        }
    }
}

/// One label that sets something.
struct Read {
    key: String,
    raw: String,
    setting: Setting,
    value: Value,
}

/// The setting of a label after its prefix (`volumes`, `postgres`, …).
fn setting_of(rest: &str) -> Option<Setting> {
    Some(match rest {
        "volumes" => Setting::Volumes,
        "volumes.include" => Setting::Include,
        "volumes.exclude" => Setting::Exclude,
        "stop-during-backup" | "volumes.stop-during-backup" => Setting::Stop,
        "postgres" => Setting::Dump(Engine::Postgres),
        "mariadb" => Setting::Dump(Engine::Mariadb),
        "mysql" => Setting::Dump(Engine::Mysql),
        "redis" => Setting::Dump(Engine::Redis),
        "databases" => Setting::Databases,
        _ => return None,
    })
}

/// Reads the labels of one container.
///
/// A stackshot label wins over a predecessor's label for the same setting:
/// when both are there and agree, nothing is reported (a stack switching
/// over carries both for a while); when they disagree, the predecessor's is
/// ignored and named in [`BackupLabels::ignored`]. Predecessor labels alone
/// are honoured and named in [`BackupLabels::legacy`].
///
/// Its steps: sort each label (`sort_label`), settle the predecessors'
/// settings against ours (`choose`), apply the chosen ones
/// (`apply_chosen`), settle the database engine (`set_engine`), honour
/// offen's hooks (`apply_offen_hooks`), and drop repeated list items.
pub fn parse(labels: &BTreeMap<String, String>) -> BackupLabels {
    let mut out = BackupLabels::default();
    let mut sorted = Sorted::default();
    for (key, value) in labels {
        sort_label(key, value, &mut sorted, &mut out);
    }
    let chosen = choose(&sorted.ours, &sorted.theirs, &mut out);
    let engines = apply_chosen(chosen, &mut out);
    set_engine(engines, sorted.sqlite, &mut out);
    apply_offen_hooks(sorted.dvb_hooks, &mut out);
    out.include.dedup();
    out.exclude.dedup();
    out.databases.dedup();
    out
}

/// A container's labels, sorted by what reads them after the first pass.
#[derive(Default)]
struct Sorted<'a> {
    /// stackshot's setting labels, one per setting.
    ours: BTreeMap<Setting, Read>,
    /// The predecessors' setting labels, in label order.
    theirs: Vec<Read>,
    /// offen's hook labels that carry a command (label, command).
    dvb_hooks: Vec<(&'a str, &'a String)>,
    /// The files `stackshot.sqlite` names.
    sqlite: Vec<String>,
}

/// Reads one label into `sorted`, or straight into `out` (hooks, stackshot's
/// own settings, errors); a label that is none of ours nor a predecessor's
/// is left alone.
fn sort_label<'a>(
    key: &'a String,
    value: &'a String,
    sorted: &mut Sorted<'a>,
    out: &mut BackupLabels,
) {
    if key == DVB_PRE || key == DVB_POST {
        if !value.trim().is_empty() {
            sorted.dvb_hooks.push((key.as_str(), value));
        }
        return;
    }
    if let Some(hook) = key.strip_prefix("stackshot.exec.") {
        exec_hook(key, hook, value, out);
        return;
    }
    let Some((ours_label, rest)) = prefix_of(key, value, &mut out.errors) else {
        return;
    };
    if ours_label && own_only(key, rest, value, &mut sorted.sqlite, out) {
        return;
    }
    let Some(setting) = setting_of(rest) else {
        if ours_label && rest != "project" {
            out.errors.push(format!(
                "unknown label {key}; accepted: stackshot.volumes, stackshot.volumes.include, stackshot.volumes.exclude, stackshot.volumes.data-dir, stackshot.stop-during-backup, stackshot.freeze-during-backup, stackshot.postgres, stackshot.mariadb, stackshot.mysql, stackshot.redis, stackshot.sqlite, stackshot.databases, stackshot.window, stackshot.exec.*"
            ));
        }
        return;
    };
    // Redis is stackshot's own: no predecessor dumps it.
    if !ours_label && setting == Setting::Dump(Engine::Redis) {
        return;
    }
    let value_read = if setting.is_list() {
        Value::List(list(value))
    } else {
        Value::Bool(parse_bool(key, value, &mut out.errors))
    };
    let read = Read {
        key: key.clone(),
        raw: value.clone(),
        setting,
        value: value_read,
    };
    if ours_label {
        // `stop-during-backup` and `volumes.stop-during-backup` both set Stop: either asks.
        match sorted.ours.get_mut(&setting) {
            Some(prev) if prev.value.active() => {}
            Some(prev) => *prev = read,
            None => {
                sorted.ours.insert(setting, read);
            }
        }
    } else {
        sorted.theirs.push(read);
    }
}

/// Reads `stackshot.exec.<hook>` into `out.hooks`; a bad timeout or an
/// unknown hook is an error.
fn exec_hook(key: &str, hook: &str, value: &str, out: &mut BackupLabels) {
    let command = Some(value.trim().to_string()).filter(|v| !v.is_empty());
    match hook {
        "pre-backup" => out.hooks.pre_backup = command,
        "pre-stop" => out.hooks.pre_stop = command,
        "post-backup" => out.hooks.post_backup = command,
        "timeout" => match humantime::parse_duration(value.trim()) {
            Ok(d) if !d.is_zero() => out.hooks.timeout = Some(d),
            _ => out.errors.push(format!(
                "label {key}={value:?} is not a duration; accepted: 30s, 5m, 1h"
            )),
        },
        _ => out.errors.push(format!(
            "unknown label {key}; accepted: stackshot.exec.pre-backup, stackshot.exec.pre-stop, stackshot.exec.post-backup, stackshot.exec.timeout"
        )),
    }
}

/// Whether `key` is stackshot's own label (rather than a predecessor's) and
/// what follows its prefix; offen's stop label reads as a predecessor's
/// `stop-during-backup`. `None` for any other label, and for an offen stop
/// group (an error then).
fn prefix_of<'k>(key: &'k str, value: &str, errors: &mut Vec<String>) -> Option<(bool, &'k str)> {
    match PREFIXES.iter().find_map(|p| {
        key.strip_prefix(p)
            .and_then(|r| r.strip_prefix('.'))
            .map(|r| (*p, r))
    }) {
        Some((prefix, rest)) => Some((prefix == "stackshot", rest)),
        None if key == DVB_STOP => {
            if !matches!(value.trim(), "true" | "false" | "") {
                errors.push(format!(
                    "label {key}={:?} names a docker-volume-backup stop group; stackshot has no groups: accepted: true or false",
                    value.trim()
                ));
                return None;
            }
            Some((false, "stop-during-backup"))
        }
        None => None,
    }
}

/// Reads the stackshot labels no predecessor has (`sqlite`,
/// `volumes.data-dir`, `window`, `role`; `rest` is what follows the prefix)
/// into `sqlite` or `out`. False for any other label.
fn own_only(
    key: &str,
    rest: &str,
    value: &str,
    sqlite: &mut Vec<String>,
    out: &mut BackupLabels,
) -> bool {
    match rest {
        "sqlite" => sqlite.extend(list(value)),
        "freeze-during-backup" => {
            let mut errors = Vec::new();
            let freeze = parse_bool(key, value, &mut errors);
            if errors.is_empty() {
                out.freeze = Some(freeze).filter(|_| !value.trim().is_empty());
            }
            out.errors.extend(errors);
        }
        "volumes.data-dir" => match value.trim().to_ascii_lowercase().as_str() {
            "true" => out.data_dir = true,
            "false" | "" => {}
            other => out.errors.push(format!(
                "label {key}={other:?} is not a boolean; accepted: true or false"
            )),
        },
        "window" => match value.trim().to_ascii_lowercase().as_str() {
            "" => {}
            other => match StopWindow::from_name(other) {
                Some(StopWindow::Full) => out.window_full = true,
                Some(StopWindow::Short) => {}
                None => out.errors.push(format!(
                    "label {key}={other:?} is not a stop window; accepted: full or short"
                )),
            },
        },
        "role" => {
            // stackshot's own mark: its containers are never parsed (see
            // crate::container::is_own_role), so on a service it is a mistake.
            if !crate::container::ROLES.contains(&value) {
                out.errors.push(format!(
                    "label {key}={value:?} is not a setting: stackshot marks the containers it starts itself with {key}=worker or drill, \
                     and a service with any {key} label would be left out of the backup; accepted: no {key} label on a service"
                ));
            }
        }
        _ => return false,
    }
    true
}

/// The labels whose settings count: all of ours, then each predecessor's
/// label that no stackshot label settles. A predecessor's label that
/// disagrees with ours is named in `out.ignored`; one honoured that asks for
/// something in `out.legacy`.
fn choose<'r>(
    ours: &'r BTreeMap<Setting, Read>,
    theirs: &'r [Read],
    out: &mut BackupLabels,
) -> Vec<&'r Read> {
    let mut chosen: Vec<&Read> = ours.values().collect();
    for t in theirs {
        // The stackshot label for the same setting; for an engine label, the
        // stackshot label naming an engine (a container runs one).
        let counterpart = ours.get(&t.setting).or_else(|| match t.setting {
            Setting::Dump(_) => ours
                .values()
                .find(|o| matches!(o.setting, Setting::Dump(_)) && o.value.active()),
            _ => None,
        });
        let agrees = |o: &Read| {
            if o.setting == t.setting {
                o.value == t.value
            } else {
                !t.value.active()
            }
        };
        match counterpart {
            Some(o) if agrees(o) => {}
            Some(o) => out.ignored.push(format!(
                "{}={} (stackshot's {}={} wins)",
                t.key, t.raw, o.key, o.raw
            )),
            None => {
                if t.value.active() {
                    out.legacy.push(format!("{}={}", t.key, t.raw));
                }
                chosen.push(t);
            }
        }
    }
    chosen
}

/// Sets `out` from the chosen labels; returns the engines they name, each
/// once, with the label naming it first.
fn apply_chosen(chosen: Vec<&Read>, out: &mut BackupLabels) -> Vec<(Engine, String)> {
    let mut engines: Vec<(Engine, String)> = Vec::new();
    for r in chosen {
        match (&r.setting, &r.value) {
            (Setting::Volumes, Value::Bool(b)) => out.volumes |= b,
            (Setting::Stop, Value::Bool(b)) => out.stop |= b,
            (Setting::Include, Value::List(l)) => out.include.extend(l.iter().cloned()),
            (Setting::Exclude, Value::List(l)) => out.exclude.extend(l.iter().cloned()),
            (Setting::Databases, Value::List(l)) => out.databases.extend(l.iter().cloned()),
            (Setting::Dump(e), Value::Bool(true)) if !engines.iter().any(|(x, _)| x == e) => {
                engines.push((*e, r.key.clone()));
            }
            _ => {}
        }
    }
    engines
}

/// Sets `out.engine` from the engines named (SQLite when `sqlite` names
/// files, which are then the databases); more than one is an error.
fn set_engine(mut engines: Vec<(Engine, String)>, sqlite: Vec<String>, out: &mut BackupLabels) {
    if !sqlite.is_empty() {
        if !out.databases.is_empty() {
            out.errors.push(
                "labels stackshot.sqlite and stackshot.databases: the SQLite files are the databases; keep stackshot.sqlite".into(),
            );
        }
        out.databases = sqlite;
        engines.push((Engine::Sqlite, "stackshot.sqlite".into()));
    }
    match engines.as_slice() {
        [] => {}
        [(e, _)] => out.engine = Some(*e),
        many => out.errors.push(format!(
            "labels {} each name a database engine; a container runs one: keep one of them",
            many.iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// offen's hooks: honoured unless the stackshot label for the same moment is
/// set (named in `out.ignored` when it disagrees).
fn apply_offen_hooks(dvb_hooks: Vec<(&str, &String)>, out: &mut BackupLabels) {
    for (key, value) in dvb_hooks {
        let (slot, ours_key) = if key == DVB_PRE {
            (&mut out.hooks.pre_backup, "stackshot.exec.pre-backup")
        } else {
            (&mut out.hooks.post_backup, "stackshot.exec.post-backup")
        };
        match slot {
            Some(o) if o.trim() == value.trim() => {}
            Some(o) => out
                .ignored
                .push(format!("{key}={value} (stackshot's {ours_key}={o} wins)")),
            None => {
                *slot = Some(value.trim().to_string());
                out.legacy.push(format!("{key}={value}"));
            }
        }
    }
}

/// Redis's user when `REDIS_USERNAME` does not name one (no `--user` then).
pub const REDIS_DEFAULT_USER: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BackupLabels {
        parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn stackshot_labels() {
        let l = labels(&[
            ("stackshot.volumes", "true"),
            ("stackshot.volumes.include", "/data, uploads-*"),
            ("stackshot.volumes.exclude", "/data/cache"),
            ("stackshot.stop-during-backup", "TRUE"),
            ("com.docker.compose.service", "app"),
        ]);
        assert!(l.volumes && l.stop);
        assert_eq!(l.include, ["/data", "uploads-*"]);
        assert_eq!(l.exclude, ["/data/cache"]);
        assert!(l.legacy.is_empty() && l.errors.is_empty());
    }

    #[test]
    fn database_labels() {
        let l = labels(&[
            ("stackshot.postgres", "true"),
            ("stackshot.databases", "app,wiki"),
        ]);
        assert_eq!(l.engine, Some(Engine::Postgres));
        assert_eq!(l.databases, ["app", "wiki"]);
        assert!(l.wanted());
    }

    #[test]
    fn predecessor_labels_are_read_and_reported() {
        let l = labels(&[
            ("stack-back.volumes", "true"),
            ("stack-back.volumes.stop-during-backup", "true"),
        ]);
        assert!(l.volumes && l.stop);
        assert_eq!(l.legacy.len(), 2);
        let l = labels(&[("restic-compose-backup.mariadb", "true")]);
        assert_eq!(l.engine, Some(Engine::Mariadb));
        assert_eq!(l.legacy, ["restic-compose-backup.mariadb=true"]);
        let l = labels(&[(DVB_STOP, "true")]);
        assert!(l.stop);
        assert_eq!(l.legacy, [format!("{DVB_STOP}=true")]);
    }

    #[test]
    fn both_labels_agreeing_say_nothing() {
        let l = labels(&[
            ("stack-back.volumes", "true"),
            ("stackshot.volumes", "true"),
            ("stack-back.volumes.stop-during-backup", "true"),
            ("stackshot.stop-during-backup", "yes"),
            (DVB_STOP, "true"),
            ("restic-compose-backup.postgres", "true"),
            ("stackshot.postgres", "true"),
            ("stack-back.databases", "app, wiki"),
            ("stackshot.databases", "app,wiki"),
        ]);
        assert!(l.volumes && l.stop);
        assert_eq!(l.engine, Some(Engine::Postgres));
        assert_eq!(l.databases, ["app", "wiki"]);
        assert_eq!(l.legacy, Vec::<String>::new());
        assert_eq!(l.ignored, Vec::<String>::new());
        assert!(l.errors.is_empty(), "{:?}", l.errors);
    }

    #[test]
    fn freeze_during_backup_holds_the_container_or_overrides_the_default() {
        let l = labels(&[("stackshot.freeze-during-backup", "true")]);
        assert_eq!(l.freeze, Some(true));
        assert!(l.held() && l.wanted() && !l.stop, "freezing alone holds it");
        let l = labels(&[
            ("stackshot.stop-during-backup", "true"),
            ("stackshot.freeze-during-backup", "false"),
        ]);
        assert_eq!(l.freeze, Some(false));
        assert!(l.held(), "stopped: the label only turns freezing off");
        assert_eq!(
            labels(&[("stackshot.freeze-during-backup", "")]).freeze,
            None
        );
        let l = labels(&[("stackshot.freeze-during-backup", "pause")]);
        assert_eq!(l.freeze, None);
        assert!(!l.held());
        assert_eq!(
            l.errors,
            [
                "label stackshot.freeze-during-backup=\"pause\" is not a boolean; accepted: true or false"
            ]
        );
    }

    #[test]
    fn both_labels_disagreeing_stackshot_wins_and_the_other_is_named() {
        let l = labels(&[
            ("stack-back.volumes", "true"),
            ("stackshot.volumes", "false"),
            (DVB_STOP, "true"),
            ("stackshot.stop-during-backup", "false"),
            ("stack-back.databases", "app"),
            ("stackshot.databases", "wiki"),
        ]);
        assert!(!l.volumes, "stackshot.volumes=false wins");
        assert!(!l.stop, "stackshot.stop-during-backup=false wins");
        assert_eq!(l.databases, ["wiki"]);
        assert_eq!(
            l.ignored,
            [
                "docker-volume-backup.stop-during-backup=true (stackshot's stackshot.stop-during-backup=false wins)",
                "stack-back.databases=app (stackshot's stackshot.databases=wiki wins)",
                "stack-back.volumes=true (stackshot's stackshot.volumes=false wins)",
            ]
        );
        assert!(l.legacy.is_empty(), "{:?}", l.legacy);
        // A stackshot engine label and a predecessor's other engine: only ours counts.
        let l = labels(&[
            ("stackshot.postgres", "true"),
            ("stack-back.mariadb", "true"),
        ]);
        assert_eq!(l.engine, Some(Engine::Postgres));
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(
            l.ignored,
            ["stack-back.mariadb=true (stackshot's stackshot.postgres=true wins)"]
        );
    }

    #[test]
    fn window_label() {
        let l = labels(&[("stackshot.postgres", "true"), ("stackshot.window", "Full")]);
        assert!(l.window_full && l.errors.is_empty());
        let l = labels(&[("stackshot.window", "sometimes")]);
        assert_eq!(
            l.errors,
            ["label stackshot.window=\"sometimes\" is not a stop window; accepted: full or short"]
        );
    }

    #[test]
    fn redis_sqlite_and_data_dir_labels() {
        let l = labels(&[("stackshot.redis", "true")]);
        assert_eq!(l.engine, Some(Engine::Redis));
        // No predecessor dumps Redis: its label under their prefix does nothing.
        let l = labels(&[("stack-back.redis", "true")]);
        assert_eq!(l.engine, None);
        assert!(l.legacy.is_empty());
        let l = labels(&[("stackshot.sqlite", "/data/a.db, /data/b.db")]);
        assert_eq!(l.engine, Some(Engine::Sqlite));
        assert_eq!(l.databases, ["/data/a.db", "/data/b.db"]);
        let l = labels(&[
            ("stackshot.sqlite", "/data/a.db"),
            ("stackshot.postgres", "true"),
        ]);
        assert!(
            l.errors[0].contains("each name a database engine"),
            "{:?}",
            l.errors
        );
        let l = labels(&[
            ("stackshot.sqlite", "/data/a.db"),
            ("stackshot.databases", "x"),
        ]);
        assert!(
            l.errors[0].contains("the SQLite files are the databases"),
            "{:?}",
            l.errors
        );
        let l = labels(&[
            ("stackshot.postgres", "true"),
            ("stackshot.volumes.data-dir", "TRUE"),
        ]);
        assert!(l.data_dir && l.errors.is_empty());
        let l = labels(&[("stackshot.volumes.data-dir", "yes please")]);
        assert_eq!(
            l.errors,
            [
                "label stackshot.volumes.data-dir=\"yes please\" is not a boolean; accepted: true or false"
            ]
        );
    }

    #[test]
    fn false_and_absent_mean_nothing() {
        let l = labels(&[("stackshot.volumes", "false"), ("other.label", "x")]);
        assert!(!l.wanted());
        assert!(l.errors.is_empty());
    }

    #[test]
    fn bad_values_are_errors() {
        let l = labels(&[("stackshot.volumes", "sure")]);
        assert_eq!(
            l.errors,
            ["label stackshot.volumes=\"sure\" is not a boolean; accepted: true or false"]
        );
        let l = labels(&[(DVB_STOP, "group-a")]);
        assert!(!l.stop && l.errors.len() == 1);
        let l = labels(&[("stackshot.postgres", "true"), ("stackshot.mysql", "true")]);
        assert_eq!(l.engine, None);
        assert!(
            l.errors[0].contains("each name a database engine"),
            "{:?}",
            l.errors
        );
        let l = labels(&[("stackshot.volume", "true")]);
        assert!(
            l.errors[0].starts_with("unknown label stackshot.volume;"),
            "{:?}",
            l.errors
        );
    }

    #[test]
    fn exec_hooks_ours_and_offens() {
        let l = labels(&[
            ("stackshot.exec.pre-backup", "php occ maintenance:mode --on"),
            (
                "stackshot.exec.post-backup",
                "php occ maintenance:mode --off",
            ),
            ("stackshot.exec.pre-stop", "sync"),
            ("stackshot.exec.timeout", "90s"),
        ]);
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(
            l.hooks.pre_backup.as_deref(),
            Some("php occ maintenance:mode --on")
        );
        assert_eq!(
            l.hooks.post_backup.as_deref(),
            Some("php occ maintenance:mode --off")
        );
        assert_eq!(l.hooks.pre_stop.as_deref(), Some("sync"));
        assert_eq!(l.hooks.timeout, Some(std::time::Duration::from_secs(90)));
        assert!(l.wanted(), "a container with hooks is labelled");

        let l = labels(&[
            ("docker-volume-backup.archive-pre", "redis-cli save"),
            ("docker-volume-backup.archive-post", "true"),
            ("stackshot.exec.post-backup", "echo done"),
        ]);
        assert_eq!(l.hooks.pre_backup.as_deref(), Some("redis-cli save"));
        assert_eq!(l.hooks.post_backup.as_deref(), Some("echo done"));
        assert_eq!(
            l.legacy,
            ["docker-volume-backup.archive-pre=redis-cli save"]
        );
        assert_eq!(
            l.ignored,
            [
                "docker-volume-backup.archive-post=true (stackshot's stackshot.exec.post-backup=echo done wins)"
            ]
        );

        let l = labels(&[
            ("stackshot.exec.timeout", "soon"),
            ("stackshot.exec.pre-start", "x"),
        ]);
        assert_eq!(
            l.errors,
            [
                "unknown label stackshot.exec.pre-start; accepted: stackshot.exec.pre-backup, stackshot.exec.pre-stop, stackshot.exec.post-backup, stackshot.exec.timeout",
                "label stackshot.exec.timeout=\"soon\" is not a duration; accepted: 30s, 5m, 1h",
            ]
        );
    }
}
