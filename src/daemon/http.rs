//! The HTTP port (`HTTP_ADDR`): `GET /healthz`, `GET /metrics` and the
//! status page, `GET /` ([`super::page`]), nothing else. No route can start
//! a run, stop a container or read backed-up data; other paths answer 404,
//! other methods 405. With `HTTP_AUTH[_FILE]` set, `/` and `/metrics` ask for
//! that user and password (basic authentication); `/healthz` never asks (the
//! image's health check calls it).
//!
//! Also the client behind `stackshot healthcheck` (the image has no curl): a
//! plain HTTP/1.0 `GET /healthz`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use chrono::Utc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::health;
use super::metrics::{CONTENT_TYPE, Metrics};
use super::page;
use super::state::DaemonState;
use crate::config::http_auth::HttpAuth;

#[derive(Clone)]
struct App {
    state: Arc<Mutex<DaemonState>>,
    metrics: Metrics,
    max_age: Duration,
    page: Arc<page::Settings>,
    auth: Option<Arc<HttpAuth>>,
}

/// What the HTTP port serves besides the daemon's state and metrics: the
/// status page's settings and the optional user (`HTTP_AUTH`).
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// What the status page shows that the state does not hold.
    pub page: page::Settings,
    /// The user `/` and `/metrics` ask for; `None`: they ask for none.
    pub auth: Option<HttpAuth>,
}

/// The router: `GET /healthz` (200 when healthy, 503 otherwise, JSON),
/// `GET /metrics` (Prometheus text format 0.0.4) and `GET /` (the status
/// page, HTML).
///
/// `state` is behind a `std::sync::Mutex`, as in the daemon: every holder
/// locks it briefly and never across an `.await`.
pub fn router(
    state: Arc<Mutex<DaemonState>>,
    metrics: Metrics,
    max_age: Duration,
    site: Site,
) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(App {
            state,
            metrics,
            max_age,
            page: Arc::new(site.page),
            auth: site.auth.map(Arc::new),
        })
}

/// The health now: an open window past its limit, else the runs' record.
fn health_now(app: &App, state: &DaemonState) -> health::Health {
    health::overdue_window(app.metrics.open_window())
        .unwrap_or_else(|| health::evaluate(state, Utc::now(), app.max_age))
}

/// `Some(401 answer)` when `HTTP_AUTH` is set and the request does not carry it.
fn refused(app: &App, headers: &HeaderMap) -> Option<Response> {
    let auth = app.auth.as_ref()?;
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if auth.allows(given) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Basic realm="stackshot", charset="UTF-8""#,
            )],
            "this page needs the user and password of HTTP_AUTH\n",
        )
            .into_response(),
    )
}

async fn healthz(State(app): State<App>) -> (StatusCode, Json<serde_json::Value>) {
    let state = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let h = health_now(&app, &state);
    let code = if h.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health::healthz_body(&state, &h)))
}

async fn metrics_text(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(no) = refused(&app, &headers) {
        return no;
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.encode()).into_response()
}

async fn status_page(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(no) = refused(&app, &headers) {
        return no;
    }
    let html = {
        let state = app.state.lock().unwrap_or_else(|e| e.into_inner());
        let h = health_now(&app, &state);
        page::render(&state, &h, &app.page, Utc::now())
    };
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

/// Serves `router` on `addr` until `shutdown` completes, then lets requests in
/// flight finish.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!(
                "cannot listen on {addr} for /healthz and /metrics: the address is in use by another process; \
                 stop it or set HTTP_ADDR to a free address"
            )
        } else {
            anyhow!("cannot listen on {addr} for /healthz and /metrics (HTTP_ADDR): {e}")
        }
    })?;
    serve_on(listener, router, shutdown).await
}

/// Time limits and a cap on the HTTP port's connections, so that a client
/// that connects and sends nothing (or a byte now and then) cannot hold a
/// connection, a task and its memory for ever.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The request's head (request line and headers) must arrive within this.
    header: Duration,
    /// A connection is closed this long after it was accepted, whatever it
    /// does: it carries one request (no keep-alive), answered in milliseconds.
    connection: Duration,
    /// Connections served at once; more wait in the kernel's backlog until
    /// one ends (at the latest after `connection`).
    connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header: Duration::from_secs(10),
            connection: Duration::from_secs(30),
            connections: 32,
        }
    }
}

