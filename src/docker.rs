//! The connection to the Docker engine.

use anyhow::{Context, Result};
use bollard::{API_DEFAULT_VERSION, Docker};

const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";
const TIMEOUT_SECS: u64 = 120;

/// Connects to the engine at `host` (`DOCKER_HOST`, default: the local socket)
/// and agrees on an API version the engine speaks (it may be older than
/// bollard's default).
pub async fn connect(host: Option<&str>) -> Result<Docker> {
    let host = host.unwrap_or(DEFAULT_SOCKET);
    let hint = || {
        format!(
            "cannot reach the Docker engine at {host}; mount the socket into the container \
             (/var/run/docker.sock:/var/run/docker.sock) or set DOCKER_HOST to a socket proxy"
        )
    };
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(host, TIMEOUT_SECS, API_DEFAULT_VERSION)
    }
    .with_context(hint)?;
    let docker = docker.negotiate_version().await.with_context(hint)?;
    tracing::debug!(host, api = %docker.client_version(), "connected to the Docker engine");
    Ok(docker)
}
