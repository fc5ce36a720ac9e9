//! The configuration: every variable of the design's table, parsed from an
//! [`Env`] into typed values. A bad value is one [`ConfigError`] line.

pub mod copy;
pub mod http_auth;
pub mod notify;

use std::net::SocketAddr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Serialize;

use crate::env::{ConfigError, Env, Secret, Sourced};
pub use crate::layout::StopWindow;
use crate::schedule::{self, Schedule};

/// Retention policy handed to `restic forget` (`None`/0 means "not used").
///
/// Each count comes from its `KEEP_*` variable or that variable's
/// `RESTIC_KEEP_*` alias.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// How many of the latest snapshots to keep, from `KEEP_LAST` (passed as `--keep-last`).
    pub last: Option<u32>,
    /// How many hourly snapshots to keep, from `KEEP_HOURLY` (passed as `--keep-hourly`).
    pub hourly: Option<u32>,
    /// How many daily snapshots to keep, from `KEEP_DAILY` (passed as `--keep-daily`; default 7).
    pub daily: Option<u32>,
    /// How many weekly snapshots to keep, from `KEEP_WEEKLY` (passed as
    /// `--keep-weekly`; default 4).
    pub weekly: Option<u32>,
    /// How many monthly snapshots to keep, from `KEEP_MONTHLY` (passed as
    /// `--keep-monthly`; default 12).
    pub monthly: Option<u32>,
    /// How many yearly snapshots to keep, from `KEEP_YEARLY` (passed as
    /// `--keep-yearly`; default 3).
    pub yearly: Option<u32>,
    /// How far back every snapshot is kept, from `KEEP_WITHIN` as a restic
    /// duration such as `1y6m3d` (passed as `--keep-within`).
    pub within: Option<String>,
}

impl Retention {
    /// The rules that are on, as `restic forget` flags and their values, in
    /// restic's order (`--keep-last`, `--keep-hourly`, … `--keep-within`);
    /// empty when every rule is off (the policy keeps everything).
    pub fn rules(&self) -> Vec<(&'static str, String)> {
        let mut rules: Vec<(&'static str, String)> = [
            ("--keep-last", self.last),
            ("--keep-hourly", self.hourly),
            ("--keep-daily", self.daily),
            ("--keep-weekly", self.weekly),
            ("--keep-monthly", self.monthly),
            ("--keep-yearly", self.yearly),
        ]
        .into_iter()
        .filter_map(|(flag, n)| n.map(|n| (flag, n.to_string())))
        .collect();
        if let Some(within) = &self.within {
            rules.push(("--keep-within", within.clone()));
        }
        rules
    }
}

/// How much the log says, from `LOG_LEVEL` (default `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Logs everything, down to the finest tracing detail.
    Trace,
    /// Logs diagnostic detail as well as everything `Info` logs.
    Debug,
    /// Logs normal operation, warnings and errors (the default).
    Info,
    /// Logs warnings and errors only.
    Warn,
    /// Logs errors only.
    Error,
}

/// How each log line is written, from `LOG_FORMAT` (default `text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text lines (the default).
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// What takes the short window's file pass (`WINDOW_FILE_PASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilePass {
    /// rustic_core in a worker that opened the repository before the window.
    Rustic,
    /// `restic backup` started inside the window (it opens the repository there).
    Restic,
}

/// How long the preflight lets one restic command (`cat config`, `init`) run
/// before it kills it, unless `PREFLIGHT_TIMEOUT` says otherwise: longer than
/// any healthy answer, far shorter than restic's 15 minutes of retries.
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(60);

/// restic's own settings, passed to restic unchanged.
#[derive(Debug, Clone)]
pub struct ResticSettings {
    /// `RESTIC_REPOSITORY` (may hold credentials: display with [`mask_repository`]).
    pub repository: Secret,
    /// Every restic-related variable to hand to restic, `_FILE` forms resolved
    /// (except restic's native `RESTIC_PASSWORD_FILE`/`RESTIC_REPOSITORY_FILE`,
    /// which are passed as they are).
    pub env: Vec<(String, Secret)>,
    /// `PREFLIGHT_TIMEOUT`: how long the preflight lets one restic command
    /// (`cat config`, `init`) run before it stops it (restic itself retries a
    /// failing backend for 15 minutes).
    pub preflight_timeout: Duration,
}

