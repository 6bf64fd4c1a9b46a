//! The master's HTTP server: one task accepts connections, each connection is served by
//! hyper's HTTP/1 with a header read timeout (which also closes idle keep-alive
//! connections), and a limit on open connections keeps the process under its file limit:
//! past it, new connections wait in the listen backlog, and the log says so. An answer
//! given before its request's body was read to the end says `Connection: close`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How the master treats its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A client must send a request's headers within this time; a keep-alive connection
    /// idle this long is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

/// Descriptors the process keeps for itself beside connections (store, logs, listener).
const RESERVED_FILES: u64 = 128;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // More than the clients' own idle time for pooled connections (ureq: 15 s),
            // so that a client never sends on a connection the master just closed.
            header_read_timeout: Duration::from_secs(20),
            max_connections: 16_384,
        }
    }
}

/// Raises the soft limit on open files to the hard one, and returns how many
/// connections fit under it.
pub(crate) fn connections_that_fit(wanted: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open file limit");
            limit = getrlimit(Resource::Nofile);
        }
    }
    let files = limit.current.unwrap_or(u64::MAX);
    let fit = usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    if fit < wanted {
        tracing::warn!(
            open_files = files,
            connections = fit,
            "the open file limit allows fewer connections than configured (raise LimitNOFILE)"
        );
    }
    wanted.min(fit).max(1)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<crate::tls::Tls>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let app = app.layer(axum::middleware::from_fn(close_if_body_unread));
    let max = connections_that_fit(limits.max_connections);
    let permits = Arc::new(Semaphore::new(max));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut full = false;
    loop {
        if permits.available_permits() == 0 && !full {
            full = true;
            tracing::warn!(
                connections = max,
                "connection limit reached: new connections wait until one closes"
            );
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        if full && permits.available_permits() > max / 10 {
            full = false;
            tracing::info!("connections below the limit again");
        }
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most often: wait for some to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, app, None, header_read_timeout, watcher).await,
                Some(tls) => {
                    // The handshake's flights go out at once (with Nagle, a flight in
                    // several writes waited for the client's delayed ACK: 40 ms); each
                    // response is one write anyway.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    // The handshake is bounded like a request's headers.
                    let accepted =
                        tokio::time::timeout(header_read_timeout, tls.acceptor.accept(stream))
                            .await;
                    match accepted {
                        Ok(Ok(stream)) => {
                            let peer = crate::tls::peer(stream.get_ref().1);
                            serve_connection(stream, app, peer, header_read_timeout, watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What the TLS layer learnt about the client: the holder its certificate names, if it
/// sent one. Every request carries it; handlers read it through `Caller`.
#[derive(Debug, Clone)]
pub(crate) struct Peer(pub(crate) Option<grove_pki::Presented>);

/// Serves one connection (plain or TLS) with hyper's HTTP/1.
async fn serve_connection<I>(
    stream: I,
    app: Router,
    peer: Option<grove_pki::Presented>,
    header_read_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let peer = Peer(peer);
    let app = app.map_request(
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(peer.clone());
            request
        },
    );
    // No TCP_NODELAY: hyper writes a response's head and body apart, and with it each
    // became a packet of its own (desired-state reads fell from 60k/s to 32k/s).
    // One buffer per response (no vectored writes): over TLS each write is a record of
    // its own, and a head and a body apart cost two.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .writev(false)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Adds `Connection: close` to the answer to a request whose body was not read to its end
/// (a 405 or 404 from the path alone, a 401 before the body, a body too large). hyper then
/// closes the connection rather than read an unknown remainder; without the header the
/// client would send its next request on a connection being closed, and meet an EOF.
async fn close_if_body_unread(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http_body::Body as _;
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let ended = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = axum::body::Body::new(WatchedBody {
        inner: body,
        ended: Arc::clone(&ended),
    });
    let mut response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    if !ended.load(Ordering::Acquire) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A request body that notes when it was read to its end.
struct WatchedBody {
    inner: axum::body::Body,
    ended: Arc<AtomicBool>,
}

impl http_body::Body for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
