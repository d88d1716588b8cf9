//! One proxied connection: two directions, each a reader and a writer joined by a queue.
//!
//! The reader stamps every chunk it reads with `deliver_at = max(previous, now + delay)` and
//! queues it; the writer sleeps until `deliver_at` and writes. Delay is therefore per chunk and
//! pipelined (throughput is not capped by latency), and because `deliver_at` never decreases a
//! jittered chunk can never overtake an earlier one. The queue is bounded, so a slow receiver
//! pushes back on the sender as TCP would. Everything runs inside the connection's single task
//! (no extra spawns), keeping per-connection cost to two buffers and two small channels.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::control::LinkControl;
use crate::link::Mode;

/// Bytes read per chunk.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction before the reader waits (backpressure).
const QUEUE_CHUNKS: usize = 64;

/// Closes with RST instead of FIN: SO_LINGER 0, then drop.
pub(crate) fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Counts a connection as open for as long as it lives.
struct Open<'a>(&'a AtomicU64);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Serves one accepted client until both directions close, the link resets, or shutdown.
pub(crate) async fn serve(client: TcpStream, ctl: Arc<LinkControl>, shutdown: CancellationToken) {
    let mut mode = ctl.watch_mode();
    if *mode.borrow() == Mode::Reset {
        return reset(client);
    }
    ctl.connections.fetch_add(1, Relaxed);
    let _open = Open(&ctl.connections);
    let mut upstream = tokio::select! {
        r = TcpStream::connect(ctl.upstream) => match r {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(link = &*ctl.id, error = %e, "upstream connect failed");
                return reset(client);
            }
        },
        _ = shutdown.cancelled() => return,
    };
    let mut client = client;
    let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
    let reset_now = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let both = async {
            tokio::join!(
                pump(cr, uw, &ctl, &ctl.bytes_up),
                pump(ur, cw, &ctl, &ctl.bytes_down)
            )
        };
        tokio::select! {
            _ = both => false,
            _ = mode.wait_for(|m| *m == Mode::Reset) => true,
            _ = shutdown.cancelled() => false,
        }
    };
    if reset_now {
        reset(client);
        reset(upstream);
    }
}

/// Moves one direction's bytes, delayed per chunk, until EOF or an error; then half-closes.
async fn pump(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, ctl: &LinkControl, sent: &AtomicU64) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut last = Instant::now();
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if ctl.mode() == Mode::Blackhole {
                continue; // a partition: the bytes vanish
            }
            last = last.max(Instant::now() + ctl.sample_delay());
            if tx.send((last, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = rx.recv().await {
            if at > Instant::now() {
                sleep_until(at).await;
            }
            if ctl.mode() == Mode::Blackhole {
                continue; // in flight when the partition began: lost too
            }
            // Counted before writing, so whoever has read the bytes also sees them counted.
            sent.fetch_add(bytes.len() as u64, Relaxed);
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
