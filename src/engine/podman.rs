//! What only Podman's own API tells: the containers a container requires.
//!
//! podman-compose (1.0.6 and later) gives a service's `depends_on` to
//! `podman create --requires`, and writes no `com.docker.compose.depends_on`
//! label. Podman's Docker-compatible inspect leaves the requirement out;
//! its own inspect (`/libpod/containers/<id>/json`) lists it as
//! `Dependencies`, by container id. podman-compose 1.0.3 (Debian
//! bookworm's) passes no `--requires` at all: its containers say nothing
//! of their order, and neither can stackshot.

use anyhow::{Context, Result, bail};
use bollard::Docker;
use futures_util::TryStreamExt;
use hyper::http::uri::{PathAndQuery, Uri};
use serde::Deserialize;

/// The label podman-compose puts on every container it creates.
pub const PODMAN_COMPOSE_LABEL: &str = "io.podman.compose.project";

/// The part of Podman's own inspect answer stackshot reads.
#[derive(Debug, Deserialize)]
struct LibpodInspect {
    #[serde(rename = "Dependencies", default)]
    dependencies: Option<Vec<String>>,
}

/// The ids of the containers that `id` requires, from Podman's own inspect
/// answer (`body`). Pure.
pub fn parse_dependencies(body: &[u8]) -> Result<Vec<String>> {
    let inspect: LibpodInspect = serde_json::from_slice(body)
        .context("Podman's inspect answer is not the JSON object Podman 4 sends")?;
    Ok(inspect.dependencies.unwrap_or_default())
}

/// Asks Podman which containers `id` requires.
///
/// bollard speaks only the Docker-compatible API and sends no request of
/// one's choosing. This borrows its connection (whatever `DOCKER_HOST`
/// names: a socket, TCP, TLS or SSH) for one request: a copy of the client
/// whose request hook replaces the path of every request it sends with
/// Podman's inspect path, used for a single call whose answer comes back as
/// raw bytes (the export call). The copy replaces the path unconditionally,
/// so no export ever reaches the engine.
pub async fn dependencies(docker: &Docker, id: &str) -> Result<Vec<String>> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{id:?} is not a container id");
    }
    let path = PathAndQuery::try_from(format!("/v4.0.0/libpod/containers/{id}/json"))
        .context("Podman's inspect path")?;
    let libpod = docker.clone().with_request_modifier(move |mut request| {
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = Some(path.clone());
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        } else {
            // Unreachable with a URI bollard built; never send the export.
            *request.method_mut() = hyper::Method::HEAD;
        }
        request
    });
    let chunks: Vec<_> = libpod
        .export_container(id)
        .try_collect()
        .await
        .with_context(|| format!("cannot read container {id} through Podman's own API"))?;
    parse_dependencies(&chunks.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from Podman 4.3.1 (Debian bookworm): `shop_app_1` was
    /// created with `--requires shop_db_1`, as podman-compose 1.0.6 creates
    /// a dependent service.
    #[test]
    fn reads_the_required_containers_and_none_when_absent() {
        let recorded = include_bytes!("../../tests/fixtures/podman/libpod-inspect-requires.json");
        assert_eq!(
            parse_dependencies(recorded).unwrap(),
            ["29bfe2957b30500506c55732d1fca1a0f4b38c153da3edcfb9f35ea5cf15b0ea"]
        );
        assert!(
            parse_dependencies(br#"{"Id":"x","Dependencies":[]}"#)
                .unwrap()
                .is_empty()
        );
        assert!(parse_dependencies(br#"{"Id":"x"}"#).unwrap().is_empty());
        let bad = parse_dependencies(b"<html>").unwrap_err();
        assert!(format!("{bad:#}").contains("Podman 4"), "{bad:#}");
    }
}