/// Every setting stackshot reads from its environment, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// When scheduled backups run, from `BACKUP_CRON` or `CRON_SCHEDULE` (default `0 2 * * *`).
    pub backup_cron: Schedule,
    /// The time zone the schedules are read in, from `TZ` (default UTC).
    pub tz: Tz,
    /// `ATOMIC_BACKUP`: whether volumes and dumps go into one snapshot together (default true).
    pub atomic: bool,
    /// `APPEND_ONLY`: the repository refuses deletions (`rest-server
    /// --append-only`, a B2 key without delete rights). A run forgets
    /// nothing (its part snapshots stay, tagged `stackshot-part`), and
    /// retention is the server's business.
    pub append_only: bool,
    /// `FREEZE_DURING_BACKUP`: a backup's window freezes the containers it
    /// holds (the engine's pause) instead of stopping them, unless a
    /// container's `stackshot.freeze-during-backup=false` says otherwise
    /// (default false: stop).
    pub freeze: bool,
    /// The retention policy applied with `restic forget`, from the `KEEP_*` variables.
    pub retention: Retention,
    /// When to prune; `None`: after each successful backup.
    pub prune_cron: Option<Schedule>,
    /// When to run `restic check`; `None`: never.
    pub check_cron: Option<Schedule>,
    /// When to verify the latest snapshot; `None`: never.
    pub verify_cron: Option<Schedule>,
    /// When to run the restore drill on the latest run; `None`: never.
    pub drill_cron: Option<Schedule>,
    /// The notification receivers, policy and pings, from `NOTIFY_URLS`,
    /// `NOTIFY_ON` and `PING_URL*`.
    pub notify: notify::Notifier,
    /// How long each container gets to stop.
    pub stop_timeout: Duration,
    /// `SNAPSHOT_STALL_TIMEOUT`: a `restic backup` whose progress has not
    /// moved for this long is stopped and its run fails.
    pub snapshot_stall_timeout: Duration,
    /// restic `--host`; `None`: the compose project's name.
    pub backup_host: Option<String>,
    /// Where `/healthz`, `/metrics` and the status page (`/`) listen.
    pub http_addr: SocketAddr,
    /// `HTTP_AUTH[_FILE]`: the user and password `/` and `/metrics` ask
    /// for; `None`: no authentication (`/healthz` never asks).
    pub http_auth: Option<http_auth::HttpAuth>,
    /// `/healthz` fails when the last success is older than this.
    pub health_max_age: Duration,
    /// Back up every compose project on the engine, not only our own.
    pub include_all_projects: bool,
    /// Leave bind mounts out of the file backup.
    pub exclude_bind_mounts: bool,
    /// The log verbosity, from `LOG_LEVEL`.
    pub log_level: LogLevel,
    /// The log line format, from `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `STOP_WINDOW`: short (default) or full.
    pub stop_window: StopWindow,
    /// `WINDOW_LIMIT`: the longest a stop window may stay open; `None`: the
    /// default of the window used ([`Config::window_limit`]).
    pub window_limit: Option<Duration>,
    /// `WINDOW_FILE_PASS`: rustic (default) or restic.
    pub file_pass: FilePass,
    /// Engine address; `None`: the local socket.
    pub docker_host: Option<String>,
    /// Our own container, when it cannot be found from `/proc/self/mountinfo`.
    pub self_container: Option<String>,
    /// The compose project, when running outside a container.
    pub project: Option<String>,
    /// `SWARM_MODE`: `None` to detect it (on when our own container is a
    /// swarm task), else what it was set to.
    pub swarm_mode: Option<bool>,
    /// Where the stop-window journal lives (keep it on a volume).
    pub state_dir: std::path::PathBuf,
    /// `ACCEPT_NEW_REPOSITORY`: a run may write to (or create) a repository
    /// other than the one the last successful run wrote to at
    /// `RESTIC_REPOSITORY` (`backup::identity`).
    pub accept_new_repository: bool,
    /// restic's own settings: the repository, the variables handed to restic
    /// and the preflight timeout.
    pub restic: ResticSettings,
    /// `COPY_REPOSITORY` and the rest of `COPY_*`: the second repository
    /// each successful run is copied to; `None`: none.
    pub copy: Option<copy::CopyConfig>,
}

