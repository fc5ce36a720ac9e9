//! SQLite in images without `sqlite3`: the copy, the queries and a restore's
//! look at the file run in a worker container (the sidecar's image, no
//! network) with the database container's mount attached under `/sqlite/<n>`
//! (see [`crate::worker::sqlite`]). The app and the worker share the kernel,
//! so they share the file's locks and its write-ahead log's index: the
//! backup API's read transaction in the worker is as consistent as one in
//! the app's container.

use anyhow::{Result, anyhow, bail};
use bollard::models::{Mount as EngineMount, MountType};

use crate::container::{ContainerInfo, Mount, MountKind};
use crate::engine::exec::Captured;
use crate::engine::{Engine, worker};

/// Where the worker finds the database container's mounts.
pub const MOUNT_ROOT: &str = "/sqlite";

/// How to reach a database container's SQLite files from a worker.
#[derive(Debug, Clone)]
pub struct SqliteWorker {
    /// The sidecar's image (by id).
    pub image: String,
    /// The stackshot binary in it.
    pub binary: String,
    /// Compose project, for the worker's label.
    pub project: String,
    /// The database container's mounts.
    pub mounts: Vec<Mount>,
}

/// The mounts attached for `paths` (each file's deepest mount, once) and
/// each path as the worker sees it; or why a path cannot be reached. Pure.
pub fn attach(mounts: &[Mount], paths: &[&str]) -> Result<(Vec<EngineMount>, Vec<String>)> {
    let mut attached: Vec<(&Mount, EngineMount)> = Vec::new();
    let mut mapped = Vec::new();
    for path in paths {
        let deepest = mounts
            .iter()
            .filter(|m| m.kind != MountKind::Other)
            .filter(|m| {
                *path == m.destination
                    || path.starts_with(&format!("{}/", m.destination.trim_end_matches('/')))
            })
            .max_by_key(|m| m.destination.len());
        let Some(m) = deepest else {
            bail!("{path} is in none of the container's mounts, so a worker cannot reach it");
        };
        if *path == m.destination {
            bail!(
                "{path} is a single file bind-mounted into the container: its -wal and -journal sit beside it outside the mount, where a copy from outside the container cannot see them; mount its directory instead, or install sqlite3 in the image"
            );
        }
        let i = match attached
            .iter()
            .position(|(a, _)| a.destination == m.destination)
        {
            Some(i) => i,
            None => {
                let (typ, source) = match (m.kind, &m.name) {
                    (MountKind::Volume, Some(name)) => (MountType::VOLUME, name.clone()),
                    _ => (MountType::BIND, m.source.clone()),
                };
                attached.push((
                    m,
                    EngineMount {
                        target: Some(format!("{MOUNT_ROOT}/{}", attached.len())),
                        source: Some(source),
                        typ: Some(typ),
                        // A reader of a WAL database writes its -shm index.
                        read_only: Some(false),
                        ..Default::default()
                    },
                ));
                attached.len() - 1
            }
        };
        let rest = &path[m.destination.trim_end_matches('/').len()..];
        mapped.push(format!("{MOUNT_ROOT}/{i}{rest}"));
    }
    Ok((attached.into_iter().map(|(_, e)| e).collect(), mapped))
}

/// What `probe` printed, per file: `None` when it is a database, else why
/// not (`missing`, or the error); and the library's version. Pure.
pub fn parse_probe(stdout: &str, files: usize) -> Option<(Vec<Option<String>>, String)> {
    let lines: Vec<&str> = stdout.lines().collect();
    if lines.len() != files + 1 {
        return None;
    }
    let version = lines[files].strip_prefix("version ")?.trim().to_string();
    let each = lines[..files]
        .iter()
        .map(|l| match *l {
            "ok" => None,
            other => Some(other.strip_prefix("error: ").unwrap_or(other).to_string()),
        })
        .collect();
    Some((each, version))
}

impl SqliteWorker {
    /// The worker for one database container, run from `sidecar`'s image.
    pub fn new(sidecar: &ContainerInfo, container: &ContainerInfo) -> SqliteWorker {
        SqliteWorker {
            image: sidecar.image_id.clone(),
            binary: worker::own_binary(),
            project: sidecar.project.clone(),
            mounts: container.mounts.clone(),
        }
    }

