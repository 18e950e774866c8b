//! A TCP proxy on loopback in front of a server's c2s port that reads nothing (TLS passes
//! through it untouched) but can fail the way a server does: drop every connection and refuse
//! new ones (a restart), or keep connections and pass nothing on (a server that stopped
//! answering). It counts what the server side sees of the gateway: connections relayed (one
//! per login) and connections the gateway itself closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Forward = 0,
    /// Drops every connection, new ones at once: a server restarting.
    Refuse = 1,
    /// Keeps connections but passes nothing on: a server that stopped answering.
    Stall = 2,
}

#[derive(Default)]
struct Counts {
    relayed: AtomicUsize,
    closed_by_gateway: AtomicUsize,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(Mode::Forward as u8));
        let counts = Arc::new(Counts::default());
        let (m, c) = (mode.clone(), counts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if m.load(Ordering::SeqCst) == Mode::Refuse as u8 {
                    continue; // dropped: closed at once
                }
                let (m, c) = (m.clone(), c.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        c.relayed.fetch_add(1, Ordering::SeqCst);
                        relay(client, server, m, c).await;
                    }
                });
            }
        });
        TcpProxy {
            addr,
            mode,
            counts,
            task,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Connections passed on to the server so far (the gateway opens one per login).
    pub fn connections(&self) -> usize {
        self.counts.relayed.load(Ordering::SeqCst)
    }

    /// Connections the gateway closed (not the proxy's cuts).
    pub fn closed_by_gateway(&self) -> usize {
        self.counts.closed_by_gateway.load(Ordering::SeqCst)
    }

    /// Waits until the gateway has closed `n` connections; panics after `limit`.
    pub async fn await_closed_by_gateway(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.closed_by_gateway() < n {
            assert!(
                Instant::now() < deadline,
                "the gateway closed {} connections in {limit:?}, not {n}",
                self.closed_by_gateway()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side closes or the proxy cuts the connection.
async fn relay(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>, counts: Arc<Counts>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (upward, _) = tokio::join!(
        pipe(client_read, server_write, mode.clone()),
        pipe(server_read, client_write, mode),
    );
    if upward == PipeEnd::Eof {
        counts.closed_by_gateway.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(PartialEq, Eq)]
enum PipeEnd {
    /// The reading side closed.
    Eof,
    /// The proxy cut it, or the writing side was gone.
    Cut,
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: Arc<AtomicU8>) -> PipeEnd {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = wait_for(&mode, Mode::Refuse) => return PipeEnd::Cut,
        };
        let n = match read {
            Ok(0) | Err(_) => return PipeEnd::Eof,
            Ok(n) => n,
        };
        // Stalled: the bytes wait until the mode changes; a cut drops them.
        while mode.load(Ordering::SeqCst) == Mode::Stall as u8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if mode.load(Ordering::SeqCst) == Mode::Refuse as u8
            || to.write_all(&buf[..n]).await.is_err()
        {
            return PipeEnd::Cut;
        }
    }
}

/// Resolves once the proxy is in `wanted` mode.
async fn wait_for(mode: &AtomicU8, wanted: Mode) {
    while mode.load(Ordering::SeqCst) != wanted as u8 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