const BOOL: &str = "true or false (also 1/0, yes/no, on/off)";
const DURATION: &str = "a duration such as 30s, 5m, 1h30m or 26h";
const COUNT: &str = "a whole number of snapshots, 0 or more (0 turns the rule off)";
const KEEP_WITHIN: &str = "a restic duration such as 7d, 2y5m7d3h";

/// Prefixes of variables that belong to restic or its storage back-ends and are
/// handed to restic unchanged.
pub const RESTIC_PREFIXES: &[&str] = &[
    "RESTIC_", "AWS_", "B2_", "AZURE_", "GOOGLE_", "OS_", "ST_", "RCLONE_", "SWIFT_",
];

/// Our own variables that start like restic's but are not restic's.
const RESTIC_KEEP_ALIASES: &[&str] = &[
    "RESTIC_KEEP_LAST",
    "RESTIC_KEEP_HOURLY",
    "RESTIC_KEEP_DAILY",
    "RESTIC_KEEP_WEEKLY",
    "RESTIC_KEEP_MONTHLY",
    "RESTIC_KEEP_YEARLY",
    "RESTIC_KEEP_WITHIN",
];

impl Config {
    /// The longest the stop window of `mode` may stay open: `WINDOW_LIMIT`,
    /// else [`WINDOW_LIMIT_SHORT`] or [`WINDOW_LIMIT_FULL`].
    pub fn window_limit(&self, mode: StopWindow) -> Duration {
        self.window_limit.unwrap_or(match mode {
            StopWindow::Short => WINDOW_LIMIT_SHORT,
            StopWindow::Full => WINDOW_LIMIT_FULL,
        })
    }

    /// The engine's address as messages name it (`DOCKER_HOST`, or the local socket).
    pub fn docker_host_shown(&self) -> &str {
        self.docker_host
            .as_deref()
            .unwrap_or("unix:///var/run/docker.sock")
    }

    /// Parses the configuration; the first bad value is returned as one line.
    /// Only `HTTP_ADDR` (default `0.0.0.0:8080`): all `stackshot healthcheck`
    /// needs, so that it works in any container of the image, whatever else
    /// is (not) configured there.
    pub fn http_addr_from_env(env: &Env) -> Result<SocketAddr, ConfigError> {
        Ok(opt(env, "HTTP_ADDR", socket_addr)?
            .unwrap_or_else(|| "0.0.0.0:8080".parse().expect("default address parses")))
    }