async fn serve_on(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "HTTP: /healthz, /metrics and the status page (/)");
    serve_with(listener, router, shutdown, Limits::default()).await;
    Ok(())
}

/// Accepts connections until `shutdown` completes, each served with
/// `limits`; then closes idle ones and lets requests in flight finish.
async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "HTTP: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut closed = closed.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            let served = async {
                tokio::select! {
                    r = conn.as_mut() => r,
                    _ = async { let _ = closed.wait_for(|c| *c).await; } => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                }
            };
            match tokio::time::timeout(limits.connection, served).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTP: connection ended"),
                Err(_) => tracing::debug!(
                    %peer,
                    limit = ?limits.connection,
                    "HTTP: connection closed at its time limit"
                ),
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing.send(true);
    while tasks.join_next().await.is_some() {}
}

/// `GET /healthz` from the daemon at `addr` (an unspecified address, `0.0.0.0`
/// or `::`, means loopback): its status code and body. No answer within
/// `timeout`, or no connection, is an error.
pub async fn healthcheck(addr: SocketAddr, timeout: Duration) -> Result<(u16, String)> {
    let (code, _head, body) = request(addr, "GET", "/healthz", timeout).await?;
    Ok((code, body))
}

/// One HTTP/1.0 request without a body: (status, head, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String, String)> {
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let exchange = async {
        let mut stream = TcpStream::connect(target).await.map_err(|e| {
            anyhow!("cannot connect to {target}: {e} (is `stackshot daemon` running with this HTTP_ADDR?)")
        })?;
        let req =
            format!("{method} {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, anyhow::Error>(raw)
    };
    let raw = match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r?,
        Err(_) => bail!(
            "no answer from http://{target}{path} within {}s",
            timeout.as_secs_f64()
        ),
    };
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "not an HTTP answer from {target}: {:?}",
                head.lines().next().unwrap_or("")
            )
        })?;
    Ok((code, head.to_string(), body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::Trigger;
    use crate::report::{Outcome, RunReport};
    use serde_json::Value;

    const T: Duration = Duration::from_secs(5);

    struct Server {
        addr: SocketAddr,
        state: Arc<Mutex<DaemonState>>,
        metrics: Metrics,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<Result<()>>,
    }

    async fn start() -> Server {
        let state = Arc::new(Mutex::new(DaemonState::new(Utc::now())));
        let metrics = Metrics::new("9.9.9");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(
            state.clone(),
            metrics.clone(),
            Duration::from_secs(3600),
            Site::default(),
        );
        let task = tokio::spawn(serve_on(listener, app, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            state,
            metrics,
            stop: Some(tx),
            task,
        }
    }

    /// The router on loopback with `limits`; serves until the test ends.
    async fn start_with(limits: Limits) -> SocketAddr {
        start_site(limits, Site::default()).await
    }

    /// The router for `site` on loopback with `limits`; serves until the test ends.
    async fn start_site(limits: Limits, site: Site) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(
            Arc::new(Mutex::new(DaemonState::new(Utc::now()))),
            Metrics::new("x"),
            Duration::from_secs(3600),
            site,
        );
        tokio::spawn(serve_with(listener, app, std::future::pending(), limits));
        addr
    }

    /// Reads until the server closes the connection; `None` if it is still
    /// open after `GUARD` (far beyond any limit the tests set).
    async fn closed_by_server(stream: &mut TcpStream) -> Option<Vec<u8>> {
        const GUARD: Duration = Duration::from_secs(20);
        let mut got = Vec::new();
        match tokio::time::timeout(GUARD, stream.read_to_end(&mut got)).await {
            Ok(_) => Some(got),
            Err(_) => None,
        }
    }

    const SHORT: Limits = Limits {
        header: Duration::from_millis(300),
        connection: Duration::from_secs(2),
        connections: 4,
    };

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_disconnected() {
        let addr = start_with(SHORT).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_by_server(&mut silent).await.is_some(),
            "a silent connection is held open"
        );
        // And the server still answers.
        assert_eq!(healthcheck(addr, T).await.unwrap().0, 200);
    }

    #[tokio::test]
    async fn a_slow_loris_is_disconnected_before_its_headers_end() {
        let addr = start_with(SHORT).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        // A header byte every 50 ms: 20 s for the whole head.
        let trickle = tokio::spawn(async move {
            let head = format!(
                "GET /healthz HTTP/1.1\r\nX-Slow: {}\r\n\r\n",
                "a".repeat(400)
            );
            for b in head.as_bytes() {
                if write.write_all(&[*b]).await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            true
        });
        let mut got = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut got)).await;
        assert!(closed.is_ok(), "the slow client still holds its connection");
        assert!(
            !String::from_utf8_lossy(&got).contains(" 200 "),
            "a head that never ended was answered: {}",
            String::from_utf8_lossy(&got)
        );
        trickle.abort();
    }

    #[tokio::test]
    async fn a_connection_ends_at_its_time_limit_whatever_it_does() {
        let addr = start_with(Limits {
            header: Duration::from_secs(3600),
            connection: Duration::from_millis(300),
            connections: 4,
        })
        .await;
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        assert!(
            closed_by_server(&mut half).await.is_some(),
            "a connection outlives its limit"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_one_to_end() {
        let addr = start_with(Limits {
            header: Duration::from_secs(3600),
            connection: Duration::from_secs(3600),
            connections: 2,
        })
        .await;
        let held = [
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        let err = healthcheck(addr, Duration::from_millis(500))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no answer"), "{err}");
        drop(held);
        assert_eq!(healthcheck(addr, T).await.unwrap().0, 200);
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(
            Arc::new(Mutex::new(DaemonState::new(Utc::now()))),
            Metrics::new("x"),
            Duration::from_secs(3600),
            Site::default(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let limits = Limits {
            header: Duration::from_secs(3600),
            connection: Duration::from_secs(3600),
            connections: 4,
        };
        let served = tokio::spawn(serve_with(
            listener,
            app,
            async {
                let _ = rx.await;
            },
            limits,
        ));
        let mut idle = TcpStream::connect(addr).await.unwrap();
        // Accepted (the server answers others) before the shutdown.
        assert_eq!(healthcheck(addr, T).await.unwrap().0, 200);
        tx.send(()).unwrap();
        assert!(closed_by_server(&mut idle).await.is_some());
        tokio::time::timeout(T, served).await.unwrap().unwrap();
    }

    fn run(result: Outcome, reason: Option<&str>) -> RunReport {
        let r = RunReport::start();
        let mut r = r.finish(result, reason.map(String::from));
        r.project = "shop".into();
        r
    }

    #[tokio::test]
    async fn healthz_follows_the_runs() {
        let s = start().await;
        let (code, body) = healthcheck(s.addr, T).await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (code, v["status"].as_str()),
            (200, Some("starting")),
            "{body}"
        );

        let failed = run(
            Outcome::Failed,
            Some("service postgres: cannot log in to postgres"),
        );
        s.state.lock().unwrap().finish(&failed, Trigger::Manual);
        let (code, body) = healthcheck(s.addr, T).await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(code, 503, "{body}");
        assert_eq!(v["healthy"], false);
        assert_eq!(v["status"], "failing");
        assert_eq!(v["reason"], "service postgres: cannot log in to postgres");
        assert_eq!(v["last_run"]["result"], "failed");

        s.state
            .lock()
            .unwrap()
            .finish(&run(Outcome::Success, None), Trigger::Schedule);
        let (code, body) = healthcheck(s.addr, T).await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (code, &v["status"], &v["healthy"]),
            (200, &Value::from("ok"), &Value::from(true))
        );
    }

    #[tokio::test]
    async fn metrics_are_the_exposition() {
        let s = start().await;
        s.metrics.record_run(&run(Outcome::Success, None));
        let (code, head, body) = request(s.addr, "GET", "/metrics", T).await.unwrap();
        assert_eq!(code, 200);
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            body.contains("\nstackshot_backup_runs_total{result=\"success\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("stackshot_build_info{version=\"9.9.9\"} 1"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn nothing_else_answers() {
        let s = start().await;
        for (method, path, want) in [
            ("POST", "/healthz", 405),
            ("PUT", "/metrics", 405),
            ("DELETE", "/healthz", 405),
            ("POST", "/", 405),
            ("GET", "/index.html", 404),
            ("GET", "/backup", 404),
            ("POST", "/backup", 404),
            ("GET", "/healthz/x", 404),
        ] {
            let (code, _, _) = request(s.addr, method, path, T).await.unwrap();
            assert_eq!(code, want, "{method} {path}");
        }
    }

    /// `GET path` with an `Authorization: auth` header when given: (status, head, body).
    async fn get_as(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(T, stream.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let raw = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn the_status_page_is_html_that_follows_the_runs() {
        let s = start().await;
        let (code, head, body) = get_as(s.addr, "/", None).await;
        assert_eq!(code, 200, "{head}");
        assert!(
            head.contains("content-type: text/html; charset=utf-8"),
            "{head}"
        );
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{head}"
        );
        assert!(body.contains("No run since the daemon started"), "{body}");
        s.state.lock().unwrap().finish(
            &run(Outcome::Failed, Some("service postgres: cannot log in")),
            Trigger::Manual,
        );
        let (_, _, body) = get_as(s.addr, "/", None).await;
        assert!(
            body.contains("<title>stackshot ·  · failing</title>"),
            "{body}"
        );
        assert!(body.contains("service postgres: cannot log in"), "{body}");
    }

    #[tokio::test]
    async fn http_auth_guards_the_page_and_the_metrics_but_not_healthz() {
        use base64::Engine as _;
        let auth = HttpAuth::parse(&crate::env::Sourced {
            var: "HTTP_AUTH".into(),
            value: "admin:pa55word".into(),
        })
        .unwrap();
        let site = Site {
            page: page::Settings::default(),
            auth: Some(auth),
        };
        let addr = start_site(Limits::default(), site).await;
        let right = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:pa55word")
        );
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:guess")
        );
        for path in ["/", "/metrics"] {
            for given in [None, Some(wrong.as_str())] {
                let (code, head, body) = get_as(addr, path, given).await;
                assert_eq!(code, 401, "{path} with {given:?}");
                assert!(
                    head.contains("www-authenticate: basic realm=\"stackshot\""),
                    "{head}"
                );
                assert!(
                    !body.contains("stackshot_") && !body.contains("<html"),
                    "{body}"
                );
            }
            let (code, _, body) = get_as(addr, path, Some(&right)).await;
            assert_eq!(code, 200, "{path}: {body}");
        }
        assert_eq!(get_as(addr, "/healthz", None).await.0, 200);
    }

    #[tokio::test]
    async fn unspecified_address_means_loopback() {
        let s = start().await;
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), s.addr.port());
        let (code, _) = healthcheck(any, T).await.unwrap();
        assert_eq!(code, 200);
    }

    #[tokio::test]
    async fn graceful_shutdown_ends_serve() {
        let mut s = start().await;
        s.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(T, s.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let err = healthcheck(s.addr, T).await.unwrap_err().to_string();
        assert!(err.contains("cannot connect to 127.0.0.1:"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[tokio::test]
    async fn silence_is_a_timeout() {
        // A listener that accepts (the kernel does) but never answers.
        let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = mute.local_addr().unwrap();
        let err = healthcheck(addr, Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no answer from http://127.0.0.1:"), "{err}");
        assert!(err.contains("within 0.2s"), "{err}");
        drop(mute);
    }

    #[tokio::test]
    async fn an_address_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let app = router(
            Arc::new(Mutex::new(DaemonState::new(Utc::now()))),
            Metrics::new("x"),
            Duration::from_secs(60),
            Site::default(),
        );
        let err = serve(addr, app, async {}).await.unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("in use"), "{err}");
        assert!(err.contains("HTTP_ADDR"), "{err}");
    }
}
