//! The Docker engine: connection, and the few container operations stackshot
//! needs. Streamed exec is in [`exec`], the worker container in [`worker`],
//! stopping (done at the container's `die`) in [`stop`], and a swarm
//! service's stop (scaled to 0 and back) in [`scale`], and what only
//! Podman's own API tells (podman-compose's dependencies) in [`podman`].

pub mod access;
pub mod exec;
pub mod owner;
pub mod podman;
pub mod scale;
pub mod stop;
pub mod throwaway;
pub mod worker;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bollard::errors::Error as BollardError;
use bollard::models::ContainerInspectResponse;
use bollard::{API_DEFAULT_VERSION, Docker};

use crate::container::service_of;
use crate::env::Secret;

const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";
const TIMEOUT_SECS: u64 = 600;

/// A connection to the engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

/// True for the engine's "no such container/exec" answer.
pub fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// True for the engine's "nothing to do" answer (already started/stopped).
pub fn is_not_modified(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

impl Engine {
    /// Connects to the engine at `host` (`DOCKER_HOST`, default: the local socket)
    /// and agrees on an API version the engine speaks (it may be older than
    /// bollard's default).
    pub async fn connect(host: Option<&str>) -> Result<Engine> {
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
        Ok(Engine { docker })
    }

    /// The bollard client the engine wraps, for calls the engine has no method for.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Removes a container (running or not) with its anonymous volumes.
    /// `Ok(false)`: it was already gone.
    pub async fn remove_with_volumes(&self, id: &str) -> Result<bool, BollardError> {
        let removed = self
            .docker
            .remove_container(
                id,
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        match removed {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Inspects the container `id`; the error names the container.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        self.docker
            .inspect_container(id, None)
            .await
            .with_context(|| format!("cannot inspect container {id}"))
    }

    /// A container's environment as configured, every value treated as a secret.
    pub async fn env_of(&self, id: &str) -> Result<BTreeMap<String, Secret>> {
        let c = self.inspect(id).await?;
        Ok(c.config
            .and_then(|c| c.env)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), Secret::new(v)))
            })
            .collect())
    }

    /// True when the container runs now; for a swarm service's stop target
    /// ([`crate::container::service_target`]), when the service is up.
    pub async fn is_running(&self, id: &str) -> Result<bool> {
        if let Some(service) = service_of(id) {
            return scale::is_up(&self.docker, service).await;
        }
        let c = self.inspect(id).await?;
        Ok(c.state.and_then(|s| s.running).unwrap_or(false))
    }
}
