//! Buyers: purchases as a client sends them, and what came back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use super::truth::truth;

/// One purchase answer as the client saw it (status 0 = transport error).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Who bought.
    pub user_id: i64,
    /// HTTP status; 0 when the request never got an answer.
    pub status: u16,
    /// `error.code` of a refusal.
    pub code: Option<String>,
    /// `order_id` of a 201.
    pub order_id: Option<String>,
    /// When the answer arrived.
    pub at: Instant,
}

/// An HTTP client sized for a flash sale.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POST one purchase.
pub async fn buy(client: &reqwest::Client, node: &str, product: i64, user: i64) -> Outcome {
    let resp = client
        .post(format!("{node}/v1/products/{product}/purchase"))
        .json(&serde_json::json!({ "user_id": user }))
        .send()
        .await;
    let Ok(resp) = resp else {
        return Outcome {
            user_id: user,
            status: 0,
            code: None,
            order_id: None,
            at: Instant::now(),
        };
    };
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Outcome {
        user_id: user,
        status,
        code: body["error"]["code"].as_str().map(str::to_string),
        order_id: if status == 201 {
            body["order_id"].as_str().map(str::to_string)
        } else {
            None
        },
        at: Instant::now(),
    }
}

/// Fires one purchase per entry of `users` (repeat a user to send it twice), at most
/// `concurrency` at once, all released together.
pub async fn buy_all(
    node: &str,
    product: i64,
    users: Vec<i64>,
    concurrency: usize,
) -> Vec<Outcome> {
    let client = http();
    let gate = Arc::new(Semaphore::new(concurrency));
    let handles: Vec<_> = users
        .into_iter()
        .map(|u| {
            let client = client.clone();
            let node = node.to_string();
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                buy(&client, &node, product, u).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Count of answers by status.
pub fn by_status(outcomes: &[Outcome]) -> HashMap<u16, usize> {
    let mut m = HashMap::new();
    for o in outcomes {
        *m.entry(o.status).or_insert(0) += 1;
    }
    m
}

/// Buys with fresh users until the region answers sold out; returns every outcome.
/// Used after a fault to prove no unit was stranded: the region must sell exactly what it holds.
pub async fn drain(
    node: &str,
    pg: &tokio_postgres::Client,
    product: i64,
    first_user: i64,
) -> Vec<Outcome> {
    let client = http();
    let mut out = Vec::new();
    let mut user = first_user;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "region never reached sold out");
        let batch: Vec<_> = (0..20)
            .map(|i| {
                let c = client.clone();
                let n = node.to_string();
                tokio::spawn(async move { buy(&c, &n, product, user + i).await })
            })
            .collect();
        user += 20;
        let mut sold_out = false;
        for h in batch {
            let o = h.await.unwrap();
            sold_out |= o.status == 410;
            out.push(o);
        }
        if sold_out {
            // Units may still be held by tickets whose outcome was unknown (they come back when
            // the reconciler settles them): only a sold-out answer that Postgres agrees with
            // (available = 0) ends the drain.
            let t = truth(pg, product).await;
            if t.granted - t.released - t.sold == 0 {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
