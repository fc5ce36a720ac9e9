//! The copy repository (`COPY_*`): a second restic repository that receives
//! each successful run through `restic copy`, on its own schedule if one is
//! set, with its own retention.
//!
//! `restic copy` runs with the copy as its repository and the primary one
//! as its source (`RESTIC_FROM_*`), and reads one set of back-end variables
//! for both: a variable both repositories set (`AWS_ACCESS_KEY_ID` and
//! `COPY_AWS_ACCESS_KEY_ID`) must say the same, or start-up stops here.

use serde::Serialize;

use super::{ResticSettings, Retention, cron, opt, retention_with};
use crate::env::{ConfigError, Env, Secret};
use crate::schedule::Schedule;

/// The prefix of every variable of the copy repository.
pub const PREFIX: &str = "COPY_";

/// The copy repository's own variables that are not a restic variable
/// under [`PREFIX`].
const OWN: &[&str] = &[
    "COPY_REPOSITORY",
    "COPY_PASSWORD",
    "COPY_PASSWORD_COMMAND",
    "COPY_CRON",
    "COPY_APPEND_ONLY",
    "COPY_KEEP_LAST",
    "COPY_KEEP_HOURLY",
    "COPY_KEEP_DAILY",
    "COPY_KEEP_WEEKLY",
    "COPY_KEEP_MONTHLY",
    "COPY_KEEP_YEARLY",
    "COPY_KEEP_WITHIN",
];

/// Variables that name a repository or unlock it: each repository has its
/// own, never inherited from the other.
const OWN_KEYS: &[&str] = &[
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_KEY_HINT",
];

/// The copy repository's settings.
#[derive(Debug, Clone)]
pub struct CopyConfig {
    /// restic's settings for `restic copy`, the copy's retention and any
    /// command reading the copy (`--from copy`): the copy as
    /// `RESTIC_REPOSITORY`, its password, the primary repository as
    /// `RESTIC_FROM_*`, and the back-end variables of both.
    pub restic: ResticSettings,
    /// `COPY_CRON`: when the copy runs; `None`: after each successful run.
    pub cron: Option<Schedule>,
    /// `COPY_KEEP_*`: the copy's retention; each rule defaults to the
    /// primary repository's.
    pub retention: Retention,
    /// `COPY_APPEND_ONLY`: the copy refuses deletions; nothing is forgotten
    /// there (default false).
    pub append_only: bool,
}

/// The copy as plans, the status page and `stackshot status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyShown {
    /// The copy repository, credentials masked.
    pub repository: String,
    /// `COPY_CRON`, or `after each run`.
    pub when: String,
    /// The copy's retention, as `restic forget` flags (`--keep-last 3 …`),
    /// `append-only`, or `keeps everything`.
    pub retention: String,
}

