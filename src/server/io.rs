//! The connection's byte stream with the two timeouts hyper does not have: closing a
//! keep-alive connection that stays idle, and dropping one whose client stopped
//! reading a response. It also gives hyper's own answers to requests it cannot
//! parse (400, 414 past 64 KiB, 431), which hyper writes with an empty body before
//! any service runs and offers no hook for, the DRF `{"detail": ...}` body that every
//! other error has ([`drf_automatic_error`]).
//!
//! "Idle" needs to know whether a request is in progress, which only the service
//! sees: [`Activity`] is shared between this stream and the request tracker
//! ([`super::body::TrackRequests`]). An idle connection is closed by reporting
//! end-of-stream to hyper, which then closes it as a client hang-up between requests:
//! nothing is cut off, because no request is in progress.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What one connection is doing: requests in progress and when it last received
/// bytes or finished a request.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` of the last byte received or request finished.
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// A request reached the service.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's response was written (or abandoned).
    pub fn end(&self) {
        self.touch();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection counts as idle for `limit`: `None` while a request is in
    /// progress.
    fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + limit)
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// A byte stream that ends itself after `idle` without a request or a received
/// byte, and fails a write that makes no progress for `send_timeout`.
pub struct GuardedIo<T> {
    inner: T,
    activity: std::sync::Arc<Activity>,
    idle: Duration,
    send_timeout: Duration,
    idle_timer: Pin<Box<Sleep>>,
    /// Armed while a write is pending.
    send_timer: Option<Pin<Box<Sleep>>>,
    /// hyper's automatic error response, rewritten, while it is being written.
    rewrite: Option<Rewrite>,
}

/// Bytes written in place of `replaces` bytes of hyper's output.
struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    replaces: usize,
}

/// If `out` starts with one of the responses hyper writes by itself for a request it
/// cannot parse (status 400, 414 or 431 with `content-length: 0`; bookcal's own
/// errors always have a body), the same response with a DRF body and how many bytes
/// of `out` it replaces.
pub fn drf_automatic_error(out: &[u8]) -> Option<(Vec<u8>, usize)> {
    let detail = if out.starts_with(b"HTTP/1.1 400 ") {
        "Malformed request."
    } else if out.starts_with(b"HTTP/1.1 414 ") {
        "Request URI is too long."
    } else if out.starts_with(b"HTTP/1.1 431 ") {
        "Request header fields are too large."
    } else {
        return None;
    };
    let end = out.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&out[..end]).ok()?;
    let empty = "\r\ncontent-length: 0\r\n";
    if !head.contains(empty) {
        return None;
    }
    let body = serde_json::json!({ "detail": detail }).to_string();
    let typed = format!(
        "\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    let mut bytes = head.replacen(empty, &typed, 1).into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    Some((bytes, end))
}

impl<T> GuardedIo<T> {
    pub fn new(
        inner: T,
        activity: std::sync::Arc<Activity>,
        idle: Duration,
        send_timeout: Duration,
    ) -> Self {
        GuardedIo {
            inner,
            activity,
            idle,
            send_timeout,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            send_timer: None,
            rewrite: None,
        }
    }

