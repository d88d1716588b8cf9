//! Issue 10 §2: every test cluster's Redis and Postgres, like a deployment's, serve TLS only
//! and want a password. A plain-text connection, a client trusting another CA and a client
//! without the password are all refused; the region node (which sold the sale) got in with
//! its password file and CA file.

use quota_tests::{buy, http, truth, Cluster, Sale, TestCa};

const P: i64 = 31;

#[tokio::test]
async fn postgres_and_redis_refuse_plain_text_strangers_and_the_passwordless() {
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 5, "east=5").create(&c).await;
    let node = c.region("east").node.url.clone();
    assert_eq!(
        buy(&http(), &node, P, 1).await.status,
        201,
        "the node gets in"
    );
    let pg = &c.region("east").pg;
    assert_eq!(truth(&pg.client().await, P).await.sold, 1);

    // Postgres: plain text → rejected by pg_hba; TLS trusting another CA → handshake fails;
    // TLS without the password → authentication fails.
    let s = pg.secured.as_ref().expect("secured by default");
    let plain = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await;
    assert!(plain.is_err(), "plain text accepted");
    let other = TestCa::new(&c.dir.path().join("other-ca"));
    let mut stranger = s.clone();
    stranger.ca_cert = other.cert.clone();
    let mut cfg: tokio_postgres::Config = pg.url.parse().unwrap();
    cfg.password(&s.password)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let wrong_ca = cfg
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
            stranger.client_tls(),
        ))
        .await;
    let err = wrong_ca.err().map(|e| format!("{e:?}")).unwrap_or_default();
    assert!(err.contains("InvalidCertificate"), "wrong CA: {err}");
    let mut no_password: tokio_postgres::Config = pg.url.parse().unwrap();
    no_password.ssl_mode(tokio_postgres::config::SslMode::Require);
    let refused = no_password
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
            s.client_tls(),
        ))
        .await;
    assert!(refused.is_err(), "no password accepted");

    // Redis: plain text on the TLS port gets no PONG; TLS with another CA fails; TLS without
    // the password is refused (NOAUTH).
    let redis = &c.region("east").redis;
    let rs = redis.secured.as_ref().expect("secured by default");
    let plain_url = format!("redis://127.0.0.1:{}/", redis.port);
    let plain = async {
        let client = redis::Client::open(plain_url.as_str()).ok()?;
        let mut con = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .ok()
    };
    let plain = tokio::time::timeout(std::time::Duration::from_secs(3), plain).await;
    assert!(
        !matches!(plain, Ok(Some(_))),
        "plain text answered: {plain:?}"
    );
    let with_ca = |pem: Vec<u8>, password: Option<&str>| {
        let mut info = redis::IntoConnectionInfo::into_connection_info(redis.url.as_str()).unwrap();
        if let Some(pw) = password {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            },
        )
        .unwrap()
    };
    let wrong = with_ca(std::fs::read(&other.cert).unwrap(), Some(&rs.password));
    assert!(
        wrong.get_multiplexed_async_connection().await.is_err(),
        "wrong CA accepted"
    );
    let anonymous = with_ca(rs.ca_pem(), None);
    let ping = async {
        let mut con = anonymous.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut con).await
    };
    let err = ping.await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("NOAUTH") || err.contains("Authentication"),
        "no password: {err}"
    );
}
