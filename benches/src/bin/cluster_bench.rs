//! `cluster_bench`: the cost of the Redis backplane, 2 nodes + Redis
//! against 1 embedded node, measured in the same run (issue 13).
//!
//! Starts its own `redis-server` (no persistence) on a free port and the
//! hub servers in this process, then measures:
//!
//! 1. end to end over loopback: `--connections` SSE streams (split over
//!    the nodes), `--events` published through `POST /publish` by
//!    `--publishers` keep-alive connections (alternating nodes), as fast
//!    as they go: deliveries/s and publish→receive latency p50/p99 (the
//!    payload carries its send time; at full speed this is drain time);
//! 2. the Lua publish ceiling: publishes/s through the publish script with
//!    `--publishers` concurrent callers, against `Hub::publish` on an
//!    embedded hub (no subscribers);
//! 3. catch-up after a PUB/SUB drop: `--catchup-subscribers` in-process
//!    clients on one node, `CLIENT KILL TYPE pubsub`, then
//!    `--catchup-events` published while the node reconnects: time until
//!    every client has them all, against the same events delivered live.
//!
//! `--smoke`: small sizes, exit 1 if any delivery is missing.
//! The last stdout line is a JSON object with every figure.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::json;
use ssehub_benches::wire::{parse_response_head, parse_stamp, write_stamp, Dechunker, SseScanner};
use ssehub_core::codec::Event;
use ssehub_core::{Hub, HubConfig, ReserveOptions, Sequencing};
use ssehub_tokio::cluster::{ClusterConfig, Keys, LinkState, Retention, Store};
use ssehub_tokio::server::{Server, ServerConfig};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "bench-token-0123";

struct Opts {
    connections: usize,
    events: u64,
    publishers: usize,
    catchup_subscribers: usize,
    catchup_events: u64,
    ceiling_publishes: u64,
    smoke: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        connections: 1000,
        events: 2000,
        publishers: 4,
        catchup_subscribers: 10_000,
        catchup_events: 100,
        ceiling_publishes: 20_000,
        smoke: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut num = || -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--connections" => opts.connections = num()? as usize,
            "--events" => opts.events = num()?,
            "--publishers" => opts.publishers = (num()? as usize).max(1),
            "--catchup-subscribers" => opts.catchup_subscribers = num()? as usize,
            "--catchup-events" => opts.catchup_events = num()?,
            "--ceiling-publishes" => opts.ceiling_publishes = num()?,
            "--smoke" => {
                opts.smoke = true;
                opts.connections = 20;
                opts.events = 100;
                opts.catchup_subscribers = 100;
                opts.catchup_events = 20;
                opts.ceiling_publishes = 500;
            }
            _ => {
                return Err(format!(
                    "unknown flag {flag}\nusage: cluster_bench [--smoke] [--connections N] [--events E] \
                     [--publishers P] [--catchup-subscribers N] [--catchup-events E] [--ceiling-publishes K]"
                ))
            }
        }
    }
    Ok(opts)
}

/// A `redis-server` on a free port, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start".to_owned());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self { port, child })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_config(cluster: Option<ClusterConfig>) -> ServerConfig {
    let mut config = ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: TOKEN.to_owned(),
        ..ServerConfig::default()
    };
    config.hub.max_clients_per_peer = 1_000_000;
    config.hub.queue_max_frames = 1 << 16;
    config.hub.queue_max_bytes = 64 << 20;
    if cluster.is_some() {
        config.hub.sequencing = Sequencing::External;
    }
    config.cluster = cluster;
    config
}

