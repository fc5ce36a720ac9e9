//! The HTTP port (`HTTP_ADDR`): `GET /healthz` and `GET /metrics`, nothing else.
//! No route can start a run, stop a container or read backed-up data; other
//! paths answer 404, other methods 405.
//!
//! Also the client behind `stackshot healthcheck` (the image has no curl): a
//! plain HTTP/1.0 `GET /healthz`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use chrono::Utc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::health;
use super::metrics::{CONTENT_TYPE, Metrics};
use super::state::DaemonState;

#[derive(Clone)]
struct App {
    state: Arc<Mutex<DaemonState>>,
    metrics: Metrics,
    max_age: Duration,
}

/// The router: `GET /healthz` (200 when healthy, 503 otherwise, JSON) and
/// `GET /metrics` (Prometheus text format 0.0.4).
///
/// `state` is behind a `std::sync::Mutex`, as in the daemon: every holder
/// locks it briefly and never across an `.await`.
pub fn router(state: Arc<Mutex<DaemonState>>, metrics: Metrics, max_age: Duration) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(App {
            state,
            metrics,
            max_age,
        })
}

async fn healthz(State(app): State<App>) -> (StatusCode, Json<serde_json::Value>) {
    let state = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let h = health::evaluate(&state, Utc::now(), app.max_age);
    let code = if h.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health::healthz_body(&state, &h)))
}

async fn metrics_text(State(app): State<App>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.encode())
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

async fn serve_on(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "HTTP: /healthz and /metrics");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("HTTP server on {addr}"))
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
        let app = router(state.clone(), metrics.clone(), Duration::from_secs(3600));
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
        s.state.lock().unwrap().finish(&failed, "manual");
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
            .finish(&run(Outcome::Success, None), "schedule");
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
            ("GET", "/", 404),
            ("GET", "/backup", 404),
            ("POST", "/backup", 404),
            ("GET", "/healthz/x", 404),
        ] {
            let (code, _, _) = request(s.addr, method, path, T).await.unwrap();
            assert_eq!(code, want, "{method} {path}");
        }
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
        );
        let err = serve(addr, app, async {}).await.unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("in use"), "{err}");
        assert!(err.contains("HTTP_ADDR"), "{err}");
    }
}
