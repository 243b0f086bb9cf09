//! Baseline B's server: axum + one `tokio::sync::broadcast` channel per
//! topic + `Sse` with `KeepAlive`, on the same routes as the `ssehub`
//! binary (`GET /events?topic=…`, `POST /publish` with a bearer token,
//! `GET /healthz`), so the load generator drives both the same way.
//! Every accepted connection gets `TCP_NODELAY`, as ssehub's do: without
//! it, Nagle's algorithm holds small frames back and B measures slower
//! than its design is.
//!
//! ```text
//! baseline_b_server --addr 127.0.0.1:0 --token TOKEN [--capacity 1024]
//! ```
//!
//! Prints `listening on <addr>` once it accepts connections.

use axum::serve::ListenerExt;
use ssehub_benches::baseline_b::{router, AppState, BroadcastHub};
use std::sync::Arc;

struct Args {
    addr: String,
    token: String,
    capacity: usize,
}

const USAGE: &str = "usage: baseline_b_server --addr HOST:PORT --token TOKEN [--capacity N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:0".to_owned(),
        token: String::new(),
        // The same bound as ssehub's default per-client queue.
        capacity: 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value()?,
            "--token" => args.token = value()?,
            "--capacity" => {
                args.capacity = value()?.parse().map_err(|e| format!("--capacity: {e}"))?
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.token.is_empty() {
        return Err(format!("--token is required\n{USAGE}"));
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    ssehub_benches::procstat::raise_fd_limit(1 << 20);
    let state = AppState {
        hub: Arc::new(BroadcastHub::new(args.capacity)),
        token: Arc::from(args.token.as_str()),
    };
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .expect("bind the listening address");
    let local = listener.local_addr().expect("local address");
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            eprintln!("TCP_NODELAY: {err}");
        }
    });
    println!("listening on {local}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .expect("serve");
}
