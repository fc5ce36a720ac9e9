//! Failing fast on a repository that cannot be reached.
//!
//! restic retries a failing backend request for up to 15 minutes, and no
//! version up to 0.18 lets that be shortened. Before the preflight asks restic
//! anything, [`probe`] therefore opens one TCP connection to the endpoint of an
//! `s3:` or `rest:` repository ([`endpoint`], pure), and gives up after
//! [`CONNECT_TIMEOUT`]: a dead, refused or unresolvable endpoint is one line
//! in a few seconds. An endpoint that accepts the connection but keeps failing
//! is caught by the time limit the preflight puts on restic itself
//! (`PREFLIGHT_TIMEOUT`, [`PREFLIGHT_TIMEOUT`] by default; see
//! `Restic::open`).
//!
//! restic reaches the endpoint through `HTTPS_PROXY`/`HTTP_PROXY` when they
//! are set; a direct connection proves nothing then, so the probe is skipped
//! ([`behind_proxy`]) and only the time limit applies.
//!
//! Other backends (local paths, `sftp:` with its ssh aliases, `rclone:`, the
//! cloud SDKs of `b2:`, `azure:`, `gs:`, `swift:`) are not probed: their
//! endpoint cannot be read off the repository string with certainty.

use std::time::Duration;

use url::Url;

pub use crate::config::PREFLIGHT_TIMEOUT;

/// How long the TCP probe waits for the name to resolve and the connection
/// to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a remote repository's server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// The TCP port: the URL's port, else the scheme's default.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The endpoint of an `s3:` or `rest:` repository; `None` for every other
/// kind, and for a string that does not parse (restic then says why).
///
/// `s3:host[:port]/bucket` without a scheme is HTTPS, as in restic.
pub fn endpoint(repository: &str) -> Option<Endpoint> {
    let (kind, rest) = repository.split_once(':')?;
    let url = match kind {
        "s3" if rest.starts_with("http://") || rest.starts_with("https://") => rest.to_string(),
        "s3" => format!("https://{rest}"),
        "rest" if rest.starts_with("http://") || rest.starts_with("https://") => rest.to_string(),
        _ => return None,
    };
    let url = Url::parse(&url).ok()?;
    let host = match url.host()? {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    if host.is_empty() {
        return None;
    }
    Some(Endpoint {
        host,
        port: url.port_or_known_default()?,
    })
}

/// True when restic would reach its endpoint through an HTTP proxy (one of
/// the variables Go's HTTP client reads is set and not empty); `var` reads
/// the environment.
pub fn behind_proxy(var: impl Fn(&str) -> Option<String>) -> bool {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|name| var(name).is_some_and(|v| !v.trim().is_empty()))
}

/// Opens (and closes) one TCP connection to `endpoint` within `timeout`;
/// `Err` is the reason, for one line ("connection refused", "no such host",
/// "no answer within 10 s").
pub async fn probe(endpoint: &Endpoint, timeout: Duration) -> Result<(), String> {
    let target = (endpoint.host.as_str(), endpoint.port);
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host(target)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", endpoint.host))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{} resolves to no address", endpoint.host));
        }
        let mut last = String::new();
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Option<Endpoint> {
        Some(Endpoint {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn s3_and_rest_endpoints_are_read_with_their_default_ports() {
        assert_eq!(endpoint("s3:http://s3:8333/stackshot"), ep("s3", 8333));
        assert_eq!(endpoint("s3:http://minio/bucket"), ep("minio", 80));
        assert_eq!(
            endpoint("s3:https://s3.eu-central-003.backblazeb2.example/b/p"),
            ep("s3.eu-central-003.backblazeb2.example", 443)
        );
        // No scheme: restic speaks HTTPS.
        assert_eq!(endpoint("s3:s3.example/bucket/sub"), ep("s3.example", 443));
        assert_eq!(endpoint("s3:garage:3900/bucket"), ep("garage", 3900));
        assert_eq!(
            endpoint("rest:http://user:pw@10.0.0.5:8000/repo/"),
            ep("10.0.0.5", 8000)
        );
        assert_eq!(endpoint("rest:https://[::1]/"), ep("::1", 443));
    }

    #[test]
    fn other_repositories_are_not_probed() {
        for repo in [
            "/repository",
            "local:/srv/restic",
            "sftp:user@host:/srv/restic",
            "sftp://user@host:2222/srv",
            "rclone:remote:bucket",
            "b2:bucket:path",
            "azure:container:/",
            "gs:bucket:/",
            "swift:container:/",
            "rest:",
            "s3:",
        ] {
            assert_eq!(endpoint(repo), None, "{repo}");
        }
    }

    #[test]
    fn an_http_proxy_in_the_environment_turns_the_probe_off() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!behind_proxy(env(&[])));
        assert!(!behind_proxy(env(&[
            ("HTTPS_PROXY", " "),
            ("NO_PROXY", "s3")
        ])));
        assert!(behind_proxy(env(&[("HTTPS_PROXY", "http://proxy:3128")])));
        assert!(behind_proxy(env(&[("http_proxy", "http://proxy:3128")])));
    }

    #[test]
    fn an_endpoint_with_a_v6_address_is_shown_in_brackets() {
        assert_eq!(ep("::1", 443).unwrap().to_string(), "[::1]:443");
        assert_eq!(ep("s3", 8333).unwrap().to_string(), "s3:8333");
    }

    #[tokio::test]
    async fn a_refused_port_fails_at_once_and_an_open_one_passes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = ep("127.0.0.1", port).unwrap();
        assert_eq!(probe(&open, CONNECT_TIMEOUT).await, Ok(()));
        drop(listener);
        let err = probe(&open, CONNECT_TIMEOUT).await.unwrap_err();
        assert!(err.contains("refused"), "{err}");
        let err = probe(&ep("no-such-host.invalid", 80).unwrap(), CONNECT_TIMEOUT)
            .await
            .unwrap_err();
        assert!(err.contains("cannot resolve no-such-host.invalid"), "{err}");
    }
}
