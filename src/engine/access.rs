//! Which parts of the Docker API the engine (or a socket proxy in front of
//! it) lets stackshot use, checked before anything is stopped. A proxy in the
//! style of docker-socket-proxy answers a denied section with HTTP 403; the
//! engine itself answers a harmless probe (a request about a container or
//! exec that does not exist) with 404. So each probe tells "allowed" from
//! "denied" without changing anything.

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    EventsOptions, ListContainersOptions, ListVolumesOptions, StopContainerOptions,
};
use futures_util::StreamExt;

use super::Engine;

/// A section of the API, by the name docker-socket-proxy gives its switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/containers/…`: discovery, stop and start, the worker, archives.
    Containers,
    /// `/exec/…`: dumps, hooks, probes (created under `/containers`).
    Exec,
    /// `/volumes`: a drill's throwaway volumes, removed afterwards.
    Volumes,
    /// `/events`: a stop confirmed by the engine's `die` event.
    Events,
    /// Any method but GET and HEAD: stop, start, create, exec, upload.
    Post,
}

impl Section {
    /// Every section stackshot needs, in the order they are checked.
    pub const ALL: [Section; 5] = [
        Section::Containers,
        Section::Exec,
        Section::Volumes,
        Section::Events,
        Section::Post,
    ];

    /// The proxy's name for it (`CONTAINERS=1`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Containers => "CONTAINERS",
            Section::Exec => "EXEC",
            Section::Volumes => "VOLUMES",
            Section::Events => "EVENTS",
            Section::Post => "POST",
        }
    }

    /// The request that probes it, as shown in an error.
    pub fn probe(self) -> &'static str {
        match self {
            Section::Containers => "GET /containers/json",
            Section::Exec => "GET /exec/<none>/json",
            Section::Volumes => "GET /volumes",
            Section::Events => "GET /events",
            Section::Post => "POST /containers/<none>/stop",
        }
    }
}

/// A name no container or exec has: the engine answers 404 about it.
const NONE: &str = "stackshot-access-probe-0000";

/// What one probe's answer means: `Err(status)` denied (401, 403, 405);
/// anything else allowed: a success, the engine's 404 about the probe's
/// name, or another failure (left to whatever needs the section to report).
/// Pure.
pub fn verdict<T>(r: &Result<T, BollardError>) -> Result<(), u16> {
    match r {
        Err(BollardError::DockerResponseServerError {
            status_code: code @ (401 | 403 | 405),
            ..
        }) => Err(*code),
        _ => Ok(()),
    }
}

async fn probe(engine: &Engine, s: Section) -> Result<(), u16> {
    let d = engine.docker();
    match s {
        Section::Containers => verdict(
            &d.list_containers(Some(ListContainersOptions {
                limit: Some(1),
                ..Default::default()
            }))
            .await,
        ),
        Section::Exec => verdict(&d.inspect_exec(NONE).await),
        Section::Volumes => verdict(&d.list_volumes(None::<ListVolumesOptions>).await),
        Section::Events => {
            let now = jiff::Timestamp::now().as_second().to_string();
            let mut events = d.events(Some(EventsOptions {
                since: Some(now.clone()),
                until: Some(now),
                ..Default::default()
            }));
            match events.next().await {
                Some(Err(e)) => verdict::<()>(&Err(e)),
                _ => Ok(()),
            }
        }
        Section::Post => verdict(&d.stop_container(NONE, None::<StopContainerOptions>).await),
    }
}

/// The one line naming every denied section, or `None` when all are
/// allowed. Pure.
pub fn denied_line(host: &str, denied: &[(Section, u16)]) -> Option<String> {
    if denied.is_empty() {
        return None;
    }
    let what = denied
        .iter()
        .map(|(s, code)| format!("{} (HTTP {code} on {})", s.as_str(), s.probe()))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "the Docker API at {host} denies {what}; nothing was stopped: stackshot needs {} (and the default PING and VERSION); allow them in the socket proxy (docs/socket-proxy.md)",
        Section::ALL.map(Section::as_str).join(", ")
    ))
}

/// Checks every section; the error is [`denied_line`].
pub async fn check(engine: &Engine, host: &str) -> anyhow::Result<()> {
    let mut denied = Vec::new();
    for s in Section::ALL {
        if let Err(code) = probe(engine, s).await {
            denied.push((s, code));
        }
    }
    match denied_line(host, &denied) {
        Some(line) => anyhow::bail!(line),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> Result<(), BollardError> {
        Err(BollardError::DockerResponseServerError {
            status_code: code,
            message: "x".into(),
        })
    }

    #[test]
    fn a_proxy_denial_is_told_from_the_engine_not_knowing_the_probe() {
        assert_eq!(verdict(&server(403)), Err(403));
        assert_eq!(verdict(&server(401)), Err(401));
        assert_eq!(verdict(&server(404)), Ok(()));
        assert_eq!(verdict(&server(500)), Ok(()));
        assert_eq!(verdict(&Ok::<(), BollardError>(())), Ok(()));
    }

    #[test]
    fn the_line_names_each_denied_section_and_what_is_needed() {
        assert_eq!(denied_line("tcp://proxy:2375", &[]), None);
        let line = denied_line(
            "tcp://proxy:2375",
            &[(Section::Exec, 403), (Section::Post, 403)],
        )
        .unwrap();
        assert_eq!(
            line,
            "the Docker API at tcp://proxy:2375 denies EXEC (HTTP 403 on GET /exec/<none>/json), POST (HTTP 403 on POST /containers/<none>/stop); nothing was stopped: stackshot needs CONTAINERS, EXEC, VOLUMES, EVENTS, POST (and the default PING and VERSION); allow them in the socket proxy (docs/socket-proxy.md)"
        );
        assert!(!line.contains('\n'));
    }
}
