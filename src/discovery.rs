//! Discovery: our own container, our compose project, and the project's
//! containers with their labels and mounts, read from the engine.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::ListContainersOptions;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::config::Config;
use crate::container::{ContainerInfo, PROJECT_LABEL};

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The compose project to back up.
    pub project: String,
    /// Our own container, when we run in one.
    pub self_container: Option<ContainerInfo>,
    /// The containers in scope (our project, or all projects), ourselves included;
    /// the plan decides what to leave out.
    pub containers: Vec<ContainerInfo>,
}

/// Finds the id of the container this process runs in from the text of
/// `/proc/self/mountinfo`: the engine bind-mounts
/// `<data-root>/containers/<id>/{resolv.conf,hostname,hosts}` into every container.
pub fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        line.split_whitespace().find_map(|field| {
            let rest = &field[field.find("/containers/")? + "/containers/".len()..];
            let (id, file) = rest.split_once('/')?;
            let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
            (is_id && matches!(file, "resolv.conf" | "hostname" | "hosts")).then(|| id.to_string())
        })
    })
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

async fn inspect(docker: &Docker, reference: &str) -> Result<Option<ContainerInfo>, BollardError> {
    match docker.inspect_container(reference, None).await {
        Ok(c) => Ok(Some(ContainerInfo::from_inspect(&c))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Finds our container and project, then lists and inspects the containers in scope.
pub async fn discover(docker: &Docker, config: &Config) -> Result<Discovery> {
    let self_ref = match &config.self_container {
        Some(r) => Some((r.clone(), "STACKSHOT_CONTAINER")),
        None => std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| container_id_from_mountinfo(&m))
            .map(|id| (id, "/proc/self/mountinfo")),
    };
    let self_container = match &self_ref {
        None => None,
        Some((reference, from)) => match inspect(docker, reference)
            .await
            .with_context(|| format!("cannot inspect our own container {reference}"))?
        {
            Some(c) => Some(c),
            None if *from == "STACKSHOT_CONTAINER" => bail!(
                "STACKSHOT_CONTAINER={reference:?}: no such container; accepted: the id or name of the container stackshot runs in"
            ),
            // Running in a container of another engine (or a sandbox): not ours to inspect.
            None => None,
        },
    };
    let project = match (&config.project, &self_container) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) if !c.project.is_empty() => c.project.clone(),
        (None, Some(c)) => bail!(
            "container {} is not part of a compose project; run stackshot as a service of the stack, or set STACKSHOT_PROJECT",
            c.name
        ),
        (None, None) => bail!(
            "cannot tell which compose project to back up: stackshot is not running in a container of this engine; set STACKSHOT_PROJECT (and STACKSHOT_CONTAINER if it does run in one)"
        ),
    };

    let label_filter = if config.include_all_projects {
        PROJECT_LABEL.to_string()
    } else {
        format!("{PROJECT_LABEL}={project}")
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), vec![label_filter])])),
        ..Default::default()
    };
    let summaries = docker
        .list_containers(Some(options))
        .await
        .context("cannot list containers")?;
    let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
    let containers: Vec<ContainerInfo> = stream::iter(ids)
        .map(|id| async move {
            inspect(docker, &id)
                .await
                .with_context(|| format!("cannot inspect container {id}"))
        })
        .buffer_unordered(8)
        .try_filter_map(|c| async move { Ok(c) })
        .try_collect()
        .await?;
    tracing::debug!(project, count = containers.len(), "discovered containers");
    Ok(Discovery {
        project,
        self_container,
        containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_id_in_mountinfo() {
        let id = "4f66c7ba7a1bd0f4b3b4a4bd7f5e3f6b0c2b4d1e7a9c3d2e1f0a9b8c7d6e5f4a";
        let mountinfo = format!(
            "1193 1176 0:133 / / rw,relatime master:350 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X\n\
             1209 1193 254:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw\n\
             1210 1193 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&mountinfo).as_deref(), Some(id));
    }

    #[test]
    fn custom_data_root_and_no_container() {
        let id = "a".repeat(64);
        let m = format!(
            "1 2 0:1 /srv/docker-data/containers/{id}/hosts /etc/hosts rw - ext4 /dev/x rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&m), Some(id));
        assert_eq!(
            container_id_from_mountinfo("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"),
            None
        );
        // A volume merely named "containers" is not a container's own mount.
        let m = "1 2 0:1 /var/lib/docker/volumes/containers/_data /data rw - ext4 /dev/x rw\n";
        assert_eq!(container_id_from_mountinfo(m), None);
    }
}
