//! Which rustic backend opens a restic repository, with the credentials
//! restic is given. Pure: [`map`] reads the repository string and the
//! resolved restic variables (`_FILE` forms already read, see
//! [`crate::config::ResticSettings`]) and returns either a [`BackendSpec`]
//! (rustic_backend's repository string and options) or why not
//! ([`Unmappable`], one line).
//!
//! | restic form | rustic backend | credentials |
//! |---|---|---|
//! | `/path`, `local:/path` | local | none |
//! | `rest:http(s)://[user:pass@]host[:port]/path` | rest | URL, else `RESTIC_REST_USERNAME`/`RESTIC_REST_PASSWORD`; `RESTIC_CACERT` (one file), `RESTIC_TLS_CLIENT_CERT` |
//! | `s3:host/bucket/prefix`, `s3:http(s)://host:port/bucket/prefix` | OpenDAL `s3` | `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), `AWS_DEFAULT_REGION` |
//! | `azure:container:/path` | OpenDAL `azblob` | `AZURE_ACCOUNT_NAME` + `AZURE_ACCOUNT_KEY` or `AZURE_ACCOUNT_SAS`, `AZURE_ENDPOINT_SUFFIX` |
//! | `gs:bucket:/path` | OpenDAL `gcs` | `GOOGLE_ACCESS_TOKEN`, else `GOOGLE_APPLICATION_CREDENTIALS` (a file) |
//! | `swift:container:/path` | OpenDAL `swift` | `OS_STORAGE_URL` + `OS_AUTH_TOKEN` |
//! | `sftp:[user@]host:/path`, `sftp://[user@]host[:port]//path` | OpenDAL `sftp` | ssh's own (keys, agent, `~/.ssh/config`) |
//! | `rclone:remote:path` | rclone | rclone's config file |
//!
//! Unmappable: `b2:` (OpenDAL's B2 needs the bucket's id, which restic's form
//! does not carry), credentials restic finds on its own (an instance role or
//! profile, `az login`, a machine's default Google account, Keystone logins,
//! an assumed AWS role), `RESTIC_CACERT`/`RESTIC_TLS_CLIENT_CERT` with an
//! OpenDAL backend (it trusts the system's CAs only), `RCLONE_*` variables
//! (rustic starts rclone with stackshot's own environment, not the resolved
//! one), relative paths, `rest:http+unix://`.
//!
//! Limits of the mapped forms:
//! - S3: the region is `AWS_DEFAULT_REGION`, else the one in an Amazon host
//!   name (`s3.eu-west-1.amazonaws.com`), else for any other server
//!   `us-east-1` as restic's default; Amazon's global `s3.amazonaws.com`
//!   without `AWS_DEFAULT_REGION` is unmappable (restic asks the bucket for its
//!   region, rustic cannot). Amazon and Google hosts are addressed
//!   virtual-host style (bucket names with dots: path style), others path
//!   style, as restic's `s3.bucket-lookup=auto`.
//! - sftp: OpenDAL runs the `ssh` binary (not in stackshot's image, where
//!   restic's sftp cannot run either), with ssh's own key lookup and strict
//!   host key checking; no password login (restic cannot either). A relative
//!   path (restic: under the login's home directory) is unmappable, OpenDAL
//!   resolves it from `/`.
//! - swift: the token is used as it is and is not renewed.
//! - rest with `RESTIC_CACERT`: rustic trusts that file on top of the system's
//!   CAs (restic: that file only).
//!
//! Retries and timeouts are bounded ([`RETRIES`], [`REST_TIMEOUT`],
//! [`CONNECTIONS`]): a merge or a file pass that fails is reported, a hung one
//! holds the run. rustic's OpenDAL backends have no timeout option.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use thiserror::Error;
use url::Url;

use crate::config::{ResticSettings, mask_repository};

/// How often a failed request is retried (rustic's default: 5).
pub const RETRIES: &str = "3";
/// How long one REST request may take (rustic's default: 10 minutes). Covers a
/// data pack (rustic's grow with the repository: about 40 MiB at 100 GiB) at
/// half a megabyte a second.
pub const REST_TIMEOUT: &str = "2m";
/// Requests at once to an OpenDAL backend (restic's default; rustic's: no limit).
pub const CONNECTIONS: &str = "5";

/// rustic's cache under `RESTIC_CACHE_DIR`: restic keeps one directory per
/// repository id there (64 hex digits), so this name never meets restic's.
pub const CACHE_SUBDIR: &str = "rustic";

