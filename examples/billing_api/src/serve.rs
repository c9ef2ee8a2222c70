//! Serving the router on a socket, with a bound on everything a client can
//! hold (DESIGN §6 "Serving limits", §10): the time to send a request's
//! headers, the time a connection may sit idle, the time one request may
//! take, and the number of connections open at once. Bodies are bounded by
//! the router itself ([`BODY_LIMIT`](crate::BODY_LIMIT)).
//!
//! hyper's HTTP/1 server (with tokio's timer, from hyper-util) enforces the
//! header timeout; a permit of a [`Semaphore`], taken before `accept`, caps
//! the connections (more wait in the listener's accept queue); a watchdog
//! closes a connection on which no byte moved for the idle timeout;
//! tower-http's timeout answers 408 to a request that is not done in time
//! (a body sent a byte at a time).
//!
//! ```no_run
//! # async fn run() -> Result<(), billing_api::demo::DemoError> {
//! let router = billing_api::app(billing_api::AppState::new()?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let limits = billing_api::serve::Limits::default();
//! billing_api::serve::serve(listener, router, limits, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutLayer;

/// What one client may hold of the server. [`Default`] gives DESIGN §6's
/// values; tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a client has to send a request's headers, from the moment
    /// the connection waits for a request: on a kept-alive connection the
    /// clock runs between requests too, so an idle connection is closed
    /// after this long already (10 s).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved in either direction for this
    /// long is closed, whatever it is doing (60 s).
    pub idle_timeout: Duration,
    /// How long one request may take, body included: then 408 and the
    /// connection is closed (30 s). A body sent a byte at a time keeps the
    /// connection busy, never idle; this is what ends it.
    pub request_timeout: Duration,
    /// Connections open at once (4 096). Further clients wait in the
    /// listener's accept queue until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 4_096,
        }
    }
}

/// File descriptors kept free of connections: the listener, the log, the
/// database pool, the store's files.
const RESERVED_FILES: u64 = 64;

impl Limits {
    /// The same limits, with at most as many connections as fit in
    /// `open_files` (the process's limit of open files, `ulimit -n`) with
    /// room to spare: past that limit `accept` fails for everyone, while
    /// clients beyond the cap only wait.
    #[must_use]
    pub fn within_open_files(mut self, open_files: u64) -> Self {
        let fit = open_files.saturating_sub(RESERVED_FILES).max(1);
        let fit = usize::try_from(fit).unwrap_or(usize::MAX);
        self.max_connections = self.max_connections.min(fit);
        self
    }
}

/// The soft limit of open files of this process, where the system tells it
/// (Linux: `/proc/self/limits`); `None` elsewhere or when unlimited.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// After an `accept` error other than a connection that went away (e.g.
/// no file descriptor left), the pause before the next `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// Serves `router` on `listener` within `limits` until `shutdown`
/// resolves; then stops accepting, lets each connection finish its request
/// in flight, and returns once every connection is closed.
///
/// Handlers see the peer's address as axum's `ConnectInfo<SocketAddr>`
/// (what the throttle and `TRUSTED_PROXIES` go by).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    // Every permit back is every connection closed: the count of permits
    // must fit the `u32` of `acquire_many`.
    let cap = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let connections = Arc::new(Semaphore::new(cap));
    let (stop, stopped) = watch::channel(());
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let mut shutdown = pin!(shutdown);
    loop {
        // The permit first: at the cap, nothing is accepted, and clients
        // wait in the accept queue instead of costing a file each.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => {
                permit.map_err(|_| io::Error::other("the connection semaphore closed"))?
            }
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = Connection {
                    router: router.clone(),
                    limits,
                    peer,
                    stopped: stopped.clone(),
                    _permit: permit,
                };
                tokio::spawn(connection.run(stream));
            }
            Err(error) if gone(&error) => {}
            Err(error) => {
                tracing::warn!(%error, "accept failed; trying again shortly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    stop.send_replace(());
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _closed = connections
        .acquire_many(all)
        .await
        .map_err(|_| io::Error::other("the connection semaphore closed"))?;
    Ok(())
}

/// An `accept` error about the one connection only (it was reset before
/// it was accepted): nothing to wait for.
fn gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection and what it needs.
struct Connection {
    router: Router,
    limits: Limits,
    peer: SocketAddr,
    /// Changes when the server shuts down.
    stopped: watch::Receiver<()>,
    /// Its place under the cap, given back when the connection ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let (router, peer) = (self.router.clone(), self.peer);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true);
        let mut connection = pin!(builder.serve_connection(io, service));
        let mut stopping = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%error, %peer, "connection closed");
                    }
                    return;
                }
                () = activity.idle_for(self.limits.idle_timeout) => {
                    // Dropping the connection closes the socket.
                    tracing::debug!(%peer, "idle connection closed");
                    return;
                }
                _ = self.stopped.changed(), if !stopping => {
                    // The request in flight is answered; then it closes.
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a byte last moved on a connection.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last read or write.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket that records when bytes move on it.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_designs_and_the_cap_fits_the_open_files() {
        let limits = Limits::default();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.max_connections, 4_096);
        // 256 open files: 192 connections, the rest for the server itself.
        assert_eq!(limits.within_open_files(256).max_connections, 192);
        assert_eq!(limits.within_open_files(1 << 20).max_connections, 4_096);
        assert_eq!(limits.within_open_files(10).max_connections, 1);
    }

    #[test]
    fn this_process_has_a_limit_of_open_files_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
