//! Throwaway database containers for the restore drill: the database
//! service's own image, entrypoint, command and environment, on no network,
//! with fresh anonymous volumes where the service keeps its data. Removed
//! with their volumes on every path. Each drill labels its own with its run
//! and its process ([`owner`]) and removes only those; a drill that died
//! leaves containers and volumes that the next drill removes once their
//! owner is gone — never those of a drill that runs beside it.

use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListVolumesOptions, RemoveVolumeOptions,
    UploadToContainerOptions,
};

use super::Engine;
use super::owner::{self, Liveness, OWNER_LABEL, Owner, RUN_LABEL};
use crate::container::{self, MountKind, OWN_PROJECT_LABEL, ROLE_LABEL};

/// The role label's value on drill containers and their volumes.
pub const ROLE: &str = "drill";
/// Mounts of the service that must not follow it into the throwaway: init
/// scripts would seed data the dump then collides with.
const SKIPPED: &[&str] = &["/docker-entrypoint-initdb.d"];

fn labels(project: &str, owner: &Owner) -> HashMap<String, String> {
    HashMap::from([
        (ROLE_LABEL.to_string(), ROLE.to_string()),
        (OWN_PROJECT_LABEL.to_string(), project.to_string()),
        (RUN_LABEL.to_string(), owner.run.clone()),
        (OWNER_LABEL.to_string(), owner.label()),
    ])
}

/// The throwaway's mounts, from the service's: every volume and every
/// read-write bind becomes a fresh anonymous volume (the service's data is
/// never mounted: the throwaway must not touch it); read-only binds
/// (secrets, configuration) are mounted read-only as they are; init scripts
/// are left out.
pub fn mounts(service: &[container::Mount], project: &str, owner: &Owner) -> Vec<Mount> {
    let mut out = Vec::new();
    for m in service {
        if SKIPPED
            .iter()
            .any(|s| m.destination == *s || m.destination.starts_with(&format!("{s}/")))
        {
            continue;
        }
        match m.kind {
            MountKind::Volume | MountKind::Bind if m.rw || m.kind == MountKind::Volume => {
                out.push(Mount {
                    target: Some(m.destination.clone()),
                    typ: Some(MountType::VOLUME),
                    volume_options: Some(MountVolumeOptions {
                        labels: Some(labels(project, owner)),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            }
            MountKind::Bind => out.push(Mount {
                target: Some(m.destination.clone()),
                source: Some(m.source.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            }),
            _ => {}
        }
    }
    out
}

/// The images' password variables. A throwaway gets each one's value as a
/// file, `<VAR>_FILE` pointing at it, instead of in its configuration, where
/// `docker inspect` would show it in one more container. (The official
/// PostgreSQL and MariaDB/MySQL images read the `_FILE` forms.) The value
/// must stay the service's own: a PostgreSQL dump sets the roles' password
/// hashes back, and the drill logs in again after that.
const PASSWORD_VARS: &[&str] = &[
    "POSTGRES_PASSWORD",
    "MARIADB_ROOT_PASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "MARIADB_PASSWORD",
    "MYSQL_PASSWORD",
];

/// Where a throwaway's password files are placed.
pub const SECRETS_DIR: &str = "/run/stackshot-drill";

/// `env` with each password variable turned into its `_FILE` form, and the
/// files to place: (name under [`SECRETS_DIR`], value). Pure.
pub fn passwords_as_files(env: &[String]) -> (Vec<String>, Vec<(String, String)>) {
    let mut files = Vec::new();
    let env = env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) if PASSWORD_VARS.contains(&k) => {
                files.push((k.to_string(), v.to_string()));
                format!("{k}_FILE={SECRETS_DIR}/{k}")
            }
            _ => e.clone(),
        })
        .collect();
    (env, files)
}

/// A tar of `files` under [`SECRETS_DIR`], readable by the database's user.
fn secrets_tar(files: &[(String, String)]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let dir = SECRETS_DIR.trim_start_matches('/');
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    tar.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
    for (name, value) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o444);
        header.set_size(value.len() as u64);
        tar.append_data(&mut header, format!("{dir}/{name}"), value.as_bytes())?;
    }
    Ok(tar.into_inner()?)
}

