//! The HTTP accept loop: axum's router on hyper, with the limits
//! `axum::serve` cannot be given.
//!
//! `axum::serve` builds hyper's connection builder without a timer and
//! offers no hook to change it, so a client that opens a connection and
//! sends nothing, or trickles a header a byte at a time, was kept for as
//! long as it liked (80 s and more in the issue 11 probe), and nothing
//! bounded how many such clients there could be. A few hundred of them
//! would take every file descriptor the webhooks need. So I run the loop
//! myself, the way axum does (hyper-util's `auto` builder, HTTP/1 and h2c,
//! graceful shutdown), with three additions:
//!
//! * **Header-read timeout** (HTTP/1): hyper's own, given a Tokio timer. Its
//!   clock starts whenever the connection waits for a request head, so it
//!   also ends a connection that never sends one, or sits idle between
//!   keep-alive requests.
//! * **Idle timeout** (every protocol): the connection's socket is wrapped
//!   to note the time of its last read or write; a connection with no
//!   traffic either way for that long is dropped. It must be longer than the
//!   request timeout (30 s) and the SSE keep-alive (15 s), which are both
//!   traffic-free stretches of a healthy connection.
//! * **Connection bound**: a semaphore permit per connection. At the bound
//!   the loop stops accepting, so new clients wait in the kernel's backlog
//!   while the timeouts above clear out slow ones, rather than every
//!   connection getting slower.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send a request head (HTTP/1), counted
    /// from when the server starts waiting for one.
    pub header_read_timeout: Duration,
    /// How long a connection may go without a byte either way.
    pub idle_timeout: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish (the caller bounds how long it waits).
/// Each request carries `ConnectInfo<SocketAddr>` like
/// `into_make_service_with_connect_info` gives it.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Above `http::MAX_HEADERS`, so a request with too many headers
        // reaches the router's JSON 431 instead of hyper's bare one.
        .max_headers(crate::http::MAX_HEADERS * 2);
    builder.http2().timer(TokioTimer::new());
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as axum
                    // does, instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let conn = graceful.watch(conn);
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                served = conn => {
                    if let Err(e) = served {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                }
                _ = activity.idle_for(idle) => {
                    tracing::debug!(%remote, "closing an idle connection");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// When a connection last moved a byte, as milliseconds since `start`.
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once there has been no traffic for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let since = self.start.elapsed().saturating_sub(last);
            if since >= limit {
                return;
            }
            tokio::time::sleep(limit - since).await;
        }
    }
}

/// A socket that notes its traffic in an [`Activity`].
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
