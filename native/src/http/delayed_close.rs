//! Envoy's delayed close for downstream connections: once the codec drops the
//! socket, half-close it and discard what the client still sends, for at most
//! `DELAYED_CLOSE_TIMEOUT` (Envoy's `delayed_close_timeout` default), before the
//! real close. Closing with unread input makes the kernel answer RST, which can
//! destroy the last thing we wrote (a 400, a GOAWAY) before the client reads it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A downstream socket that lingers as above when dropped (on a runtime).
#[derive(Debug)]
pub struct DelayedClose(Option<TcpStream>);

impl DelayedClose {
    pub fn new(stream: TcpStream) -> Self {
        DelayedClose(Some(stream))
    }

    fn io(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.0.as_mut().expect("taken only on drop"))
    }
}

impl Drop for DelayedClose {
    fn drop(&mut self) {
        let (Some(stream), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(linger(stream));
    }
}

async fn linger(mut stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(DELAYED_CLOSE_TIMEOUT, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

impl AsyncRead for DelayedClose {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_read(cx, buf)
    }
}

impl AsyncWrite for DelayedClose {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}