/// Creates and starts a throwaway copy of the database container `of`
/// (inspected), labelled as `owner`'s; returns its id.
pub async fn start(
    engine: &Engine,
    of: &str,
    name: &str,
    project: &str,
    owner: &Owner,
) -> Result<String> {
    let c = engine.inspect(of).await?;
    let info = container::ContainerInfo::from_inspect(&c);
    let config = c.config.unwrap_or_default();
    let (env, secret_files) = passwords_as_files(&config.env.unwrap_or_default());
    let body = ContainerCreateBody {
        image: c.image.clone(),
        entrypoint: config.entrypoint,
        cmd: config.cmd,
        env: Some(env),
        user: config.user,
        working_dir: config.working_dir,
        labels: Some(labels(project, owner)),
        host_config: Some(HostConfig {
            mounts: Some(mounts(&info.mounts, project, owner)),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .docker()
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_string()),
                ..Default::default()
            }),
            body,
        )
        .await
        .with_context(|| format!("cannot create the drill container {name}"))?;
    if !secret_files.is_empty() {
        let placed = async {
            let tar = secrets_tar(&secret_files).context("cannot pack the password files")?;
            engine
                .docker()
                .upload_to_container(
                    &created.id,
                    Some(UploadToContainerOptions {
                        path: "/".into(),
                        ..Default::default()
                    }),
                    bollard::body_full(bytes::Bytes::from(tar)),
                )
                .await
                .context("cannot place the password files")
        }
        .await;
        if let Err(e) = placed {
            remove(engine, &created.id).await;
            return Err(e.context(format!("drill container {name}")));
        }
    }
    if let Err(e) = engine.docker().start_container(&created.id, None).await {
        remove(engine, &created.id).await;
        return Err(e).with_context(|| format!("cannot start the drill container {name}"));
    }
    tracing::info!(container = %name, image = %info.image, "drill container started");
    Ok(created.id)
}

/// Removes a throwaway container and its anonymous volumes.
pub async fn remove(engine: &Engine, id: &str) {
    match engine.remove_with_volumes(id).await {
        Ok(true) => {
            tracing::info!(container = %&id[..12.min(id.len())], "drill container removed with its volumes")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(container = %id, error = %e, "could not remove the drill container")
        }
    }
}

/// How the owner labelled `container/pid/started` fares, seen from `me`.
async fn liveness(
    engine: &Engine,
    me: &Owner,
    container: &str,
    pid: u32,
    started: u64,
) -> Liveness {
    if container == me.container {
        return if owner::process_runs(pid, started) {
            Liveness::ProcessRuns
        } else {
            Liveness::ProcessGone
        };
    }
    match engine.docker().inspect_container(container, None).await {
        Ok(c) if c.state.as_ref().and_then(|s| s.running).unwrap_or(false) => {
            Liveness::OtherContainerRuns
        }
        Ok(_) => Liveness::OtherContainerGone,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Liveness::OtherContainerGone,
        // Unknown: left alone.
        Err(_) => Liveness::OtherContainerRuns,
    }
}

/// Whether the throwaway with `labels` is a leftover of a drill that died
/// (see [`Owner::is_leftover`]).
async fn is_leftover(
    engine: &Engine,
    me: &Owner,
    labels: Option<&HashMap<String, String>>,
) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    if get(RUN_LABEL) == Some(me.run.as_str()) {
        return false;
    }
    let live = match get(OWNER_LABEL).and_then(owner::parse_label) {
        Some((c, pid, started)) => Some(liveness(engine, me, c, pid, started).await),
        None => None,
    };
    me.is_leftover(get(RUN_LABEL), get(OWNER_LABEL), |_, _, _| {
        live.unwrap_or(Liveness::ProcessGone)
    })
}