async fn wait_up(servers: &[Server]) {
    for server in servers {
        if let Some(backplane) = server.backplane() {
            while backplane.state() != LinkState::Up {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// One SSE stream: counts deliveries and records their latency.
async fn reader(
    addr: SocketAddr,
    start: Instant,
    delivered: Arc<AtomicU64>,
    latency: Arc<Mutex<Histogram<u64>>>,
    ready: Arc<AtomicU64>,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(
            b"GET /events?topic=bench HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut dechunk = Dechunker::new();
    let mut scanner = SseScanner::new();
    let mut body = Vec::new();
    let mut local = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut in_body = false;
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if !in_body {
            head.extend_from_slice(chunk);
            let Some(parsed) = parse_response_head(&head).map_err(|e| format!("{e:?}"))? else {
                continue;
            };
            in_body = true;
            ready.fetch_add(1, Ordering::Relaxed);
            chunk = &head[parsed.len..];
            let rest = chunk.to_vec();
            body.clear();
            dechunk
                .feed(&rest, &mut body)
                .map_err(|e| format!("{e:?}"))?;
        } else {
            body.clear();
            dechunk
                .feed(chunk, &mut body)
                .map_err(|e| format!("{e:?}"))?;
        }
        let mut count = 0;
        scanner.feed(&body, |data| {
            if let Some((_, sent)) = parse_stamp(data) {
                let now = start.elapsed().as_nanos() as u64;
                let _ = local.record(now.saturating_sub(sent).max(1));
                count += 1;
            }
        });
        if count > 0 {
            delivered.fetch_add(count, Ordering::Relaxed);
            latency.lock().add(&local).map_err(|e| format!("{e:?}"))?;
            local.reset();
        }
    }
    Ok(())
}

/// A keep-alive publisher: `count` events through `POST /publish`.
async fn publisher(addr: SocketAddr, start: Instant, first: u64, count: u64) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut data = String::new();
    let mut buf = vec![0u8; 4096];
    for seq in first..first + count {
        write_stamp(&mut data, seq, start.elapsed().as_nanos() as u64, 32);
        let body = format!(r#"{{"topic":"bench","data":"{data}"}}"#);
        let request = format!(
            "POST /publish HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        // Read the whole response (a short JSON with Content-Length).
        let mut got = Vec::new();
        loop {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("publisher connection closed".to_owned());
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = ssehub_benches::wire::find(&got, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    return Err(format!("publish answered {head}"));
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Scenario 1 on `nodes`; returns (deliveries/s, p50 ms, p99 ms, missing).
async fn end_to_end(nodes: &[Server], opts: &Opts) -> Result<(f64, f64, f64, u64), String> {
    let start = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(
        Histogram::<u64>::new(3).map_err(|e| e.to_string())?,
    ));
    let mut readers = Vec::new();
    for i in 0..opts.connections {
        let addr = nodes[i % nodes.len()].local_addr();
        readers.push(tokio::spawn(reader(
            addr,
            start,
            Arc::clone(&delivered),
            Arc::clone(&latency),
            Arc::clone(&ready),
        )));
    }
    while ready.load(Ordering::Relaxed) < opts.connections as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = opts.events * opts.connections as u64;
    let t0 = Instant::now();
    let per = opts.events / opts.publishers as u64;
    let mut publishers = Vec::new();
    for p in 0..opts.publishers as u64 {
        let count = if p + 1 == opts.publishers as u64 {
            opts.events - per * p
        } else {
            per
        };
        let addr = nodes[p as usize % nodes.len()].local_addr();
        publishers.push(tokio::spawn(publisher(addr, start, p * per, count)));
    }
    for p in publishers {
        p.await.map_err(|e| e.to_string())??;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let got = delivered.load(Ordering::Relaxed);
    for r in readers {
        r.abort();
    }
    let h = latency.lock();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    Ok((
        got as f64 / elapsed,
        ms(0.5),
        ms(0.99),
        expected.saturating_sub(got),
    ))
}

/// Scenario 2: (script publishes/s, embedded publishes/s).
async fn ceiling(redis: &Redis, opts: &Opts) -> Result<(f64, f64), String> {
    let store = Store::new(
        redis::Client::open(redis.url()).map_err(|e| e.to_string())?,
        Keys::new("ceiling"),
        Retention {
            max_len: 1024,
            age: Duration::from_secs(300),
            meta_ttl: Duration::from_secs(3600),
        },
        Duration::from_secs(5),
    );
    store
        .publish("warm", b"data: x\n\n", 1)
        .await
        .map_err(|e| e.to_string())?;
    let body = b"data: 0123456789012345678901234567890123456789\n\n";
    let t0 = Instant::now();
    let per = opts.ceiling_publishes / opts.publishers as u64;
    let mut tasks = Vec::new();
    for p in 0..opts.publishers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let topic = format!("t{}", (p as u64 * per + i) % 64);
                store
                    .publish(&topic, body, 1)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let script = (per * opts.publishers as u64) as f64 / t0.elapsed().as_secs_f64();
    let hub = Hub::new(HubConfig::default(), Instant::now());
    let event = Event::new("0123456789012345678901234567890123456789");
    let t0 = Instant::now();
    for i in 0..opts.ceiling_publishes {
        hub.publish(&format!("t{}", i % 64), &event)
            .map_err(|e| e.to_string())?;
    }
    let local = opts.ceiling_publishes as f64 / t0.elapsed().as_secs_f64();
    Ok((script, local))
}

/// Scenario 3: (live ms, after a PUB/SUB kill ms) for every client to have
/// every event.
async fn catch_up(redis: &Redis, opts: &Opts) -> Result<(f64, f64), String> {
    let mut cluster = ClusterConfig::new(redis.url())
        .prefix("catchup")
        .node_name("n");
    cluster.retention.max_len = (opts.catchup_events as usize * 4).max(1024);
    let mut config = server_config(Some(cluster));
    config.hub.max_clients = opts.catchup_subscribers + 10;
    let node = Server::start(config).await.map_err(|e| e.to_string())?;
    wait_up(std::slice::from_ref(&node)).await;
    let hub = node.hub().clone();
    let mut streams = Vec::new();
    for _ in 0..opts.catchup_subscribers {
        let reservation = hub
            .reserve(ReserveOptions::new().topic("c"))
            .map_err(|e| e.to_string())?;
        let stream = reservation.stream();
        reservation.activate().map_err(|e| e.to_string())?;
        streams.push(stream);
    }
    let store = node.backplane().ok_or("no backplane")?.store().clone();
    let mut kill = redis::Client::open(redis.url())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut figures = Vec::new();
    for killed in [false, true] {
        let t0 = Instant::now();
        if killed {
            let _: redis::Value = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut kill)
                .await
                .map_err(|e| e.to_string())?;
        }
        for i in 0..opts.catchup_events {
            store
                .publish("c", format!("data: {i}\n\n").as_bytes(), 1)
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut left = opts.catchup_events * opts.catchup_subscribers as u64;
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while left > 0 {
            for stream in &streams {
                out.clear();
                let _ = stream.drain(&mut out, usize::MAX);
                left = left
                    .saturating_sub(out.iter().filter(|f| f.starts_with(b"id:")).count() as u64);
            }
            if Instant::now() > deadline {
                return Err(format!("catch-up: {left} deliveries missing"));
            }
            tokio::task::yield_now().await;
        }
        figures.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok((figures[0], figures[1]))
}

fn main() {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(&opts)) {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(e) => {
            eprintln!("cluster_bench: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(opts: &Opts) -> Result<bool, String> {
    let redis = Redis::start()?;
    // 1 node, embedded.
    let single = Server::start(server_config(None))
        .await
        .map_err(|e| e.to_string())?;
    let one = end_to_end(std::slice::from_ref(&single), opts).await?;
    drop(single);
    // 2 nodes + Redis.
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let cluster = ClusterConfig::new(redis.url())
            .prefix("e2e")
            .node_name(name);
        nodes.push(
            Server::start(server_config(Some(cluster)))
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    wait_up(&nodes).await;
    let two = end_to_end(&nodes, opts).await?;
    drop(nodes);
    let (script, local) = ceiling(&redis, opts).await?;
    let (live_ms, caught_up_ms) = catch_up(&redis, opts).await?;
    println!(
        "end to end, {} connections x {} events, {} publishers:",
        opts.connections, opts.events, opts.publishers
    );
    println!(
        "  1 node:            {:>10.0} deliveries/s  p50 {:>8.2} ms  p99 {:>8.2} ms  missing {}",
        one.0, one.1, one.2, one.3
    );
    println!(
        "  2 nodes + Redis:   {:>10.0} deliveries/s  p50 {:>8.2} ms  p99 {:>8.2} ms  missing {}",
        two.0, two.1, two.2, two.3
    );
    println!(
        "  ratio (cluster/1 node): deliveries/s {:.2}x, p50 {:.2}x, p99 {:.2}x",
        two.0 / one.0,
        two.1 / one.1,
        two.2 / one.2
    );
    println!("publish ceiling: Lua script {script:.0}/s ({} callers), embedded Hub::publish {local:.0}/s, ratio {:.3}", opts.publishers, script / local);
    println!(
        "catch-up, {} subscribers x {} events: live {live_ms:.1} ms, after CLIENT KILL pubsub {caught_up_ms:.1} ms ({:.2}x)",
        opts.catchup_subscribers, opts.catchup_events, caught_up_ms / live_ms
    );
    println!(
        "{}",
        json!({
            "connections": opts.connections, "events": opts.events, "publishers": opts.publishers,
            "single": {"deliveries_per_s": one.0, "p50_ms": one.1, "p99_ms": one.2, "missing": one.3},
            "cluster": {"deliveries_per_s": two.0, "p50_ms": two.1, "p99_ms": two.2, "missing": two.3},
            "lua_publishes_per_s": script, "embedded_publishes_per_s": local,
            "catchup": {"subscribers": opts.catchup_subscribers, "events": opts.catchup_events, "live_ms": live_ms, "after_kill_ms": caught_up_ms},
        })
    );
    Ok(one.3 == 0 && two.3 == 0)
}
