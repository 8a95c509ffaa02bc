//! The HTTP listener: an accept loop over hyper's HTTP/1 connections with bounds that
//! `axum::serve` does not have (it gives hyper no timer and takes every connection).
//!
//! - At most `connections_max` connections are open: each holds a slot (a semaphore permit)
//!   from accept to close, and at the cap the loop stops accepting (clients wait in the
//!   kernel's backlog). The cap is clamped below the open-files limit, which is raised to its
//!   hard limit at start, so accept rarely meets `EMFILE`; when it does, it pauses, never spins.
//! - Every connection has a watchdog: a request head must arrive within
//!   `header_read_timeout` of its first byte (of the accept, for a connection's first
//!   request), a keep-alive connection is closed after
//!   `idle_timeout` without a request, and while the server is at its cap ("crowded"), a
//!   connection only waiting for a request is closed after `crowded_idle_timeout`, so slow or
//!   idle clients cannot keep a fresh client out. A request being handled is never cut here
//!   (its body read and engine waits have bounds of their own).
//! - Shutdown stops accepting, closes waiting connections, lets hyper finish each request in
//!   flight (`graceful_shutdown`) and returns once every connection is closed; the caller
//!   bounds the wait with the shutdown grace.
//!
//! hyper's own `header_read_timeout` is off: hyper starts it whenever a connection waits for
//! a head, idle ones included, so it would double as the idle timeout and could not shrink
//! under crowding. The watchdog reads what the connection does from its socket (bytes
//! arrived) and its service (a request began or was answered).

use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;

/// The bounds on connections (from `[server]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub crowded_idle_timeout: Duration,
}

impl ConnectionLimits {
    /// How soon a watchdog looks again. Changes of phase do not wake it, so it must look
    /// before any deadline one could bring: a change at any later moment gives at least the
    /// shortest applicable timeout from that moment.
    fn look_again(&self, crowded: bool) -> Duration {
        if crowded { self.crowded_idle_timeout } else { self.header_read_timeout.min(self.idle_timeout) }
    }
}

/// Descriptors kept free under the open-files limit for what is not an HTTP connection: the
/// store's and the log's files, the webhook client's outbound connections (256 at once by
/// default), the runtime's own.
const DESCRIPTORS_RESERVED: u64 = 1_024;

/// Connections waiting in the kernel for `accept` (the kernel caps it at `somaxconn`, 4096
/// here). Deep enough that a burst, or a moment at the cap, does not drop a fresh client's
/// SYN (a dropped SYN costs the client a 1 s retransmission).
const LISTEN_BACKLOG: u32 = 4_096;

/// The pause after an accept error that is not the client's (out of descriptors or memory):
/// retrying at once would spin on the same error, and connections closing meanwhile free
/// descriptors. Short, so accepting resumes quickly.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Crowding ends once this fraction (1/N) of the slots is free again: hysteresis, so the
/// waiting connections (thousands under a slow-client attack) are not woken at every accept.
const UNCROWDED_FREE_FRACTION: usize = 8;
/// ... and at least this many slots (or the whole cap, if smaller): with a small cap, one
/// eviction would otherwise end crowding at once, and the other waiting connections, whose
/// crowded deadlines passed in the same instant, would race that change and stay open.
const UNCROWDED_FREE_MIN: usize = 2;

/// Raises the open-files soft limit to the hard limit and answers the connection cap that
/// fits under it (`wanted`, or less with a warning), with the soft limit for the log.
pub fn fit_connections_to_descriptors(wanted: usize) -> (usize, Option<u64>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = match (limit.current, limit.maximum) {
        (None, _) => return (wanted, None),
        (Some(current), Some(maximum)) if current < maximum => {
            match setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) }) {
                Ok(()) => maximum,
                Err(error) => {
                    tracing::warn!(%error, soft_limit = current, "could not raise the open-files limit to its hard limit");
                    current
                }
            }
        }
        (Some(current), _) => current,
    };
    let fits = usize::try_from(soft.saturating_sub(DESCRIPTORS_RESERVED).max(soft / 2)).unwrap_or(usize::MAX);
    if wanted > fits {
        tracing::warn!(
            connections_max = wanted,
            open_files_limit = soft,
            connections_max_used = fits,
            "server.connections_max does not fit under the open-files limit; using less"
        );
        return (fits, Some(soft));
    }
    (wanted, Some(soft))
}

/// Binds `address` with a deep accept backlog.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// What every connection task shares with the accept loop.
struct Shared {
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    /// True from the moment no slot is free until an eighth of them are free again.
    crowded: watch::Sender<bool>,
    /// True once shutdown began.
    stopping: watch::Sender<bool>,
}

impl Shared {
    fn refresh_crowding(&self) {
        let free = self.slots.available_permits();
        let uncrowded_at = (self.limits.connections_max / UNCROWDED_FREE_FRACTION).max(UNCROWDED_FREE_MIN).min(self.limits.connections_max).max(1);
        let changed = self.crowded.send_if_modified(|crowded| {
            let next = if free == 0 {
                true
            } else if free >= uncrowded_at {
                false
            } else {
                *crowded
            };
            std::mem::replace(crowded, next) != next
        });
        if changed && free == 0 {
            tracing::warn!(
                connections_max = self.limits.connections_max,
                crowded_idle_timeout_ms = self.limits.crowded_idle_timeout.as_millis() as u64,
                "connection cap reached: not accepting until a slot is free; closing connections that only wait"
            );
        } else if changed {
            tracing::info!(free_slots = free, "connection cap no longer reached");
        }
    }
}

