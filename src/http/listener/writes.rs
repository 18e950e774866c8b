//! A client's stream that tells its connection's [`StageCell`] when a write waits for the
//! client to take bytes, and when bytes move again: what the cap and the write deadline read
//! to find a client that does not read its answers.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::StageCell;

/// The TCP stream under hyper (or under TLS), reporting its writes.
pub struct WatchedWrites<IO> {
    io: IO,
    stage: Arc<StageCell>,
}

impl<IO> WatchedWrites<IO> {
    pub fn new(io: IO, stage: Arc<StageCell>) -> Self {
        WatchedWrites { io, stage }
    }

    fn report(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Pending => self.stage.write_waits(),
            Poll::Ready(Ok(n)) if *n > 0 => self.stage.write_moved(),
            // An error ends the connection; a zero-byte write moved nothing.
            Poll::Ready(_) => {}
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedWrites<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WatchedWrites<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.report(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.report(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::Connections;
    use super::*;

    #[tokio::test]
    async fn a_write_the_client_does_not_take_is_reported_until_it_reads() {
        let conns = Connections::new("test", 1);
        let (slot, _closed) = conns.admit().unwrap();
        let stage = slot.stage();
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = WatchedWrites::new(server, stage.clone());

        io.write_all(&[0; 64]).await.unwrap();
        assert_eq!(stage.write_waiting_for(Instant::now()), None);
        // The pipe is full: the next write waits for the client.
        assert!(
            io.write(&[1; 16]).now_or_never().is_none(),
            "it did not wait"
        );
        assert!(stage.write_waiting_for(Instant::now()).is_some());

        let mut taken = [0u8; 64];
        client.read_exact(&mut taken).await.unwrap();
        io.write_all(&[2; 16]).await.unwrap();
        assert_eq!(
            stage.write_waiting_for(Instant::now()),
            None,
            "bytes moved once the client read"
        );
    }
}
