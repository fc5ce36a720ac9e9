//! A request to stop, from a signal (SIGTERM, SIGINT, SIGHUP) or a test,
//! that the stop window, a restore and the daemon watch.

use anyhow::Result;
use tokio::sync::watch;

/// A request to stop, from a signal handler (or a test).
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<String>>,
}

/// The sending side of a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<Option<String>>,
}

impl ShutdownTrigger {
    /// Asks everything holding the matching [`Shutdown`] to stop, giving the reason.
    pub fn trigger(&self, reason: &str) {
        let _ = self.tx.send(Some(reason.to_string()));
    }
}

impl Shutdown {
    /// A shutdown and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(None);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A shutdown triggered by SIGTERM, SIGINT or SIGHUP (a `docker exec`
    /// whose client went away). Installing it replaces the default action
    /// (exit at once), so a signal inside the window closes it first.
    pub fn on_signals() -> Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let (trigger, shutdown) = Shutdown::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => "SIGHUP",
            };
            tracing::warn!(signal = name, "stop requested");
            trigger.trigger(name);
            // Keep the trigger alive so receivers do not see a closed channel.
            std::future::pending::<()>().await;
        });
        Ok(shutdown)
    }

    /// The reason, once a stop was requested.
    pub fn requested(&self) -> Option<String> {
        self.rx.borrow().clone()
    }

    /// Waits until a stop is requested; returns the reason.
    pub async fn wait(&mut self) -> String {
        loop {
            if let Some(r) = self.rx.borrow_and_update().clone() {
                return r;
            }
            if self.rx.changed().await.is_err() {
                // The trigger is gone: no stop will ever come.
                std::future::pending::<()>().await;
            }
        }
    }
}
