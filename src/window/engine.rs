//! The engine's side of the stop window: [`ContainerControl`] for the
//! Docker [`Engine`]. A stop target is a container id, or a swarm service
//! that is stopped by scaling it to 0 and back ([`crate::engine::scale`]);
//! a container's pre-stop hook runs just before it is stopped.

use std::time::Duration;

use anyhow::{Context, Result};

use super::{ContainerControl, StopRest};
use crate::container::service_of;
use crate::engine::{Engine, is_not_found, is_not_modified, scale, stop};
use crate::hooks;
use crate::plan::{HookPhase, StopEntry};

/// A stop target is a container id, or a swarm service
/// ([`crate::container::service_target`]), stopped by scaling it to 0.
impl ContainerControl for Engine {
    async fn stop(&self, id: &str, timeout: Duration) -> Result<Option<StopRest>> {
        if let Some(service) = service_of(id) {
            return scale::stop(self.docker(), service).await.map(|()| None);
        }
        stop::stop(self.docker(), id, timeout).await
    }

    async fn before_stop(&self, entry: &StopEntry) -> Result<()> {
        let Some(hook) = &entry.pre_stop else {
            return Ok(());
        };
        // A service's hook runs in each of its tasks on this node.
        let targets = match service_of(&entry.container.id) {
            Some(service) => scale::local_tasks(self.docker(), service).await?,
            None => vec![entry.container.id.clone()],
        };
        for id in targets {
            hooks::run(
                self,
                &id,
                &entry.container.container,
                HookPhase::PreStop,
                hook,
            )
            .await?;
        }
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<()> {
        if let Some(service) = service_of(id) {
            return scale::start(self.docker(), service).await;
        }
        match self.docker().start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_modified(&e) => Ok(()),
            Err(e) if is_not_found(&e) => {
                // Removed or recreated (say, by `docker compose up`) meanwhile:
                // there is nothing left to start, and keeping it would block recovery.
                tracing::warn!(
                    container = id,
                    "the container no longer exists; nothing to start"
                );
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("cannot start container {id}")),
        }
    }

    async fn freeze(&self, id: &str) -> Result<()> {
        if service_of(id).is_some() {
            anyhow::bail!(
                "a swarm service is held by scaling it to 0, which the engine cannot pause"
            );
        }
        self.docker()
            .pause_container(id)
            .await
            .with_context(|| format!("the engine cannot pause container {id}"))
    }

    async fn thaw(&self, id: &str) -> Result<()> {
        if service_of(id).is_some() {
            return self.start(id).await;
        }
        let Err(e) = self.docker().unpause_container(id).await else {
            return Ok(());
        };
        if is_not_found(&e) {
            return self.start(id).await;
        }
        // Not paused (stopped since, or never frozen; engines answer that
        // with 409 or 500): start it instead. Paused still: the error stands.
        match self.inspect(id).await {
            Ok(c) if !c.state.as_ref().and_then(|s| s.paused).unwrap_or(false) => {
                self.start(id).await
            }
            _ => Err(e).with_context(|| format!("cannot unpause container {id}")),
        }
    }

    async fn is_running(&self, id: &str) -> Result<bool> {
        Engine::is_running(self, id).await
    }
}