    /// The worker running `sqlite <cmd>` on `paths` (each followed by the
    /// path as shown), then `extra`.
    fn spec(&self, cmd: &str, paths: &[&str], extra: &[&str]) -> Result<worker::WorkerSpec> {
        let (mounts, mapped) = attach(&self.mounts, paths)?;
        let mut args = vec!["sqlite".to_string(), cmd.to_string()];
        for (m, shown) in mapped.iter().zip(paths) {
            args.extend([m.clone(), shown.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Ok(worker::WorkerSpec {
            image: self.image.clone(),
            binary: self.binary.clone(),
            args,
            mounts,
            network_mode: Some("none".into()),
            env: vec![],
            secrets: vec![],
            project: self.project.clone(),
            stall_timeout: None,
        })
    }

    /// Checks that each file is a SQLite database the worker can read;
    /// returns the library's version.
    pub async fn probe(&self, engine: &Engine, service: &str, paths: &[String]) -> Result<String> {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let spec = self
            .spec("probe", &refs, &[])
            .map_err(|e| anyhow!("service {service}: stackshot.sqlite: {e}"))?;
        let out = worker::capture(engine, &spec).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some((each, version)) = parse_probe(&stdout, paths.len()).filter(|_| out.code == 0)
        else {
            bail!(
                "service {service}: the SQLite worker failed (exit code {}): {}",
                out.code,
                out.stderr
            );
        };
        let missing: Vec<&str> = each
            .iter()
            .zip(paths)
            .filter(|(e, _)| e.as_deref() == Some("missing"))
            .map(|(_, p)| p.as_str())
            .collect();
        if !missing.is_empty() {
            bail!(
                "service {service}: stackshot.sqlite names files that are not in the container: {}",
                missing.join(", ")
            );
        }
        if let Some(e) = each.iter().flatten().next() {
            bail!("service {service}: stackshot.sqlite: {e}");
        }
        Ok(version)
    }

    /// `sql`'s rows on the file at `path`, tab-separated.
    pub async fn query(&self, engine: &Engine, path: &str, sql: &str) -> Result<Captured> {
        worker::capture(engine, &self.spec("query", &[path], &[sql])?).await
    }

    /// `uid gid mode` of the file at `path` (or of its directory), then the
    /// side files that exist.
    pub async fn stat(&self, engine: &Engine, path: &str) -> Result<Captured> {
        worker::capture(engine, &self.spec("stat", &[path], &[])?).await
    }

    /// Starts the checked copy of `path`: its bytes come on stdout.
    pub async fn copy(&self, engine: &Engine, path: &str) -> Result<worker::Raw> {
        worker::start_raw(engine, &self.spec("copy", &[path], &[])?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(kind: MountKind, name: Option<&str>, source: &str, dest: &str) -> Mount {
        Mount {
            kind,
            name: name.map(str::to_string),
            source: source.into(),
            destination: dest.into(),
            rw: true,
        }
    }

    #[test]
    fn each_file_is_reached_through_its_deepest_mount() {
        let mounts = [
            mount(
                MountKind::Volume,
                Some("app_data"),
                "/var/lib/docker/volumes/app_data/_data",
                "/data",
            ),
            mount(MountKind::Bind, None, "/srv/app/db", "/data/db/"),
            mount(MountKind::Other, None, "", "/data/tmp"),
        ];
        let (attached, mapped) = attach(
            &mounts,
            &["/data/a.sqlite3", "/data/db/b.db", "/data/db/c.db"],
        )
        .unwrap();
        assert_eq!(
            mapped,
            ["/sqlite/0/a.sqlite3", "/sqlite/1/b.db", "/sqlite/1/c.db"]
        );
        let got: Vec<(String, String, bool)> = attached
            .iter()
            .map(|m| {
                (
                    m.target.clone().unwrap(),
                    m.source.clone().unwrap(),
                    m.read_only.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/sqlite/0".into(), "app_data".into(), false),
                ("/sqlite/1".into(), "/srv/app/db".into(), false)
            ]
        );
        assert_eq!(attached[0].typ, Some(MountType::VOLUME));
        assert_eq!(attached[1].typ, Some(MountType::BIND));
    }

    #[test]
    fn a_file_outside_the_mounts_or_bind_mounted_alone_is_refused() {
        let mounts = [mount(MountKind::Bind, None, "/srv/x.db", "/app/x.db")];
        let e = attach(&mounts, &["/app/x.db"]).unwrap_err().to_string();
        assert!(
            e.starts_with("/app/x.db is a single file bind-mounted"),
            "{e}"
        );
        let e = attach(&mounts, &["/elsewhere/y.db"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/elsewhere/y.db is in none of the container's mounts, so a worker cannot reach it"
        );
        // A prefix of a name is not a parent directory.
        let e = attach(&mounts, &["/app/x.dbx"]).unwrap_err().to_string();
        assert!(e.contains("none of the container's mounts"), "{e}");
    }

    #[test]
    fn the_probe_names_each_file() {
        assert_eq!(
            parse_probe("ok\nmissing\nerror: x cannot be read\nversion 3.50.4\n", 3),
            Some((
                vec![
                    None,
                    Some("missing".into()),
                    Some("x cannot be read".into())
                ],
                "3.50.4".into()
            ))
        );
        assert_eq!(parse_probe("ok\n", 1), None);
        assert_eq!(parse_probe("ok\nok\nversion 3\n", 1), None);
    }
}
