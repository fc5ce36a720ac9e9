//! The labels a stack's services carry, stackshot's own and its predecessors'.
//! Pure: a map of labels in, a [`BackupLabels`] out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
}

impl Engine {
    /// Lower-case name, as in labels and snapshot paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mariadb => "mariadb",
            Engine::Mysql => "mysql",
        }
    }

    /// The data directory of the official images, left out of file backups.
    pub fn default_data_dir(self) -> &'static str {
        match self {
            Engine::Postgres => "/var/lib/postgresql/data",
            Engine::Mariadb | Engine::Mysql => "/var/lib/mysql",
        }
    }
}

/// The label prefixes read, ours first.
pub const PREFIXES: [&str; 3] = ["stackshot", "stack-back", "restic-compose-backup"];

/// offen/docker-volume-backup's stop label.
pub const DVB_STOP: &str = "docker-volume-backup.stop-during-backup";

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
    /// Dump this container's database server.
    pub engine: Option<Engine>,
    /// Only these databases; empty: all (plus roles/users).
    pub databases: Vec<String>,
    /// Predecessor-tool labels that were honoured (`label=value`).
    pub legacy: Vec<String>,
    /// Labels whose values could not be understood, each a one-line message.
    pub errors: Vec<String>,
}

impl BackupLabels {
    /// True when any label asks stackshot to do something with this container.
    pub fn wanted(&self) -> bool {
        self.volumes || self.stop || self.engine.is_some()
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

/// Reads the labels of one container.
pub fn parse(labels: &BTreeMap<String, String>) -> BackupLabels {
    let mut out = BackupLabels::default();
    let mut engines: Vec<(Engine, String)> = Vec::new();
    for (key, value) in labels {
        let Some((prefix, rest)) = PREFIXES.iter().find_map(|p| {
            key.strip_prefix(p)
                .and_then(|r| r.strip_prefix('.'))
                .map(|r| (*p, r))
        }) else {
            if key == DVB_STOP {
                match value.trim() {
                    "true" => {
                        out.stop = true;
                        out.legacy.push(format!("{key}={value}"));
                    }
                    "false" | "" => {}
                    other => out.errors.push(format!(
                        "label {key}={other:?} names a docker-volume-backup stop group; stackshot has no groups: accepted: true or false"
                    )),
                }
            }
            continue;
        };
        let legacy = prefix != "stackshot";
        let before = (
            out.volumes,
            out.stop,
            out.include.len(),
            out.exclude.len(),
            engines.len(),
            out.databases.len(),
        );
        match rest {
            "volumes" => out.volumes |= parse_bool(key, value, &mut out.errors),
            "volumes.include" => out.include.extend(list(value)),
            "volumes.exclude" => out.exclude.extend(list(value)),
            "stop-during-backup" | "volumes.stop-during-backup" => {
                out.stop |= parse_bool(key, value, &mut out.errors)
            }
            "postgres" | "mariadb" | "mysql" => {
                let engine = match rest {
                    "postgres" => Engine::Postgres,
                    "mariadb" => Engine::Mariadb,
                    _ => Engine::Mysql,
                };
                let on = parse_bool(key, value, &mut out.errors);
                if on && !engines.iter().any(|(e, _)| *e == engine) {
                    engines.push((engine, key.clone()));
                }
            }
            "databases" => out.databases.extend(list(value)),
            _ if prefix == "stackshot" && !rest.starts_with("role") => out.errors.push(format!(
                "unknown label {key}; accepted: stackshot.volumes, stackshot.volumes.include, stackshot.volumes.exclude, stackshot.stop-during-backup, stackshot.postgres, stackshot.mariadb, stackshot.mysql, stackshot.databases"
            )),
            _ => {}
        }
        let after = (
            out.volumes,
            out.stop,
            out.include.len(),
            out.exclude.len(),
            engines.len(),
            out.databases.len(),
        );
        if legacy && before != after {
            out.legacy.push(format!("{key}={value}"));
        }
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
    out.include.dedup();
    out.exclude.dedup();
    out.databases.dedup();
    out
}

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
}
