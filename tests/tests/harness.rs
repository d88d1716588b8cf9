//! Self-tests of the harness: the real etcd/Redis/Postgres start, answer,
//! survive restarts and die on kill9/drop. (Node/Coordinator are exercised by
//! the system tests, which need the project's binaries.)

use quota_tests::{
    child_pids, free_port, pid_alive, port_is_closed, test_dir, Etcd, Postgres, Redis,
};
use redis::AsyncCommands;

#[test]
fn free_ports_are_distinct() {
    let ports: std::collections::HashSet<u16> = (0..50).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 50);
}

#[tokio::test]
async fn etcd_put_get_kill9_and_start_again() {
    let dir = test_dir();
    let mut etcd = Etcd::start(dir.path()).await;

    let mut client = etcd.client().await;
    client.put("/harness/k", "v1", None).await.unwrap();
    let resp = client.get("/harness/k", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value_str().unwrap(), "v1");

    let pid = etcd.members[0].proc.pid().unwrap();
    etcd.kill9();
    assert!(!etcd.members[0].proc.is_running());
    assert!(!pid_alive(pid));
    assert!(
        port_is_closed(etcd.members[0].port),
        "etcd port still open after kill9"
    );

    // Same ports, same data dir: the key survived.
    etcd.start_again().await;
    let mut client = etcd.client().await;
    let resp = client.get("/harness/k", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value_str().unwrap(), "v1");
}

#[tokio::test]
async fn three_etcd_members_keep_a_quorum_through_one_kill() {
    let dir = test_dir();
    let mut etcd = Etcd::start_members(dir.path(), "etcd", 3, None).await;
    assert_eq!(etcd.endpoints().len(), 3);
    let mut client = etcd.client().await;
    client.put("/harness/k", "v1", None).await.unwrap();

    // One member down: the other two still commit, and a client on one of them reads it.
    etcd.members[0].kill9();
    let survivor = etcd.members[1].endpoint.clone();
    let client = etcd_client::Client::connect([survivor.as_str()], None)
        .await
        .unwrap();
    // If the killed member led, the survivors first elect a new leader (about a second).
    quota_tests::wait_for("the two survivors to commit", || {
        let mut client = client.clone();
        async move { client.put("/harness/k", "v2", None).await.is_ok() }
    })
    .await;

    // Back on its own data: it catches up with what was committed without it.
    etcd.start_again().await;
    let back = etcd.members[0].endpoint.clone();
    let mut client = etcd_client::Client::connect([back.as_str()], None)
        .await
        .unwrap();
    let resp = client.get("/harness/k", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value_str().unwrap(), "v2");
}

#[tokio::test]
async fn redis_set_get_restart_kill9() {
    let dir = test_dir();
    let mut redis = Redis::start(dir.path()).await;
    assert_eq!(redis.url, format!("redis://127.0.0.1:{}/", redis.port));

    let mut con = redis.conn().await;
    let _: () = con.set("k", "v").await.unwrap();
    let v: String = con.get("k").await.unwrap();
    assert_eq!(v, "v");

    let port = redis.port;
    let old_pid = redis.proc.pid().unwrap();
    redis.restart().await;
    assert_eq!(redis.port, port);
    assert_ne!(redis.proc.pid().unwrap(), old_pid);
    let mut con = redis.conn().await;
    let gone: Option<String> = con.get("k").await.unwrap(); // no persistence
    assert_eq!(gone, None);
    let _: () = con.set("k", "v2").await.unwrap();
    let v: String = con.get("k").await.unwrap();
    assert_eq!(v, "v2");

    let pid = redis.proc.pid().unwrap();
    redis.kill9();
    assert!(!redis.proc.is_running());
    assert!(!pid_alive(pid));
    assert!(port_is_closed(port), "redis port still open after kill9");

    redis.start_again().await;
    let mut con = redis.conn().await;
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn postgres_select_stop_start_kill9() {
    let dir = test_dir();
    let mut pg = Postgres::start(dir.path()).await;
    assert_eq!(
        pg.url,
        format!("postgres://postgres@127.0.0.1:{}/quota", pg.port)
    );

    let client = pg.client().await;
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, "quota");
    client
        .batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
        .await
        .unwrap();
    drop(client);

    // Graceful stop and start again: same port, same data.
    pg.stop().await;
    assert!(!pg.proc.is_running());
    assert!(port_is_closed(pg.port));
    pg.start_again().await;
    let client = pg.client().await;
    let v: i32 = client
        .query_one("SELECT v FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 42);

    // kill9: the postmaster (our direct child) and its backends are gone.
    client
        .batch_execute("INSERT INTO t VALUES (43)")
        .await
        .unwrap();
    let postmaster = pg.proc.pid().unwrap();
    let backends = child_pids(postmaster);
    assert!(
        !backends.is_empty(),
        "expected postgres backends/aux processes"
    );
    pg.kill9();
    assert!(!pg.proc.is_running());
    assert!(!pid_alive(postmaster));
    assert!(
        backends.iter().all(|&b| !pid_alive(b)),
        "backends survived kill9"
    );
    assert!(
        port_is_closed(pg.port),
        "postgres port still open after kill9"
    );
    assert!(client.query_one("SELECT 1", &[]).await.is_err());

    // Crash recovery keeps committed rows.
    pg.start_again().await;
    let client = pg.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    pg.restart().await;
    let client = pg.client().await;
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn dropping_kills_the_processes() {
    let dir = test_dir();
    let redis = Redis::start(dir.path()).await;
    let pg = Postgres::start(dir.path()).await;
    let (rpid, rport) = (redis.proc.pid().unwrap(), redis.port);
    let (ppid, pport) = (pg.proc.pid().unwrap(), pg.port);
    let backends = child_pids(ppid);
    drop(redis);
    drop(pg);
    assert!(!pid_alive(rpid) && port_is_closed(rport));
    assert!(!pid_alive(ppid) && port_is_closed(pport));
    assert!(backends.iter().all(|&b| !pid_alive(b)));
    // The data dir is still there until `dir` drops; then everything goes.
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!path.exists());
}
