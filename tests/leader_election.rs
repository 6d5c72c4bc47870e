//! Leader election against an API server that hangs: the holder must give up at its renew
//! deadline, before the Lease could pass to another replica, instead of writing on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use epic_operator::operator::LeaderElector;

#[tokio::test]
async fn a_hung_renewal_loses_leadership_at_the_renew_deadline() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // An "API server" that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(8) {
            held.extend(stream.ok());
        }
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let lease = Duration::from_secs(3);
    let elector = LeaderElector::new(client, "epic-system", "test", "me", lease);
    let started = Instant::now();
    let why = tokio::time::timeout(Duration::from_secs(20), elector.hold())
        .await
        .expect("hold() returns instead of hanging");
    let took = started.elapsed();
    assert!(why.contains("renew deadline"), "{why}");
    assert!(
        took < lease,
        "gave up after {took:?}, before the {lease:?} lease could pass to another replica"
    );
    assert!(took >= elector.renew_deadline(), "{took:?}");
    drop(holder);
}