/// Option keys whose values may be shown; every other value is hidden.
const SHOWN_OPTIONS: &[&str] = &[
    "bucket",
    "container",
    "root",
    "endpoint",
    "region",
    "account_name",
    "user",
    "credential_path",
    "cacert",
    "tls-client-cert",
    "enable_virtual_host_style",
    "disable_config_load",
    "disable_ec2_metadata",
    "disable_vm_metadata",
    "retry",
    "timeout",
    "connections",
];

/// A repository as rustic_backend opens it. `Debug` hides secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// rustic_backend's repository string: a local path, `rest:URL` (may hold
    /// a password), `rclone:REMOTE:PATH` or `opendal:SERVICE`.
    pub repository: String,
    /// rustic_backend's options (OpenDAL's service configuration; may hold
    /// keys and tokens).
    pub options: BTreeMap<String, String>,
    /// rustic's cache directory (`RESTIC_CACHE_DIR/rustic`); `None`: no cache.
    pub cache_dir: Option<PathBuf>,
}

impl BackendSpec {
    /// The directory of a local repository; `None` for any other.
    pub fn local_dir(&self) -> Option<&str> {
        self.repository
            .starts_with('/')
            .then_some(self.repository.as_str())
    }

    /// The repository string, a URL's password masked: for messages.
    pub fn shown(&self) -> String {
        mask_repository(&self.repository)
    }

    /// `text` (a rustic error or warning) with this spec's secrets replaced:
    /// the values [`Debug`](fmt::Debug) hides, and a REST URL's password.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (key, value) in &self.options {
            if !SHOWN_OPTIONS.contains(&key.as_str()) && value.len() >= 4 {
                out = out.replace(value.as_str(), "<hidden>");
            }
        }
        if let Some(url) = self.repository.strip_prefix("rest:")
            && let Ok(url) = Url::parse(url)
            && let Some(password) = url.password()
        {
            out = out.replace(&format!(":{password}@"), ":***@");
        }
        out
    }

    fn local(path: &str) -> BackendSpec {
        BackendSpec {
            repository: path.to_string(),
            options: BTreeMap::new(),
            cache_dir: None,
        }
    }
}

impl fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| {
                let shown = if SHOWN_OPTIONS.contains(&k.as_str()) {
                    v.as_str()
                } else {
                    "<hidden>"
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("BackendSpec")
            .field("repository", &self.shown())
            .field("options", &options)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

/// Why rustic cannot open a repository: one line naming restic's form and
/// what to do. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Unmappable(pub String);

fn unmappable<T>(reason: impl Into<String>) -> Result<T, Unmappable> {
    Err(Unmappable(reason.into()))
}

/// The resolved restic variables by name: what [`map`] reads.
pub type Vars = BTreeMap<String, String>;

/// [`map`] for the sidecar's settings.
pub fn map_settings(settings: &ResticSettings) -> Result<BackendSpec, Unmappable> {
    let vars: Vars = settings
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string()))
        .collect();
    map(settings.repository.expose(), &vars)
}

/// The rustic backend for restic's `repository`, with the credentials in
/// `vars` (restic's variables, resolved). Pure.
pub fn map(repository: &str, vars: &Vars) -> Result<BackendSpec, Unmappable> {
    let var = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let mut spec = match repository.split_once(':') {
        Some(("local", path)) if path.starts_with('/') => return Ok(BackendSpec::local(path)),
        Some(("local", _)) => {
            return unmappable(
                "local: with a relative path: the sidecar and its worker may not share a working directory; give an absolute path",
            );
        }
        Some(("rest", url)) => rest(url, &var)?,
        Some(("s3", location)) => s3(location, &var)?,
        Some(("b2", _)) => {
            return unmappable(
                "b2:bucket:path (B2_ACCOUNT_ID/B2_ACCOUNT_KEY): rustic's B2 backend needs the bucket's id, which restic's form does not name; for the short window use B2's S3-compatible API (s3:https://s3.REGION.backblazeb2.com/bucket/path, the application key as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), as restic's documentation recommends",
            );
        }
        Some(("azure", location)) => azure(location, &var)?,
        Some(("gs", location)) => gs(location, &var)?,
        Some(("swift", location)) => swift(location, &var)?,
        Some(("sftp", _)) => sftp(repository)?,
        Some(("rclone", remote)) => rclone(remote, vars)?,
        _ if repository.starts_with('/') => return Ok(BackendSpec::local(repository)),
        _ => {
            return unmappable(
                "the repository is neither an absolute path nor one of restic's rest:, s3:, azure:, gs:, swift:, sftp:, rclone: or b2: forms",
            );
        }
    };
    spec.cache_dir = var("RESTIC_CACHE_DIR").map(|d| PathBuf::from(d).join(CACHE_SUBDIR));
    Ok(spec)
}

