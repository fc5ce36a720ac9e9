//! Reading variables from the environment, with docker-secrets style `NAME_FILE`
//! support and one-line errors.
//!
//! [`Env`] is a plain map so the configuration can be parsed and tested without
//! touching the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use thiserror::Error;

/// One bad configuration value. Its `Display` is the single line printed at start-up.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse.
    #[error("{var}={value}: {problem}; accepted: {accepted}")]
    Invalid {
        /// The variable (or `NAME_FILE`) that carried the value.
        var: String,
        /// The value, quoted, or `<hidden>` for secrets.
        value: String,
        /// What is wrong with it.
        problem: String,
        /// What would be accepted.
        accepted: String,
    },
    /// Both `NAME` and `NAME_FILE`, or two aliases, are set.
    #[error("{first} and {second} are both set; set only one of them")]
    Conflict {
        /// The name of the first variable set.
        first: String,
        /// The name of the second variable set.
        second: String,
    },
    /// `NAME_FILE` points at a file that cannot be read.
    #[error(
        "{var}={path:?}: cannot read the file: {reason}; accepted: a readable file (a docker secret, usually under /run/secrets/)"
    )]
    Unreadable {
        /// The name of the `NAME_FILE` variable.
        var: String,
        /// The path it names.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A required variable is missing.
    #[error("{var} is not set; {hint}")]
    Missing {
        /// The name of the missing variable.
        var: String,
        /// What to set it to, for the error line.
        hint: String,
    },
}

/// A value that must never be printed. `Debug` and `Display` show `<hidden>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for handing to a child process's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Where a value came from: the variable's own name or its `_FILE` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    /// The variable that was actually set (`NAME` or `NAME_FILE`).
    pub var: String,
    /// The value (the file's content, less one trailing newline, for `_FILE`).
    pub value: String,
}

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The current process environment.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment from pairs (for tests and the worker).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// All variables, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Reads `name`, or the file named by `name_FILE`. An empty value counts as unset.
    pub fn get(&self, name: &str) -> Result<Option<Sourced>, ConfigError> {
        let file_var = format!("{name}_FILE");
        match (self.raw(name), self.raw(&file_var)) {
            (Some(_), Some(_)) => Err(ConfigError::Conflict {
                first: name.to_string(),
                second: file_var,
            }),
            (Some(v), None) => Ok(Some(Sourced {
                var: name.to_string(),
                value: v.to_string(),
            })),
            (None, Some(path)) => read_secret_file(&file_var, path).map(|value| {
                Some(Sourced {
                    var: file_var,
                    value,
                })
            }),
            (None, None) => Ok(None),
        }
    }

    /// Reads the first set variable among `names` (a name and its aliases);
    /// two of them set at once is an error.
    pub fn get_any(&self, names: &[&str]) -> Result<Option<Sourced>, ConfigError> {
        let mut found: Option<Sourced> = None;
        for name in names {
            if let Some(v) = self.get(name)? {
                if let Some(first) = &found {
                    return Err(ConfigError::Conflict {
                        first: first.var.clone(),
                        second: v.var,
                    });
                }
                found = Some(v);
            }
        }
        Ok(found)
    }
}

fn read_secret_file(var: &str, path: &str) -> Result<String, ConfigError> {
    let mut content =
        std::fs::read_to_string(Path::new(path)).map_err(|e| ConfigError::Unreadable {
            var: var.to_string(),
            path: path.to_string(),
            reason: e.to_string(),
        })?;
    if content.ends_with('\n') {
        content.pop();
        if content.ends_with('\r') {
            content.pop();
        }
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_counts_as_unset() {
        let env = Env::from_pairs([("A", "")]);
        assert_eq!(env.get("A").unwrap(), None);
    }

    #[test]
    fn file_form_reads_the_file_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, "s3cret\n").unwrap();
        let env = Env::from_pairs([("PW_FILE", p.to_str().unwrap())]);
        let got = env.get("PW").unwrap().unwrap();
        assert_eq!(got.var, "PW_FILE");
        assert_eq!(got.value, "s3cret");
    }

    #[test]
    fn both_forms_conflict() {
        let env = Env::from_pairs([("PW", "a"), ("PW_FILE", "/x")]);
        assert_eq!(
            env.get("PW").unwrap_err().to_string(),
            "PW and PW_FILE are both set; set only one of them"
        );
    }

    #[test]
    fn aliases_conflict() {
        let env = Env::from_pairs([("BACKUP_CRON", "@daily"), ("CRON_SCHEDULE", "@hourly")]);
        let err = env.get_any(&["BACKUP_CRON", "CRON_SCHEDULE"]).unwrap_err();
        assert!(matches!(err, ConfigError::Conflict { .. }), "{err}");
    }

    #[test]
    fn secret_never_displays() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<hidden> <hidden>");
    }
}