/// Accepts and serves connections until `stop` fires (or its sender is dropped), then drains
/// them (see the module's doc).
pub async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits, mut stop: oneshot::Receiver<()>) {
    let shared = Arc::new(Shared {
        limits,
        slots: Arc::new(Semaphore::new(limits.connections_max)),
        crowded: watch::Sender::new(false),
        stopping: watch::Sender::new(false),
    });
    loop {
        shared.refresh_crowding();
        let permit = tokio::select! {
            _ = &mut stop => break,
            permit = Arc::clone(&shared.slots).acquire_owned() => permit.expect("the slots semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(stream, peer, router.clone(), Arc::clone(&shared), permit));
            }
            Err(error) => pause_after_accept_error(error).await,
        }
    }
    drop(listener);
    shared.stopping.send_replace(true);
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let _ = shared.slots.acquire_many(all).await;
}

/// A client that gave up before its accept is its own business; anything else (descriptors,
/// memory) is the server's: log it and pause, so the loop neither spins nor stalls.
async fn pause_after_accept_error(error: io::Error) {
    if matches!(error.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted) {
        return;
    }
    tracing::warn!(%error, pause_ms = ACCEPT_ERROR_PAUSE.as_millis() as u64, "accepting a connection failed; pausing");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// Serves one connection under its watchdog; the slot is freed when this returns.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, router: Router, shared: Arc<Shared>, permit: OwnedSemaphorePermit) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedStream { stream, activity: Arc::clone(&activity) });
    let router = TowerToHyperService::new(router);
    let request_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request_activity.begin_request();
        let answer = router.call(request);
        let activity = Arc::clone(&request_activity);
        async move {
            let response = answer.await;
            activity.end_request();
            response
        }
    });
    // The block drops the connection (closing its socket) before its slot is freed.
    {
        let connection = http1::Builder::new().timer(TokioTimer::new()).header_read_timeout(None).serve_connection(io, service);
        let mut connection = pin!(connection);
        let mut crowded = shared.crowded.subscribe();
        let mut stopping = shared.stopping.subscribe();
        let mut stop_requested = false;
        loop {
            let now = Instant::now();
            let crowded_now = *crowded.borrow_and_update();
            let deadline = activity.deadline(&shared.limits, crowded_now, stop_requested);
            if deadline.is_some_and(|deadline| deadline <= now) {
                tracing::debug!(%peer, "closing a connection that waited too long for a request");
                break;
            }
            let look_again = now + shared.limits.look_again(crowded_now);
            let wake_at = deadline.map_or(look_again, |deadline| deadline.min(look_again));
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    break;
                }
                () = tokio::time::sleep_until(wake_at) => {}
                _ = crowded.changed() => {}
                _ = stopping.changed(), if !stop_requested => {
                    stop_requested = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(permit);
    shared.refresh_crowding();
}

/// Where a connection stands: waiting for a request, reading a head, or handling a request.
const WAITING: u8 = 0;
const READING_HEAD: u8 = 1;
const HANDLING: u8 = 2;

/// What the watchdog knows of its connection: the phase and when it began (ms since `epoch`).
struct Activity {
    phase: AtomicU8,
    since_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn new() -> Activity {
        // A new connection counts as a head begun at accept: a client that connects and sends
        // nothing gets the header timeout, not the (longer) keep-alive idle time.
        Activity { phase: AtomicU8::new(READING_HEAD), since_ms: AtomicU64::new(0), epoch: Instant::now() }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes arrived: if the connection was waiting, a head has begun.
    fn bytes_arrived(&self) {
        if self.phase.load(Ordering::Relaxed) == WAITING {
            self.since_ms.store(self.elapsed_ms(), Ordering::Relaxed);
            self.phase.store(READING_HEAD, Ordering::Relaxed);
        }
    }

    fn begin_request(&self) {
        self.phase.store(HANDLING, Ordering::Relaxed);
    }

    fn end_request(&self) {
        self.since_ms.store(self.elapsed_ms(), Ordering::Relaxed);
        self.phase.store(WAITING, Ordering::Relaxed);
    }

    /// When the connection must be closed if nothing changes; `None` while handling a request.
    fn deadline(&self, limits: &ConnectionLimits, crowded: bool, stopping: bool) -> Option<Instant> {
        let since = self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        let allowed = match self.phase.load(Ordering::Relaxed) {
            HANDLING => return None,
            WAITING if stopping => Duration::ZERO,
            WAITING => limits.idle_timeout,
            _ => limits.header_read_timeout,
        };
        let allowed = if crowded { allowed.min(limits.crowded_idle_timeout) } else { allowed };
        Some(since + allowed)
    }
}

/// The socket, telling the watchdog when bytes arrive.
struct WatchedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(context, buffer);
        if matches!(polled, Poll::Ready(Ok(()))) && buffer.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, bytes)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, context: &mut Context<'_>, buffers: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}