    /// Called when a read is pending: `Ready` once the connection has been idle for
    /// the limit; otherwise the timer is armed for the next check (while a request
    /// is in progress, one idle period from now).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let now = Instant::now();
            let deadline = match self.activity.idle_deadline(self.idle) {
                Some(d) if d <= now => return Poll::Ready(()),
                Some(d) => d,
                None => now + self.idle,
            };
            self.idle_timer.as_mut().reset(deadline);
            if self.idle_timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Called when a write is pending: an error once it has been pending for the
    /// send timeout.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.send_timeout;
        let timer = self
            .send_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.send_timer = None;
                tracing::debug!("dropping a connection whose client stopped reading");
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read the response within the send timeout",
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote<R>(&mut self, r: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.send_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stalled(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_idle(cx) {
                // End of stream: hyper closes a connection that is between requests.
                Poll::Ready(()) => {
                    tracing::trace!("closing an idle keep-alive connection");
                    Poll::Ready(Ok(()))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> GuardedIo<T> {
    /// Writes the rewritten response in place of `buf` if `buf` starts with one of
    /// hyper's automatic errors (or one is being written); `None` otherwise.
    fn poll_rewrite(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        if self.rewrite.is_none() {
            let (bytes, replaces) = drf_automatic_error(buf)?;
            self.rewrite = Some(Rewrite {
                bytes,
                written: 0,
                replaces,
            });
        }
        loop {
            let rw = self.rewrite.as_mut()?;
            if rw.written == rw.bytes.len() {
                let n = rw.replaces;
                self.rewrite = None;
                return Some(Poll::Ready(Ok(n)));
            }
            let r = Pin::new(&mut self.inner).poll_write(cx, &rw.bytes[rw.written..]);
            match self.wrote(r, cx) {
                Poll::Ready(Ok(n)) => {
                    if let Some(rw) = self.rewrite.as_mut() {
                        rw.written += n;
                    }
                    if n == 0 {
                        return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())));
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.rewrite = None;
                    return Some(Poll::Ready(Err(e)));
                }
                Poll::Pending => return Some(Poll::Pending),
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(r) = this.poll_rewrite(cx, buf) {
            return r;
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if let Some(r) = this.poll_rewrite(cx, first) {
                return r;
            }
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.wrote(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_ends_after_the_limit_and_not_before() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::new());
        let mut io = GuardedIo::new(
            server,
            activity.clone(),
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let n = io.read(&mut buf).await.expect("read");
        assert_eq!(n, 0, "end of stream");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_keeps_the_stream_open() {
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::new());
        let mut io = GuardedIo::new(
            server,
            activity.clone(),
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        activity.begin();
        let finisher = {
            let activity = activity.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                activity.end();
            })
        };
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let n = io.read(&mut buf).await.expect("read");
        assert_eq!(n, 0);
        // 60 s of request, then 5 s of idleness.
        assert_eq!(started.elapsed(), Duration::from_secs(65));
        finisher.await.expect("finisher");
        // Received bytes count as activity too.
        client.write_all(b"x").await.expect("write");
        assert_eq!(io.read(&mut buf).await.expect("read"), 1);
    }

    #[test]
    fn only_hypers_bodiless_parse_errors_are_given_a_drf_body() {
        let date = "date: Tue, 01 Dec 2026 03:48:26 GMT\r\n\r\n";
        let auto = |status: &str| {
            format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\n{date}")
        };
        let cases = [
            (auto("414 URI Too Long"), Some("Request URI is too long.")),
            (auto("400 Bad Request"), Some("Malformed request.")),
            (
                auto("431 Request Header Fields Too Large"),
                Some("Request header fields are too large."),
            ),
            // bookcal's own errors have bodies; other statuses are never hyper's.
            (
                format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n{date}[\"x\"]"),
                None,
            ),
            (auto("404 Not Found"), None),
            (auto("200 OK"), None),
            (
                "HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n".into(),
                None,
            ),
        ];
        for (out, want) in cases {
            let got = drf_automatic_error(out.as_bytes());
            match (got, want) {
                (None, None) => {}
                (Some((bytes, replaces)), Some(detail)) => {
                    assert_eq!(replaces, out.len());
                    let text = String::from_utf8(bytes).expect("utf-8");
                    let (head, body) = text.split_once("\r\n\r\n").expect("head");
                    let v: serde_json::Value = serde_json::from_str(body).expect("json");
                    assert_eq!(v, serde_json::json!({ "detail": detail }));
                    assert!(head.contains("\r\ncontent-type: application/json\r\n"));
                    assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
                    assert!(head.contains("\r\nconnection: close"));
                }
                (got, want) => panic!("{out:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_reads_fails_after_the_send_timeout() {
        let (_client, server) = tokio::io::duplex(16);
        let mut io = GuardedIo::new(
            server,
            Arc::new(Activity::new()),
            Duration::from_secs(5),
            Duration::from_secs(7),
        );
        let started = Instant::now();
        let err = io.write_all(&[0u8; 1024]).await.expect_err("stalls");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }
}
