//! HTTP/2 prior knowledge told apart from HTTP/1.1 by a connection's first bytes, and turned
//! away cleanly: SETTINGS, then GOAWAY with HTTP_1_1_REQUIRED. Works on any stream, so the
//! same check runs on plain TCP and after a TLS handshake.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The answer to it: an empty SETTINGS frame (the server preface), then GOAWAY with last
/// stream 0 and HTTP_1_1_REQUIRED (0xd), with a reason as debug data.
pub const H2_GOAWAY: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\
\x00\x00\x1c\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0dHTTP/1.1 is required";

/// How a connection opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// Anything but the HTTP/2 preface: the bytes read so far, for hyper to read again.
    Http1(Vec<u8>),
    /// The whole HTTP/2 connection preface.
    Http2,
    /// End of stream before the first byte that tells them apart.
    Closed,
}

/// Reads only as far as needed to tell HTTP/2 prior knowledge from HTTP/1.1: an HTTP/1.1
/// request differs from the preface by its first bytes (`GET`, `POST`: the second byte).
pub async fn preface<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<Opening> {
    let mut buf = [0u8; 24];
    let mut n = 0;
    loop {
        let read = io.read(&mut buf[n..]).await?;
        if read == 0 {
            return Ok(Opening::Closed);
        }
        n += read;
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Opening::Http1(buf[..n].to_vec()));
        }
        if n == H2_PREFACE.len() {
            return Ok(Opening::Http2);
        }
    }
}

/// SETTINGS and GOAWAY (HTTP_1_1_REQUIRED), then a clean close: the client's further bytes
/// are read and dropped for a moment, because closing with unread data would send a reset
/// that can destroy the GOAWAY before the client reads it.
pub async fn refuse_http2<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) {
    if io.write_all(H2_GOAWAY).await.is_err() || io.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        // On the heap: an array here would make every connection's future 4 KB larger.
        let mut sink = vec![0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// A stream whose first bytes, read already to look for the HTTP/2 preface, are read again.
pub struct Rewound<IO> {
    prefix: Vec<u8>,
    at: usize,
    io: IO,
}

impl<IO> Rewound<IO> {
    pub fn new(prefix: Vec<u8>, io: IO) -> Self {
        Rewound { prefix, at: 0, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewound<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewound<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
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
    use super::*;

    #[tokio::test]
    async fn the_http2_preface_is_told_apart_from_http1_by_what_arrived_first() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(
            preface(&mut server).await.unwrap(),
            Opening::Http1(b"POST / HTTP/1.1\r\n".to_vec())
        );
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(H2_PREFACE).await.unwrap();
        assert_eq!(preface(&mut server).await.unwrap(), Opening::Http2);
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PRI").await.unwrap();
        drop(client);
        assert_eq!(preface(&mut server).await.unwrap(), Opening::Closed);
    }

    #[tokio::test]
    async fn the_bytes_read_for_the_preface_are_read_again() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"ST / HTTP/1.1").await.unwrap();
        drop(client);
        let mut io = Rewound {
            prefix: b"PO".to_vec(),
            at: 0,
            io: server,
        };
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"POST / HTTP/1.1");
    }

    #[test]
    fn the_goaway_frame_says_http_1_1_required() {
        // SETTINGS: empty, type 4, stream 0.
        assert_eq!(&H2_GOAWAY[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let goaway = &H2_GOAWAY[9..];
        let len = u32::from_be_bytes([0, goaway[0], goaway[1], goaway[2]]) as usize;
        assert_eq!(len, goaway.len() - 9);
        assert_eq!(goaway[3], 7, "frame type GOAWAY");
        assert_eq!(&goaway[5..9], &[0, 0, 0, 0], "stream 0");
        assert_eq!(&goaway[9..13], &[0, 0, 0, 0], "last stream id");
        assert_eq!(&goaway[13..17], &[0, 0, 0, 0x0d], "HTTP_1_1_REQUIRED");
    }
}