    /// Reads every variable; the first bad or missing one is the error.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let tz = match env.get("TZ")? {
            None => Tz::UTC,
            Some(s) => s
                .value
                .trim()
                .trim_start_matches(':')
                .parse::<Tz>()
                .map_err(|_| {
                    invalid(
                        &s,
                        "unknown time zone",
                        "an IANA zone name such as UTC, Europe/Berlin or America/New_York",
                    )
                })?,
        };
        let backup_cron = match env.get_any(&["BACKUP_CRON", "CRON_SCHEDULE"])? {
            None => "0 2 * * *".parse().expect("default cron parses"),
            Some(s) => cron(&s)?,
        };
        let restic = restic_settings(env)?;
        let retention = retention(env)?;
        let copy = copy::copy(env, &restic, &retention)?;
        Ok(Config {
            backup_cron,
            tz,
            atomic: opt(env, "ATOMIC_BACKUP", boolean)?.unwrap_or(true),
            append_only: opt(env, "APPEND_ONLY", boolean)?.unwrap_or(false),
            freeze: opt(env, "FREEZE_DURING_BACKUP", boolean)?.unwrap_or(false),
            retention,
            prune_cron: opt(env, "PRUNE_CRON", cron)?,
            check_cron: opt(env, "CHECK_CRON", cron)?,
            verify_cron: opt(env, "VERIFY_CRON", cron)?,
            drill_cron: opt(env, "DRILL_CRON", cron)?,
            notify: notifier(env)?,
            stop_timeout: opt(env, "STOP_TIMEOUT", stop_timeout)?
                .unwrap_or(Duration::from_secs(30)),
            snapshot_stall_timeout: opt(env, "SNAPSHOT_STALL_TIMEOUT", duration)?
                .unwrap_or(Duration::from_secs(600)),
            backup_host: opt(env, "BACKUP_HOST", hostname)?,
            http_addr: Config::http_addr_from_env(env)?,
            http_auth: opt(env, "HTTP_AUTH", http_auth::HttpAuth::parse)?,
            health_max_age: opt(env, "HEALTH_MAX_AGE", duration)?
                .unwrap_or(Duration::from_secs(26 * 3600)),
            include_all_projects: opt(env, "INCLUDE_ALL_COMPOSE_PROJECTS", boolean)?
                .unwrap_or(false),
            exclude_bind_mounts: opt(env, "EXCLUDE_BIND_MOUNTS", boolean)?.unwrap_or(false),
            accept_new_repository: opt(env, "ACCEPT_NEW_REPOSITORY", boolean)?.unwrap_or(false),
            log_level: opt(env, "LOG_LEVEL", log_level)?.unwrap_or(LogLevel::Info),
            log_format: opt(env, "LOG_FORMAT", log_format)?.unwrap_or(LogFormat::Text),
            stop_window: opt(env, "STOP_WINDOW", stop_window)?.unwrap_or(StopWindow::Short),
            window_limit: opt(env, "WINDOW_LIMIT", window_limit)?,
            file_pass: opt(env, "WINDOW_FILE_PASS", file_pass)?.unwrap_or(FilePass::Rustic),
            docker_host: opt(env, "DOCKER_HOST", docker_host)?,
            self_container: opt(env, "STACKSHOT_CONTAINER", |s| {
                Ok(s.value.trim().to_string())
            })?,
            project: opt(env, "STACKSHOT_PROJECT", |s| Ok(s.value.trim().to_string()))?,
            swarm_mode: opt(env, "SWARM_MODE", swarm_mode)?.flatten(),
            state_dir: opt(env, "STACKSHOT_STATE_DIR", absolute_path)?
                .unwrap_or_else(|| "/cache/stackshot".into()),
            restic,
            copy,
        })
    }
}

/// `RESTIC_REPOSITORY` with any `user:password@` part masked, for logs and errors.
pub fn mask_repository(repo: &str) -> String {
    // rest:https://user:pass@host/…, s3:https://key:secret@host/…, sftp:user@host:/path
    // Only URLs carry a password (`scheme://user:password@host`).
    if let (Some(scheme_end), Some(at)) = (repo.find("://"), repo.rfind('@')) {
        let userinfo = scheme_end + 3;
        if at > userinfo
            && let Some(colon) = repo[userinfo..at].find(':')
        {
            return format!("{}:***{}", &repo[..userinfo + colon], &repo[at..]);
        }
    }
    repo.to_string()
}

fn invalid(s: &Sourced, problem: &str, accepted: &str) -> ConfigError {
    ConfigError::Invalid {
        var: s.var.clone(),
        value: format!("{:?}", s.value),
        problem: problem.to_string(),
        accepted: accepted.to_string(),
    }
}

fn opt<T>(
    env: &Env,
    name: &str,
    parse: impl Fn(&Sourced) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    env.get(name)?.map(|s| parse(&s)).transpose()
}

