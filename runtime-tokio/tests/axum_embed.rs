//! The SSE endpoint merged into an axum `Router` and served by
//! `axum::serve`: streams open with the same bytes as under the hub
//! server, the per-IP limit sees `ConnectInfo`, and a disconnect leaves
//! nothing behind.

#![cfg(feature = "axum")]

mod common;

use axum::routing::get;
use axum::Router;
use common::{open, subscribe, wait_until};
use ssehub_core::codec::Event;
use ssehub_core::{Hub, HubConfig};
use ssehub_tokio::SseEndpoint;
use std::net::SocketAddr;

async fn serve(hub: &Hub) -> SocketAddr {
    let app: Router =
        Router::new()
            .route("/", get(|| async { "app" }))
            .merge(ssehub_tokio::axum::routes(
                "/events",
                SseEndpoint::new(hub.clone()),
            ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

#[tokio::test]
async fn the_endpoint_serves_streams_from_an_axum_router() {
    let hub = Hub::new(
        HubConfig {
            max_clients_per_peer: 1,
            ..HubConfig::default()
        },
        ssehub_tokio::now(),
    );
    let addr = serve(&hub).await;
    let (status, _, body) = common::request(addr, "GET", "/", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "app"));

    let (mut raw, _) = subscribe(addr, "/events?topic=ax", "").await;
    let report = hub.publish("ax", &Event::new("via axum")).unwrap();
    assert_eq!(
        raw.frame().await.unwrap(),
        format!("id: {}\ndata: via axum\n\n", report.id)
    );

    // ConnectInfo reached the endpoint: one client per IP.
    let (_second, head) = open(addr, "/events?topic=ax", "").await;
    assert_eq!(head.status, 503);
    assert!(head.header("retry-after").is_some());

    drop(raw);
    wait_until("the client is gone", || hub.is_empty()).await;
    hub.check_invariants().unwrap();
}