impl CopyConfig {
    /// What the plan and the status page say of the copy.
    pub fn shown(&self) -> CopyShown {
        CopyShown {
            repository: super::mask_repository(self.restic.repository.expose()),
            when: self
                .cron
                .as_ref()
                .map_or_else(|| "after each successful run".into(), |c| c.to_string()),
            retention: if self.append_only {
                "append-only (nothing forgotten)".into()
            } else {
                let rules = self.retention.rules();
                if rules.is_empty() {
                    "keeps everything".into()
                } else {
                    rules
                        .iter()
                        .map(|(flag, value)| format!("{flag} {value}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            },
        }
    }
}

/// Reads the `COPY_*` variables: `None` when `COPY_REPOSITORY` is not set
/// (and no other `COPY_*` variable is). `primary` is the primary
/// repository's settings, `keep` its retention (each `COPY_KEEP_*` rule
/// defaults to it).
pub fn copy(
    env: &Env,
    primary: &ResticSettings,
    keep: &Retention,
) -> Result<Option<CopyConfig>, ConfigError> {
    let Some(repository) = env.get("COPY_REPOSITORY")? else {
        if let Some((name, _)) = env
            .iter()
            .find(|(name, value)| name.starts_with(PREFIX) && !value.is_empty())
        {
            return Err(ConfigError::Missing {
                var: "COPY_REPOSITORY".into(),
                hint: format!(
                    "{name} is set, and means nothing without it: set COPY_REPOSITORY to the second repository (such as s3:https://host/bucket), or unset {name}"
                ),
            });
        }
        return Ok(None);
    };
    let repository = Secret::new(repository.value.trim());
    if repository == primary.repository {
        return Err(ConfigError::Invalid {
            var: "COPY_REPOSITORY".into(),
            value: "<the same as RESTIC_REPOSITORY>".into(),
            problem: "the copy is the primary repository itself".into(),
            accepted: "a second repository, elsewhere (another disk, host or provider)".into(),
        });
    }
    let mut vars: Vec<(String, Secret)> = Vec::new();
    // The copy's password, as restic's own variable.
    match (env.get("COPY_PASSWORD")?, env.get("COPY_PASSWORD_COMMAND")?) {
        (Some(p), None) => vars.push(("RESTIC_PASSWORD".into(), Secret::new(p.value))),
        (None, Some(c)) => vars.push(("RESTIC_PASSWORD_COMMAND".into(), Secret::new(c.value))),
        (Some(p), Some(_)) => {
            return Err(ConfigError::Conflict {
                first: p.var,
                second: "COPY_PASSWORD_COMMAND".into(),
            });
        }
        (None, None) => {
            return Err(ConfigError::Missing {
                var: "COPY_PASSWORD".into(),
                hint: "the copy repository's password: set COPY_PASSWORD, COPY_PASSWORD_FILE (a docker secret) or COPY_PASSWORD_COMMAND".into(),
            });
        }
    }
    // The primary repository, as restic copy's source.
    for (name, value) in &primary.env {
        let from = match name.as_str() {
            "RESTIC_REPOSITORY" => "RESTIC_FROM_REPOSITORY",
            "RESTIC_PASSWORD" => "RESTIC_FROM_PASSWORD",
            "RESTIC_PASSWORD_FILE" => "RESTIC_FROM_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND" => "RESTIC_FROM_PASSWORD_COMMAND",
            "RESTIC_KEY_HINT" => "RESTIC_FROM_KEY_HINT",
            _ => continue,
        };
        vars.push((from.into(), value.clone()));
    }
    // The copy's own restic and back-end variables, under the prefix.
    let mut own: Vec<(String, Secret)> = Vec::new();
    for (name, _) in env.iter() {
        let name = name.strip_suffix("_FILE").unwrap_or(name);
        let Some(base) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if OWN.contains(&name)
            || OWN_KEYS.contains(&base)
            || base.starts_with("RESTIC_FROM_")
            || !super::RESTIC_PREFIXES.iter().any(|p| base.starts_with(p))
            || own.iter().any(|(n, _)| n == base)
        {
            continue;
        }
        if let Some(s) = env.get(name)? {
            own.push((base.to_string(), Secret::new(s.value)));
        }
    }
    // The primary's other variables: restic's own settings are inherited
    // unless the copy sets its own; a back-end variable is read by restic
    // copy for both repositories, so the two must agree.
    for (name, value) in &primary.env {
        if OWN_KEYS.contains(&name.as_str()) {
            continue;
        }
        match own.iter().find(|(n, _)| n == name) {
            None => vars.push((name.clone(), value.clone())),
            Some((_, mine)) if mine == value || name.starts_with("RESTIC_") => {}
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: format!("{PREFIX}{name}"),
                    value: "<hidden>".into(),
                    problem: format!(
                        "differs from {name}, and restic copy reads one {name} for both repositories"
                    ),
                    accepted: format!(
                        "the same value as {name}, or none (the copy then uses {name}); for two accounts on one provider, give the copy a rest: or sftp: repository"
                    ),
                });
            }
        }
    }
    vars.extend(own);
    vars.push(("RESTIC_REPOSITORY".into(), repository.clone()));
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(CopyConfig {
        restic: ResticSettings {
            repository,
            env: vars,
            preflight_timeout: primary.preflight_timeout,
        },
        cron: opt(env, "COPY_CRON", cron)?,
        retention: retention_with(env, |name| vec![format!("COPY_{name}")], keep)?,
        append_only: opt(env, "COPY_APPEND_ONLY", super::boolean)?.unwrap_or(false),
    }))
}