/// `NOTIFY_URLS`, `NOTIFY_ON`, `PING_URL`, `PING_URL_SUCCESS`, `PING_URL_FAILURE`,
/// `NOTIFY_TEMPLATE[_FILE]`.
fn notifier(env: &Env) -> Result<notify::Notifier, ConfigError> {
    use notify::{NotifyOn, Pings};
    let targets = opt(env, "NOTIFY_URLS", |s| {
        notify::parse_list(&s.value).map_err(|e| ConfigError::Invalid {
            var: s.var.clone(),
            value: format!("{:?}", e.item),
            problem: e.why,
            accepted: notify::ACCEPTED.into(),
        })
    })?
    .unwrap_or_default();
    let on = opt(env, "NOTIFY_ON", |s| {
        match s.value.trim().to_ascii_lowercase().as_str() {
            "failure" => Ok(NotifyOn::Failure),
            "always" => Ok(NotifyOn::Always),
            _ => Err(invalid(
                s,
                "not a notification policy",
                "failure (failed and partial runs) or always",
            )),
        }
    })?
    .unwrap_or(NotifyOn::Failure);
    let ping_url = |name: &str| {
        opt(env, name, |s| {
            let u = url::Url::parse(s.value.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            u.ok_or_else(|| ConfigError::Invalid {
                var: s.var.clone(),
                // The path is the check's secret: show the scheme and host only.
                value: format!(
                    "{:?}",
                    url::Url::parse(s.value.trim())
                        .map(|u| format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")))
                        .unwrap_or_else(|_| "…".into())
                ),
                problem: "not an http(s) URL".into(),
                accepted: "the check's ping URL, such as https://hc-ping.com/<uuid> (healthchecks.io) or an Uptime Kuma push URL".into(),
            })
        })
    };
    let template = opt(env, "NOTIFY_TEMPLATE", |s| {
        notify::Template::parse(&s.value).map_err(|why| ConfigError::Invalid {
            var: s.var.clone(),
            value: format!("<{} bytes>", s.value.len()),
            problem: why,
            accepted: format!(
                "a MiniJinja (Jinja2) template: its first line the title, the rest the body, over the run report's fields {}",
                notify::TEMPLATE_FIELDS.join(", ")
            ),
        })
    })?;
    Ok(notify::Notifier {
        targets,
        on,
        template,
        pings: Pings {
            base: ping_url("PING_URL")?,
            success: ping_url("PING_URL_SUCCESS")?,
            failure: ping_url("PING_URL_FAILURE")?,
        },
    })
}

fn boolean(s: &Sourced) -> Result<bool, ConfigError> {
    match s.value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(s, "not a boolean", BOOL)),
    }
}

fn cron(s: &Sourced) -> Result<Schedule, ConfigError> {
    s.value
        .parse()
        .map_err(|e: String| invalid(s, &format!("not a cron schedule ({e})"), schedule::ACCEPTED))
}

fn duration(s: &Sourced) -> Result<Duration, ConfigError> {
    let v = s.value.trim();
    if v.starts_with('-') {
        return Err(invalid(s, "negative duration", DURATION));
    }
    let d = humantime::parse_duration(v)
        .map_err(|e| invalid(s, &format!("not a duration ({e})"), DURATION))?;
    if d.is_zero() {
        return Err(invalid(s, "zero duration", DURATION));
    }
    Ok(d)
}

/// The longest `STOP_TIMEOUT`: a container that takes longer to stop is
/// killed by the engine; the window's own guards add to it, so a value
/// without a bound would overflow them.
pub const STOP_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

fn stop_timeout(s: &Sourced) -> Result<Duration, ConfigError> {
    let d = duration(s)?;
    if d > STOP_TIMEOUT_MAX {
        return Err(invalid(
            s,
            "longer than an hour",
            "a duration from 1s to 1h, such as 30s or 5m",
        ));
    }
    Ok(d)
}

/// `WINDOW_LIMIT`'s default for the short window: it holds the pinning of
/// the databases and a pass over the files changed since the pre-pass.
pub const WINDOW_LIMIT_SHORT: Duration = Duration::from_secs(15 * 60);
/// `WINDOW_LIMIT`'s default for the full window: it holds every dump and the
/// whole snapshot, which can be a first upload.
pub const WINDOW_LIMIT_FULL: Duration = Duration::from_secs(6 * 3600);
/// The longest `WINDOW_LIMIT` accepted: 24 hours.
pub const WINDOW_LIMIT_MAX: Duration = Duration::from_secs(24 * 3600);