/// Removes drill containers and volumes of `project` left by a drill that
/// died; those of drills that run (`me`'s own among them) stay.
pub async fn remove_leftovers(engine: &Engine, project: &str, me: &Owner) -> Result<usize> {
    let filter = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{ROLE_LABEL}={ROLE}"),
            format!("{OWN_PROJECT_LABEL}={project}"),
        ],
    )]);
    let containers = engine
        .docker()
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .context("cannot list drill containers")?;
    let mut n = 0;
    for c in containers {
        if let Some(id) = c.id
            && is_leftover(engine, me, c.labels.as_ref()).await
        {
            remove(engine, &id).await;
            n += 1;
        }
    }
    let volumes = engine
        .docker()
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filter),
        }))
        .await
        .context("cannot list drill volumes")?;
    for v in volumes.volumes.unwrap_or_default() {
        if !is_leftover(engine, me, Some(&v.labels)).await {
            continue;
        }
        match engine
            .docker()
            .remove_volume(&v.name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => n += 1,
            Err(e) => {
                tracing::warn!(volume = %v.name, error = %e, "could not remove a drill volume")
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_in_files_and_the_rest_of_the_environment_stays() {
        let env = [
            "POSTGRES_USER=app",
            "POSTGRES_PASSWORD=pg-secret-password",
            "MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root",
            "MYSQL_PASSWORD=x=y",
            "PGDATA=/var/lib/postgresql/data",
        ]
        .map(String::from);
        let (env, files) = passwords_as_files(&env);
        assert_eq!(
            env,
            [
                "POSTGRES_USER=app",
                "POSTGRES_PASSWORD_FILE=/run/stackshot-drill/POSTGRES_PASSWORD",
                "MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root",
                "MYSQL_PASSWORD_FILE=/run/stackshot-drill/MYSQL_PASSWORD",
                "PGDATA=/var/lib/postgresql/data",
            ]
        );
        assert_eq!(
            files,
            [
                (
                    "POSTGRES_PASSWORD".to_string(),
                    "pg-secret-password".to_string()
                ),
                ("MYSQL_PASSWORD".to_string(), "x=y".to_string()),
            ]
        );
        let tar = secrets_tar(&files).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32, String)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut body = String::new();
                std::io::Read::read_to_string(&mut e, &mut body).unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    body,
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("run/stackshot-drill/".to_string(), 0o755, String::new()),
                (
                    "run/stackshot-drill/POSTGRES_PASSWORD".to_string(),
                    0o444,
                    "pg-secret-password".to_string()
                ),
                (
                    "run/stackshot-drill/MYSQL_PASSWORD".to_string(),
                    0o444,
                    "x=y".to_string()
                ),
            ]
        );
    }

    fn m(kind: MountKind, dest: &str, rw: bool) -> container::Mount {
        container::Mount {
            kind,
            name: None,
            source: format!("/host{dest}"),
            destination: dest.into(),
            rw,
        }
    }

    #[test]
    fn the_service_data_is_never_mounted_into_the_throwaway() {
        let service = [
            m(MountKind::Volume, "/var/lib/postgresql/data", true),
            m(MountKind::Bind, "/srv/pgdata", true),
            m(MountKind::Bind, "/docker-entrypoint-initdb.d", false),
            m(MountKind::Bind, "/run/secrets/mariadb-root", false),
            m(MountKind::Other, "/tmp", true),
        ];
        let owner = Owner::this_process("sidecar");
        let got = mounts(&service, "shop", &owner);
        let summary: Vec<(String, Option<String>, Option<bool>)> = got
            .iter()
            .map(|m| {
                (
                    format!("{:?}:{}", m.typ.unwrap(), m.target.clone().unwrap()),
                    m.source.clone(),
                    m.read_only,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("VOLUME:/var/lib/postgresql/data".to_string(), None, None),
                ("VOLUME:/srv/pgdata".to_string(), None, None),
                (
                    "BIND:/run/secrets/mariadb-root".to_string(),
                    Some("/host/run/secrets/mariadb-root".to_string()),
                    Some(true)
                ),
            ]
        );
        let labels = got[0]
            .volume_options
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(
            labels.get("stackshot.role").map(String::as_str),
            Some("drill")
        );
        assert_eq!(labels.get(RUN_LABEL), Some(&owner.run));
        assert_eq!(labels.get(OWNER_LABEL), Some(&owner.label()));
    }
}
