//! A tiny HTTP receiver on 127.0.0.1 for the receivers' tests: it answers
//! each connection with the next canned answer and hands back every request
//! as it arrived (method, path and query, headers, body), so that a test
//! checks the bytes a real service's API would get.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use url::Url;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST`, `PUT`, `GET`…
    pub method: String,
    /// The request target: the path and the query, as sent.
    pub target: String,
    /// The headers, names lowercased, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of the header `name` (lowercase), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The body as `application/x-www-form-urlencoded` pairs, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// A receiver listening on 127.0.0.1, on a port of its own.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: mpsc::Receiver<Seen>,
    thread: JoinHandle<()>,
}

impl Receiver {
    /// Listens, and answers one connection per item of `answers` (its HTTP
    /// status and JSON body), closing each after its answer; it gives up
    /// after 10 s without a connection.
    pub fn start(answers: Vec<(u16, &'static str)>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for (status, body) in answers {
                let Some(mut conn) = accept(&listener) else {
                    return;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let req = read(&mut conn);
                let _ = tx.send(req);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        Receiver { addr, seen, thread }
    }

    /// Every request it got, once it has answered them all (or given up).
    pub fn seen(self) -> Vec<Seen> {
        self.thread.join().unwrap();
        self.seen.try_iter().collect()
    }
}

/// `url` sent to `to` instead: `http://127.0.0.1:<port>`, its path and query kept.
pub fn at(url: &Url, to: SocketAddr) -> Url {
    let mut u = url.clone();
    u.set_scheme("http").unwrap();
    u.set_host(Some(&to.ip().to_string())).unwrap();
    u.set_port(Some(to.port())).unwrap();
    u
}

fn accept(listener: &TcpListener) -> Option<std::net::TcpStream> {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match listener.accept() {
            Ok((conn, _)) => return Some(conn),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}

/// Reads one HTTP/1.1 request: its request line, headers and a
/// `content-length` body.
fn read(conn: &mut std::net::TcpStream) -> Seen {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Seen {
        method,
        target,
        headers,
        body,
    }
}

/// A finished run of the project `shop` ending in `result` (the reason
/// `disk full` when it did not succeed).
pub fn report(result: crate::report::Outcome) -> crate::report::RunReport {
    let mut r = crate::report::RunReport::start();
    r.project = "shop".into();
    let ok = result == crate::report::Outcome::Success;
    r.finish(result, (!ok).then(|| "disk full".into()))
}