fn window_limit(s: &Sourced) -> Result<Duration, ConfigError> {
    const ACCEPTED: &str = "a duration from 10s to 24h, such as 15m or 6h";
    let d = duration(s).map_err(|_| invalid(s, "not a duration", ACCEPTED))?;
    if d < Duration::from_secs(10) {
        return Err(invalid(s, "shorter than 10 seconds", ACCEPTED));
    }
    if d > WINDOW_LIMIT_MAX {
        return Err(invalid(s, "longer than 24 hours", ACCEPTED));
    }
    Ok(d)
}

fn count(s: &Sourced) -> Result<Option<u32>, ConfigError> {
    let v = s.value.trim();
    if v.starts_with('-') {
        return Err(invalid(s, "negative count", COUNT));
    }
    let n: u32 = v
        .parse()
        .map_err(|_| invalid(s, "not a whole number", COUNT))?;
    Ok((n > 0).then_some(n))
}

fn keep_within(s: &Sourced) -> Result<String, ConfigError> {
    let v = s.value.trim();
    let mut digits = false;
    let mut ok = !v.is_empty();
    for c in v.chars() {
        if c.is_ascii_digit() {
            digits = true;
        } else if matches!(c, 'y' | 'm' | 'd' | 'h') && digits {
            digits = false;
        } else {
            ok = false;
        }
    }
    if !ok || digits {
        return Err(invalid(s, "not a restic duration", KEEP_WITHIN));
    }
    Ok(v.to_string())
}

fn retention(env: &Env) -> Result<Retention, ConfigError> {
    let defaults = Retention {
        daily: Some(7),
        weekly: Some(4),
        monthly: Some(12),
        yearly: Some(3),
        ..Retention::default()
    };
    retention_with(
        env,
        |name| vec![name.to_string(), format!("RESTIC_{name}")],
        &defaults,
    )
}

/// A retention policy from the `KEEP_*` rules under the names `names`
/// gives for each (`KEEP_LAST` → its variable and aliases), each rule
/// `defaults`' where none of them is set.
fn retention_with(
    env: &Env,
    names: impl Fn(&str) -> Vec<String>,
    defaults: &Retention,
) -> Result<Retention, ConfigError> {
    let get = |name: &str| {
        let names = names(name);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        env.get_any(&names)
    };
    let keep = |name: &str, default: Option<u32>| -> Result<Option<u32>, ConfigError> {
        match get(name)? {
            None => Ok(default),
            Some(s) => count(&s),
        }
    };
    Ok(Retention {
        last: keep("KEEP_LAST", defaults.last)?,
        hourly: keep("KEEP_HOURLY", defaults.hourly)?,
        daily: keep("KEEP_DAILY", defaults.daily)?,
        weekly: keep("KEEP_WEEKLY", defaults.weekly)?,
        monthly: keep("KEEP_MONTHLY", defaults.monthly)?,
        yearly: keep("KEEP_YEARLY", defaults.yearly)?,
        within: match get("KEEP_WITHIN")? {
            None => defaults.within.clone(),
            Some(s) => Some(keep_within(&s)?),
        },
    })
}

fn hostname(s: &Sourced) -> Result<String, ConfigError> {
    let v = s.value.trim();
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            s,
            "contains white space",
            "a host name for restic's --host, such as my-stack",
        ));
    }
    Ok(v.to_string())
}

fn socket_addr(s: &Sourced) -> Result<SocketAddr, ConfigError> {
    s.value.trim().parse().map_err(|_| {
        invalid(
            s,
            "not an address and port",
            "IP:PORT such as 0.0.0.0:8080, 127.0.0.1:9000 or [::]:8080",
        )
    })
}

fn absolute_path(s: &Sourced) -> Result<std::path::PathBuf, ConfigError> {
    let v = s.value.trim();
    if v.starts_with('/') {
        Ok(v.into())
    } else {
        Err(invalid(
            s,
            "not an absolute path",
            "an absolute directory path on a volume, such as /cache/stackshot",
        ))
    }
}