type Var<'a> = dyn Fn(&str) -> Option<&'a str> + 'a;

fn spec(
    repository: impl Into<String>,
    options: &[(&str, &str)],
    http_timeout: bool,
) -> BackendSpec {
    let mut map: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("retry".into(), RETRIES.into());
    if http_timeout {
        map.insert("timeout".into(), REST_TIMEOUT.into());
    } else {
        map.insert("connections".into(), CONNECTIONS.into());
    }
    BackendSpec {
        repository: repository.into(),
        options: map,
        cache_dir: None,
    }
}

/// OpenDAL backends trust the system's CAs only and present no client certificate.
fn system_tls_only(form: &str, var: &Var<'_>) -> Result<(), Unmappable> {
    for name in ["RESTIC_CACERT", "RESTIC_TLS_CLIENT_CERT"] {
        if var(name).is_some() {
            return unmappable(format!(
                "{form} with {name}: rustic's {form} backend (OpenDAL) uses the system's CA certificates and no client certificate"
            ));
        }
    }
    Ok(())
}

fn rest(url: &str, var: &Var<'_>) -> Result<BackendSpec, Unmappable> {
    if url.starts_with("http+unix:") {
        return unmappable(
            "rest: over a unix socket (http+unix://): rustic's REST backend speaks TCP only; serve the REST server on a port",
        );
    }
    let mut parsed = match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            return unmappable(
                "rest: needs an http:// or https:// URL with a host (rest:https://host:8000/path)",
            );
        }
    };
    // restic 0.16+ takes the variables when the URL names neither user nor password.
    if parsed.username().is_empty() && parsed.password().is_none() {
        let (user, password) = (var("RESTIC_REST_USERNAME"), var("RESTIC_REST_PASSWORD"));
        if user.is_some() || password.is_some() {
            let set = parsed.set_username(user.unwrap_or_default()).is_ok()
                && parsed.set_password(password).is_ok();
            if !set {
                return unmappable(
                    "rest: the URL cannot carry RESTIC_REST_USERNAME/RESTIC_REST_PASSWORD",
                );
            }
        }
    }
    let mut options = Vec::new();
    if let Some(cacert) = var("RESTIC_CACERT") {
        if cacert.contains(',') {
            return unmappable(
                "rest: with several RESTIC_CACERT files: rustic's REST backend takes one; put the certificates in one file",
            );
        }
        options.push(("cacert", cacert));
    }
    if let Some(cert) = var("RESTIC_TLS_CLIENT_CERT") {
        options.push(("tls-client-cert", cert));
    }
    Ok(spec(format!("rest:{parsed}"), &options, true))
}

/// An Amazon host's region (`s3.eu-west-1.amazonaws.com`,
/// `s3-eu-west-1.amazonaws.com`, `s3.dualstack.eu-west-1.amazonaws.com`).
fn amazon_region(host: &str) -> Option<&str> {
    let name = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let rest = name
        .strip_prefix("s3.")
        .or_else(|| name.strip_prefix("s3-"))?;
    let rest = rest.strip_prefix("dualstack.").unwrap_or(rest);
    (!rest.is_empty() && !rest.contains('.')).then_some(rest)
}

