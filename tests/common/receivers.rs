//! Receivers for notifications, on the host's loopback: an HTTP server that
//! records every request, and a real SMTP server (Debian's aiosmtpd) that
//! keeps every email in a maildir.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request the HTTP receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// An HTTP/1.1 server on loopback answering 200 to everything.
pub struct HttpReceiver {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

impl HttpReceiver {
    /// Listens on a free loopback port.
    pub fn start() -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(vec![]));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    if let Some(req) = read_request(&stream) {
                        sink.lock().unwrap().push(req);
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        HttpReceiver { port, seen }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

/// `python3 -m aiosmtpd` on a free loopback port, storing mail in a maildir.
pub struct SmtpServer {
    /// Its port.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts it and waits until it accepts connections.
    pub fn start() -> SmtpServer {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        // Debian's interpreter: the package installs the module for it.
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start /usr/bin/python3 -m aiosmtpd (Debian's python3-aiosmtpd; scripts/install-test-deps installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SmtpServer { port, child, dir }
    }

    /// Every email received so far (raw RFC 5322 text), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let new: PathBuf = self.dir.path().join("maildir/new");
        let mut files: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(new)
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        (
                            e.metadata().and_then(|m| m.modified()).unwrap(),
                            std::fs::read_to_string(e.path()).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort_by_key(|(t, _)| *t);
        files.into_iter().map(|(_, m)| m).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
