//! The proxy against a real echo server on loopback. Timing is only ever asserted as a lower
//! bound (never flaky); everything else checks order and data integrity. Every test is bounded.

use std::future::Future;
use std::io::{ErrorKind, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quota_proxy::{control_router, Link, LinkControl, Mode, Proxy};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// Long enough for any healthy answer; only a broken proxy waits this long.
const LONG: Duration = Duration::from_secs(10);

/// Fails the test instead of hanging it.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out")
}

/// An echo server on a free port; each connection echoes until EOF, then half-closes.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A proxy with one link (id `l`) in front of a fresh echo server; cancel the token to stop it.
async fn start(latency_ms: u64, jitter_ms: u64) -> (Arc<LinkControl>, CancellationToken) {
    let (listen, upstream, mode) = ("127.0.0.1:0".parse().unwrap(), echo().await, Mode::Pass);
    let id = "l".to_string();
    let link = Link {
        id,
        listen,
        upstream,
        latency_ms,
        jitter_ms,
        mode,
    };
    let proxy = Proxy::bind(vec![link]).await.unwrap();
    let ctl = proxy.controls().remove(0);
    let stop = CancellationToken::new();
    tokio::spawn(proxy.run(stop.clone()));
    (ctl, stop)
}

/// Writes `data` (then half-closes) while reading everything echoed back.
async fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(4096) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back
}

/// One small echo on `s`; `Err(TimedOut)` if none arrives within `wait`.
async fn ping_on(s: &mut TcpStream, wait: Duration) -> Result<[u8; 4]> {
    s.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    timeout(wait, s.read_exact(&mut buf)).await??;
    Ok(buf)
}

/// The same on a new connection.
async fn ping(ctl: &LinkControl, wait: Duration) -> Result<[u8; 4]> {
    ping_on(&mut TcpStream::connect(ctl.listen).await?, wait).await
}

#[tokio::test]
async fn one_mib_each_way_on_ten_concurrent_connections_arrives_intact() {
    bounded(async {
        let (ctl, stop) = start(5, 3).await;
        let tasks: Vec<_> = (0..10u32)
            .map(|c| {
                let data: Vec<u8> = (0..1u32 << 20)
                    .map(|i| (i.wrapping_mul(31) ^ c) as u8)
                    .collect();
                let addr = ctl.listen;
                tokio::spawn(async move { round_trip(addr, data.clone()).await == data })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap(), "echoed bytes differ");
        }
        let st = ctl.status();
        assert_eq!((st.bytes_up, st.bytes_down), (10 << 20, 10 << 20));
        stop.cancel();
    })
    .await;
}

#[tokio::test]
async fn round_trip_takes_at_least_twice_the_latency() {
    bounded(async {
        let (ctl, stop) = start(50, 0).await;
        let mut s = TcpStream::connect(ctl.listen).await.unwrap();
        let t0 = Instant::now();
        assert_eq!(&ping_on(&mut s, LONG).await.unwrap(), b"ping");
        assert!(
            t0.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t0.elapsed()
        );
        stop.cancel();
    })
    .await;
}

#[tokio::test]
async fn jitter_never_reorders_bytes() {
    bounded(async {
        let (ctl, stop) = start(3, 3).await;
        let numbered: Vec<u8> = (0..10_000u32).flat_map(u32::to_be_bytes).collect();
        // Written 4 bytes at a time: 10k small messages, each its own delayed chunk or few.
        let s = TcpStream::connect(ctl.listen).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (mut r, mut w) = s.into_split();
        let msgs = numbered.clone();
        let writer = tokio::spawn(async move {
            for m in msgs.chunks(4) {
                w.write_all(m).await.unwrap();
            }
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();
        assert!(back == numbered, "messages reordered or lost");
        stop.cancel();
    })
    .await;
}

#[tokio::test]
async fn blackhole_swallows_requests_and_pass_restores_new_connections() {
    bounded(async {
        let (ctl, stop) = start(0, 0).await;
        let mut old = TcpStream::connect(ctl.listen).await.unwrap();
        assert_eq!(&ping_on(&mut old, LONG).await.unwrap(), b"ping");
        ctl.set_mode(Mode::Blackhole);
        let wait = Duration::from_millis(300);
        let timed_out = |r: Result<_>| matches!(r, Err(e) if e.kind() == ErrorKind::TimedOut);
        assert!(
            timed_out(ping_on(&mut old, wait).await),
            "existing connection answered"
        );
        assert!(timed_out(ping(&ctl, wait).await), "new connection answered");
        ctl.set_mode(Mode::Pass);
        assert_eq!(&ping(&ctl, LONG).await.unwrap(), b"ping");
        stop.cancel();
    })
    .await;
}

#[tokio::test]
async fn reset_fails_existing_and_new_connections() {
    bounded(async {
        let (ctl, stop) = start(0, 0).await;
        let mut old = TcpStream::connect(ctl.listen).await.unwrap();
        assert_eq!(&ping_on(&mut old, LONG).await.unwrap(), b"ping");
        ctl.set_mode(Mode::Reset);
        let read = timeout(LONG, old.read(&mut [0u8; 1]))
            .await
            .expect("no reset");
        assert!(read.is_err(), "existing connection: {read:?}");
        assert!(ping(&ctl, LONG).await.is_err(), "new connection answered");
        stop.cancel();
    })
    .await;
}

#[tokio::test]
async fn control_api_reads_and_updates_links_and_rejects_bad_input() {
    bounded(async {
        let (ctl, stop) = start(10, 1).await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, control_router(vec![ctl])).await });
        let http = reqwest::Client::new();
        let get = |p: &str| http.get(format!("{base}{p}")).send();
        let put = |id: &str, body: &str| {
            let url = format!("{base}/links/{id}");
            let req = http.put(url).header("content-type", "application/json");
            req.body(body.to_string()).send()
        };
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        let links: Value = get("/links").await.unwrap().json().await.unwrap();
        assert_eq!(
            (&links[0]["id"], &links[0]["latency_ms"]),
            (&"l".into(), &10.into())
        );
        assert_eq!(links[0]["mode"], "pass");

        let r = put("l", r#"{"latency_ms":7,"mode":"blackhole"}"#)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let st: Value = r.json().await.unwrap();
        assert_eq!(
            (&st["latency_ms"], &st["jitter_ms"]),
            (&7.into(), &1.into())
        );
        assert_eq!(st["mode"], "blackhole");

        for (id, body, status, code) in [
            ("l", r#"{"mode":"slow"}"#, 400, "invalid_request"),
            ("l", r#"{"latency_ms":-5}"#, 400, "invalid_request"),
            ("l", r#"{"latency_ms":99999999}"#, 400, "invalid_request"),
            ("l", r#"{"colour":"red"}"#, 400, "invalid_request"),
            ("l", "not json", 400, "invalid_request"),
            ("nope", r#"{"mode":"pass"}"#, 404, "not_found"),
        ] {
            let r = put(id, body).await.unwrap();
            assert_eq!(r.status(), status, "{body}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], code, "{body}");
            assert!(e["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
        let links: Value = get("/links").await.unwrap().json().await.unwrap();
        assert_eq!(
            (&links[0]["latency_ms"], &links[0]["mode"]),
            (&7.into(), &"blackhole".into())
        );
        stop.cancel();
    })
    .await;
}