fn is_amazon(host: &str) -> bool {
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

fn s3(location: &str, var: &Var<'_>) -> Result<BackendSpec, Unmappable> {
    const FORMS: &str = "s3:host/bucket[/prefix] or s3:https://host[:port]/bucket[/prefix]";
    let (scheme, host, path) = if location.starts_with("http") {
        match Url::parse(location) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                let host = match u.port() {
                    Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
                    None => u.host_str().unwrap_or_default().to_string(),
                };
                (
                    u.scheme().to_string(),
                    host,
                    u.path().trim_start_matches('/').to_string(),
                )
            }
            _ => return unmappable(format!("s3: not a URL restic reads; use {FORMS}")),
        }
    } else {
        let s = location.strip_prefix("//").unwrap_or(location);
        let (host, path) = s.split_once('/').unwrap_or((s, ""));
        ("https".to_string(), host.to_string(), path.to_string())
    };
    let (bucket, prefix) = path.split_once('/').unwrap_or((&path, ""));
    if host.is_empty() || bucket.is_empty() {
        return unmappable(format!("s3: no host or bucket; use {FORMS}"));
    }
    system_tls_only("s3", var)?;
    if var("RESTIC_AWS_ASSUME_ROLE_ARN").is_some() {
        return unmappable(
            "s3 with RESTIC_AWS_ASSUME_ROLE_ARN: restic assumes the role itself and rustic is not given that role's keys; give the role's keys as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN",
        );
    }
    let (Some(key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    else {
        return unmappable(
            "s3 without both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: restic may find keys on its own (a profile file, an instance role), rustic is given only these variables; set both (or their _FILE forms)",
        );
    };
    let hostname = host.split(':').next().unwrap_or_default();
    let region = match var("AWS_DEFAULT_REGION").or_else(|| amazon_region(hostname)) {
        Some(r) => r,
        None if is_amazon(hostname) => {
            return unmappable(
                "s3 on Amazon's global endpoint without AWS_DEFAULT_REGION: restic asks the bucket for its region, rustic's S3 backend cannot; set AWS_DEFAULT_REGION (or use the regional host, s3.REGION.amazonaws.com)",
            );
        }
        // restic's (minio's) default for any other server.
        None => "us-east-1",
    };
    let dns =
        (is_amazon(hostname) || hostname == "storage.googleapis.com") && !bucket.contains('.');
    let endpoint = format!("{scheme}://{host}");
    let root = format!("/{prefix}");
    let mut options = vec![
        ("bucket", bucket),
        ("root", root.as_str()),
        ("endpoint", endpoint.as_str()),
        ("region", region),
        ("access_key_id", key_id),
        ("secret_access_key", secret),
        // Nothing but these variables: not the process's, no profile, no instance role.
        ("disable_config_load", "true"),
        ("disable_ec2_metadata", "true"),
    ];
    if let Some(token) = var("AWS_SESSION_TOKEN") {
        options.push(("session_token", token));
    }
    if dns {
        options.push(("enable_virtual_host_style", "true"));
    }
    Ok(spec("opendal:s3", &options, false))
}

/// `NAME:/path` → (NAME, path without slashes at its ends, `.` as none).
fn container_and_prefix<'a>(
    form: &str,
    location: &'a str,
) -> Result<(&'a str, &'a str), Unmappable> {
    match location.split_once(':') {
        Some((name, prefix)) if !name.is_empty() => {
            let prefix = prefix.trim_matches('/');
            Ok((name, if prefix == "." { "" } else { prefix }))
        }
        _ => unmappable(format!(
            "{form}: no container or path; use {form}:NAME:/path"
        )),
    }
}

fn azure(location: &str, var: &Var<'_>) -> Result<BackendSpec, Unmappable> {
    let (container, prefix) = container_and_prefix("azure", location)?;
    system_tls_only("azure", var)?;
    let Some(account) = var("AZURE_ACCOUNT_NAME") else {
        return unmappable(
            "azure without AZURE_ACCOUNT_NAME: set it (and AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS)",
        );
    };
    if var("AZURE_FORCE_CLI_CREDENTIAL")
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"))
    {
        return unmappable(
            "azure with AZURE_FORCE_CLI_CREDENTIAL: restic logs in with the Azure CLI, rustic cannot; set AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS instead",
        );
    }
    let suffix = var("AZURE_ENDPOINT_SUFFIX").unwrap_or("core.windows.net");
    let endpoint = format!("https://{account}.blob.{suffix}");
    let root = format!("/{prefix}");
    let mut options = vec![
        ("container", container),
        ("root", root.as_str()),
        ("endpoint", endpoint.as_str()),
        ("account_name", account),
    ];
    // restic's order: the account key, else the SAS token.
    match (var("AZURE_ACCOUNT_KEY"), var("AZURE_ACCOUNT_SAS")) {
        (Some(key), _) => options.push(("account_key", key)),
        (None, Some(sas)) => options.push(("sas_token", sas.strip_prefix('?').unwrap_or(sas))),
        (None, None) => {
            return unmappable(
                "azure without AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS: restic may log in on its own (az login, a managed identity), rustic cannot; set one of them",
            );
        }
    }
    Ok(spec("opendal:azblob", &options, false))
}