fn log_level(s: &Sourced) -> Result<LogLevel, ConfigError> {
    Ok(match s.value.trim().to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        _ => {
            return Err(invalid(
                s,
                "unknown log level",
                "trace, debug, info, warn or error",
            ));
        }
    })
}

fn log_format(s: &Sourced) -> Result<LogFormat, ConfigError> {
    match s.value.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(invalid(s, "unknown log format", "text or json")),
    }
}

fn stop_window(s: &Sourced) -> Result<StopWindow, ConfigError> {
    StopWindow::from_name(&s.value.trim().to_ascii_lowercase())
        .ok_or_else(|| invalid(s, "unknown stop window", "short or full"))
}

/// `SWARM_MODE`: `auto` (detect) or a boolean.
fn swarm_mode(s: &Sourced) -> Result<Option<bool>, ConfigError> {
    match s.value.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(None),
        _ => boolean(s).map(Some).map_err(|_| {
            invalid(
                s,
                "not a swarm mode",
                "auto (the default: on when stackshot runs as a swarm task), true or false (also 1/0, yes/no, on/off)",
            )
        }),
    }
}

fn file_pass(s: &Sourced) -> Result<FilePass, ConfigError> {
    match s.value.trim().to_ascii_lowercase().as_str() {
        "rustic" => Ok(FilePass::Rustic),
        "restic" => Ok(FilePass::Restic),
        _ => Err(invalid(s, "unknown file pass", "rustic or restic")),
    }
}

fn docker_host(s: &Sourced) -> Result<String, ConfigError> {
    let v = s.value.trim();
    if ["unix://", "tcp://", "http://"]
        .iter()
        .any(|p| v.starts_with(p) && v.len() > p.len())
    {
        Ok(v.to_string())
    } else {
        Err(invalid(
            s,
            "unsupported engine address",
            "unix:///var/run/docker.sock, or tcp://HOST:PORT / http://HOST:PORT (a docker socket proxy)",
        ))
    }
}

fn restic_settings(env: &Env) -> Result<ResticSettings, ConfigError> {
    // Native restic forms are accepted as restic accepts them.
    let repository = match env.get("RESTIC_REPOSITORY")? {
        Some(s) => Secret::new(s.value.trim()),
        None => {
            return Err(ConfigError::Missing {
                var: "RESTIC_REPOSITORY".into(),
                hint: "set it to the restic repository, for example /repository (a mounted volume), s3:https://host/bucket or rest:https://host/ (or RESTIC_REPOSITORY_FILE)".into(),
            });
        }
    };
    let has_password =
        env.get("RESTIC_PASSWORD")?.is_some() || env.get("RESTIC_PASSWORD_COMMAND")?.is_some();
    if !has_password {
        return Err(ConfigError::Missing {
            var: "RESTIC_PASSWORD".into(),
            hint: "set RESTIC_PASSWORD, RESTIC_PASSWORD_FILE (a docker secret) or RESTIC_PASSWORD_COMMAND".into(),
        });
    }
    let mut vars = Vec::new();
    for (name, _) in env.iter() {
        let base = name.strip_suffix("_FILE").unwrap_or(name);
        if !RESTIC_PREFIXES.iter().any(|p| base.starts_with(p))
            || RESTIC_KEEP_ALIASES.contains(&base)
            || vars.iter().any(|(n, _): &(String, Secret)| n == base)
        {
            continue;
        }
        if let Some(s) = env.get(base)? {
            vars.push((base.to_string(), Secret::new(s.value)));
        }
    }
    vars.retain(|(n, _)| n != "RESTIC_REPOSITORY");
    vars.push(("RESTIC_REPOSITORY".into(), repository.clone()));
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ResticSettings {
        repository,
        env: vars,
        preflight_timeout: opt(env, "PREFLIGHT_TIMEOUT", duration)?.unwrap_or(PREFLIGHT_TIMEOUT),
    })
}

#[cfg(test)]
mod tests;
