//! A unix-socket proxy to the engine that a test can cut and restore: the
//! sidecar's `DOCKER_HOST` points at it (tests/stack/engine-proxy.override.yml),
//! so cutting it breaks the daemon's event stream as an engine restart would.

use std::io::{ErrorKind, copy};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ENGINE: &str = "/var/run/docker.sock";

#[derive(Default)]
struct Shared {
    /// Forwarding; when false, every connection is closed at once.
    open: AtomicBool,
    /// Live connections (both ends), to cut.
    live: Mutex<Vec<UnixStream>>,
    stop: AtomicBool,
}

/// The proxy; stops accepting when dropped.
pub struct EngineProxy {
    shared: Arc<Shared>,
}

fn forward(mut from: UnixStream, mut to: UnixStream) {
    let _ = copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

impl EngineProxy {
    /// Listens on `path` and forwards each connection to the engine's socket.
    pub fn start(path: &Path) -> EngineProxy {
        let listener = UnixListener::bind(path).expect("bind the engine proxy socket");
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared::default());
        shared.open.store(true, Ordering::SeqCst);
        let s = shared.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(_) => continue,
                };
                client.set_nonblocking(false).unwrap();
                if !s.open.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(engine) = UnixStream::connect(ENGINE) else {
                    continue;
                };
                let mut live = s.live.lock().unwrap();
                live.push(client.try_clone().unwrap());
                live.push(engine.try_clone().unwrap());
                let (c2, e2) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
                std::thread::spawn(move || forward(client, engine));
                std::thread::spawn(move || forward(e2, c2));
            }
        });
        EngineProxy { shared }
    }

    /// Closes every live connection and refuses new ones, as an engine that went away.
    pub fn cut(&self) {
        self.shared.open.store(false, Ordering::SeqCst);
        for c in self.shared.live.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.shared.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}