fn gs(location: &str, var: &Var<'_>) -> Result<BackendSpec, Unmappable> {
    let (bucket, prefix) = container_and_prefix("gs", location)?;
    system_tls_only("gs", var)?;
    let root = format!("/{prefix}");
    let mut options = vec![
        ("bucket", bucket),
        ("root", root.as_str()),
        ("disable_config_load", "true"),
        ("disable_vm_metadata", "true"),
    ];
    // restic: an access token turns every other way off.
    match (
        var("GOOGLE_ACCESS_TOKEN"),
        var("GOOGLE_APPLICATION_CREDENTIALS"),
    ) {
        (Some(token), _) => options.push(("token", token)),
        (None, Some(path)) => options.push(("credential_path", path)),
        (None, None) => {
            return unmappable(
                "gs without GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_ACCESS_TOKEN: restic may use the machine's default Google account, rustic is given only these variables; set one of them",
            );
        }
    }
    Ok(spec("opendal:gcs", &options, false))
}

fn swift(location: &str, var: &Var<'_>) -> Result<BackendSpec, Unmappable> {
    let (container, prefix) = match location.split_once(':') {
        Some((c, p)) if !c.is_empty() && p.starts_with('/') => (c, p.trim_matches('/')),
        _ => return unmappable("swift: use swift:container:/path (restic's form)"),
    };
    system_tls_only("swift", var)?;
    let (Some(url), Some(token)) = (var("OS_STORAGE_URL"), var("OS_AUTH_TOKEN")) else {
        return unmappable(
            "swift with a Keystone or v1 login (OS_AUTH_URL/OS_USERNAME/OS_PASSWORD, ST_AUTH/ST_USER/ST_KEY, application credentials): rustic's swift backend takes only a ready token; set OS_STORAGE_URL and OS_AUTH_TOKEN",
        );
    };
    let root = format!("/{prefix}");
    let options = [
        ("endpoint", url),
        ("container", container),
        ("root", root.as_str()),
        ("token", token),
    ];
    Ok(spec("opendal:swift", &options, false))
}

fn sftp(repository: &str) -> Result<BackendSpec, Unmappable> {
    const FORMS: &str = "sftp:[user@]host:/path or sftp://[user@]host[:port]//path";
    let (user, endpoint, path) = if repository.starts_with("sftp://") {
        let Ok(u) = Url::parse(repository) else {
            return unmappable(format!("sftp: not a URL restic reads; use {FORMS}"));
        };
        let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
            return unmappable(format!("sftp: no host; use {FORMS}"));
        };
        let endpoint = match u.port() {
            Some(port) => format!("ssh://{host}:{port}"),
            None => host.to_string(),
        };
        let user = (!u.username().is_empty()).then(|| u.username().to_string());
        // The first slash ends the host part: `//path` is absolute.
        let path = u.path().strip_prefix('/').unwrap_or_default().to_string();
        (user, endpoint, path)
    } else {
        let s = &repository["sftp:".len()..];
        let Some((login, path)) = s.split_once(':') else {
            return unmappable(format!("sftp: no host or path; use {FORMS}"));
        };
        // `user@domain@host`: the user is everything before the last `@`.
        let (user, host) = match login.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, login),
        };
        (user, host.to_string(), path.to_string())
    };
    if endpoint.is_empty() || endpoint.starts_with('-') {
        return unmappable(format!("sftp: no host; use {FORMS}"));
    }
    if !path.starts_with('/') {
        return unmappable(
            "sftp with a relative path (under the login's home directory): rustic's sftp backend (OpenDAL) resolves it from /; give the absolute path",
        );
    }
    let mut options = vec![("endpoint", endpoint.as_str()), ("root", path.as_str())];
    if let Some(user) = &user {
        options.push(("user", user.as_str()));
    }
    Ok(spec("opendal:sftp", &options, false))
}

fn rclone(remote: &str, vars: &Vars) -> Result<BackendSpec, Unmappable> {
    if remote.is_empty() {
        return unmappable("rclone: no remote; use rclone:remote:path");
    }
    if let Some(name) = vars
        .iter()
        .find(|(k, v)| k.starts_with("RCLONE_") && !v.is_empty())
        .map(|(k, _)| k)
    {
        return unmappable(format!(
            "rclone with {name} set: rustic starts rclone with stackshot's own environment, not the variables restic is given; configure the remote in rclone's config file"
        ));
    }
    Ok(spec(format!("rclone:{remote}"), &[], true))
}

#[cfg(test)]
mod tests;
