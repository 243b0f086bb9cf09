//! End-to-end load generator for SSE hubs over loopback.
//!
//! Opens N `GET /events?topic=…` connections (a raw-TCP reader per
//! connection: HTTP/1.1 head, de-chunking, `data:` extraction, see
//! `ssehub_benches::wire`), publishes E events through `POST /publish`
//! (open loop at a fixed rate, or as fast as P keep-alive publishers can),
//! and reports:
//!
//! - connection setup rate;
//! - server RSS before and after the connections are open (idle bytes per
//!   connection), read from `/proc/<pid>/status`;
//! - delivered events/s, and publish→receive latency of every delivery
//!   (p50/p99/p99.9/max, an HDR histogram): the payload carries its publish
//!   time in nanoseconds since this process's start, and the readers live in
//!   the same process, so the clocks agree. At a fixed rate the stamp is the
//!   *scheduled* send time, so a publisher falling behind shows up as latency
//!   (no coordinated omission);
//! - fan-out completion time per event (publish → last subscriber);
//! - server CPU time per delivery (`/proc/<pid>/stat` utime + stime);
//! - with `--stalled-pct`, that share of the connections never read after
//!   the response head (with a 4 KiB receive buffer): the others' latency is
//!   reported alone, and the stalled ones are checked for having been closed
//!   by the server (EOF), next to the server's `/metrics` close counters.
//!
//! The server is given by `--addr`, or started by `--spawn "CMD … {addr} …"`
//! (a free loopback address replaces `{addr}`, the bearer token `{token}`;
//! the process is killed at the end), or, with neither, baseline B's server runs inside this process.
//!
//! `--smoke` is the CI check: 50 connections, 200 events, exit status 1 if a
//! single delivery is missing, duplicated or out of order.
//!
//! The last line on stdout is a JSON object with every figure
//! (`run-comparison.sh` builds its table from it).

// The report's `json!` literal has more fields than the default limit expands.
#![recursion_limit = "256"]

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::json;
use ssehub_benches::baseline_b::{router, AppState, BroadcastHub};
use ssehub_benches::transport::{Stream, Tls};
use ssehub_benches::{procstat, wire};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

const USAGE: &str = "\
usage: loadgen [--addr HOST:PORT | --spawn 'CMD ... {addr} ...'] [options]

  --addr HOST:PORT        server to load (default: start one, see --spawn)
  --spawn 'CMD'           start the server (whitespace-split, {addr} replaced
                          by a free loopback address, {token} by --token),
                          kill it at the end;
                          with neither --addr nor --spawn, baseline B runs
                          in this process
  --server-pid PID        server process for RSS/CPU figures (with --addr)
  --server-log PATH       where a spawned server's stdout/stderr go
  --token TOKEN           bearer token for POST /publish (default: bench-token)
  --topic NAME            topic (default: bench)
  --connections N         SSE connections (default: 1000)
  --events E              events to publish (default: 1000)
  --rate R                events per second, open loop; 0 = as fast as the
                          publishers go (default: 0)
  --publishers P          concurrent publishing connections (default: 4)
  --payload BYTES         padding after the stamp in each event (default: 32)
  --stalled-pct PCT       connections that never read (default: 0)
  --connect-concurrency C connections opened at once (default: 64)
  --threads T             tokio worker threads (default: 2)
  --drain-timeout SECS    wait for deliveries after the last publish (default: 20)
  --label TEXT            name of the scenario in the JSON line
  --smoke                 CI check: 50 connections, 200 events, strict
  --strict                exit 1 on any missing/duplicate/out-of-order delivery
  --tls-ca PEM            speak TLS, trusting the certificates in PEM
                          (the server's name is --tls-name, default localhost)
  --tls-name NAME         server name for SNI and verification";

#[derive(Clone, Debug)]
struct Config {
    addr: Option<String>,
    spawn: Option<String>,
    server_pid: Option<u32>,
    server_log: Option<String>,
    token: String,
    topic: String,
    connections: usize,
    events: u64,
    rate: f64,
    publishers: usize,
    payload: usize,
    stalled_pct: f64,
    connect_concurrency: usize,
    threads: usize,
    drain_timeout: Duration,
    label: String,
    strict: bool,
    tls_ca: Option<String>,
    tls_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: None,
            spawn: None,
            server_pid: None,
            server_log: None,
            token: "bench-token".to_owned(),
            topic: "bench".to_owned(),
            connections: 1000,
            events: 1000,
            rate: 0.0,
            publishers: 4,
            payload: 32,
            stalled_pct: 0.0,
            connect_concurrency: 64,
            threads: 2,
            drain_timeout: Duration::from_secs(20),
            label: "run".to_owned(),
            strict: false,
            tls_ca: None,
            tls_name: "localhost".to_owned(),
        }
    }
}

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config::default();
    let mut smoke = false;
    let mut explicit_size = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e| format!("{flag}: {e}"))
        }
        match flag.as_str() {
            "--addr" => cfg.addr = Some(value()?),
            "--spawn" => cfg.spawn = Some(value()?),
            "--server-pid" => cfg.server_pid = Some(num(&flag, value()?)?),
            "--server-log" => cfg.server_log = Some(value()?),
            "--token" => cfg.token = value()?,
            "--topic" => cfg.topic = value()?,
            "--connections" => {
                cfg.connections = num(&flag, value()?)?;
                explicit_size = true;
            }
            "--events" => {
                cfg.events = num(&flag, value()?)?;
                explicit_size = true;
            }
            "--rate" => cfg.rate = num(&flag, value()?)?,
            "--publishers" => cfg.publishers = num::<usize>(&flag, value()?)?.max(1),
            "--payload" => cfg.payload = num(&flag, value()?)?,
            "--stalled-pct" => cfg.stalled_pct = num(&flag, value()?)?,
            "--connect-concurrency" => {
                cfg.connect_concurrency = num::<usize>(&flag, value()?)?.max(1)
            }
            "--threads" => cfg.threads = num::<usize>(&flag, value()?)?.max(1),
            "--drain-timeout" => cfg.drain_timeout = Duration::from_secs_f64(num(&flag, value()?)?),
            "--label" => cfg.label = value()?,
            "--smoke" => smoke = true,
            "--strict" => cfg.strict = true,
            "--tls-ca" => cfg.tls_ca = Some(value()?),
            "--tls-name" => cfg.tls_name = value()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if smoke {
        cfg.strict = true;
        if !explicit_size {
            cfg.connections = 50;
            cfg.events = 200;
        }
        cfg.drain_timeout = cfg.drain_timeout.min(Duration::from_secs(10));
        if cfg.label == "run" {
            cfg.label = "smoke".to_owned();
        }
    }
    if cfg.connections == 0 || cfg.events == 0 {
        return Err("--connections and --events must be positive".to_owned());
    }
    Ok(cfg)
}

fn main() {
    let cfg = match parse_args() {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let fds = procstat::raise_fd_limit(1 << 20);
    if (fds as usize) < cfg.connections + 64 {
        eprintln!(
            "loadgen: the open-file limit is {fds}, too low for {} connections (raise `ulimit -n`)",
            cfg.connections
        );
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let code = runtime.block_on(run(cfg));
    runtime.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}

/// The server under load.
enum Server {
    External,
    Spawned(Child),
    InProcess(tokio::task::JoinHandle<()>),
}

impl Drop for Server {
    fn drop(&mut self) {
        match self {
            Self::External => {}
            Self::Spawned(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Self::InProcess(task) => task.abort(),
        }
    }
}

async fn start_server(cfg: &Config) -> Result<(Server, String, Option<u32>), String> {
    if let Some(addr) = &cfg.addr {
        return Ok((Server::External, addr.clone(), cfg.server_pid));
    }
    if let Some(template) = &cfg.spawn {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let words: Vec<String> = template
            .split_whitespace()
            .map(|w| {
                w.replace("{addr}", &addr)
                    .replace("{port}", &port.to_string())
                    .replace("{token}", &cfg.token)
            })
            .collect();
        let (program, args) = words.split_first().ok_or("--spawn is empty")?;
        let (stdout, stderr) = match &cfg.server_log {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
                let copy = file.try_clone().map_err(|e| format!("{path}: {e}"))?;
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawning {program}: {e}"))?;
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the server exited at start: {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("the server did not listen on {addr} within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        return Ok((Server::Spawned(child), addr, Some(pid)));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the in-process server: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?
        .to_string();
    let state = AppState {
        hub: Arc::new(BroadcastHub::new(1024)),
        token: Arc::from(cfg.token.as_str()),
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    // RSS and CPU of this very process would include the load generator.
    Ok((Server::InProcess(task), addr, None))
}

/// State shared by the readers and the publishers.
struct Shared {
    base: Instant,
    events: u64,
    publishers: u64,
    /// Per event: when it was (scheduled to be) published, since `base`.
    stamp: Vec<AtomicU64>,
    /// Per event: deliveries seen.
    count: Vec<AtomicU64>,
    /// Per event: the latest delivery, since `base`.
    last: Vec<AtomicU64>,
    total: AtomicU64,
    out_of_order: AtomicU64,
    duplicates: AtomicU64,
    reader_errors: AtomicU64,
    reader_eofs: AtomicU64,
    shards: Vec<Mutex<Histogram<u64>>>,
    stop: AtomicBool,
}

const SHARDS: usize = 32;
/// Latencies are recorded in nanoseconds up to 100 s.
const MAX_LATENCY_NANOS: u64 = 100_000_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, MAX_LATENCY_NANOS, 3).expect("histogram bounds are valid")
}

impl Shared {
    fn new(events: u64, publishers: u64) -> Self {
        let per_event = || (0..events).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Self {
            base: Instant::now(),
            events,
            publishers,
            stamp: per_event(),
            count: per_event(),
            last: per_event(),
            total: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            reader_errors: AtomicU64::new(0),
            reader_eofs: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
            stop: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// An SSE connection whose response head has been read.
struct OpenStream {
    stream: Stream,
    head: wire::ResponseHead,
    /// Body bytes read together with the head.
    rest: Vec<u8>,
}

async fn open_stream(
    addr: &str,
    topic: &str,
    stalled: bool,
    tls: Option<&Tls>,
) -> Result<OpenStream, String> {
    let sock_addr: std::net::SocketAddr = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("resolving {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))?;
    let socket = if sock_addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if stalled {
        // A small window so a client that never reads fills up quickly.
        socket
            .set_recv_buffer_size(4096)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    let tcp = socket
        .connect(sock_addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut stream = Stream::over(tcp, tls)
        .await
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    let request = format!(
        "GET /events?topic={topic} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send request: {e}"))?;
    let mut rest = Vec::with_capacity(1024);
    let head = read_head(&mut stream, &mut rest).await?;
    if head.status != 200 {
        return Err(format!("GET /events answered {}", head.status));
    }
    Ok(OpenStream { stream, head, rest })
}

/// Reads until `buf` holds a whole response head, parses it and removes it
/// from `buf`, leaving any body bytes read with it.
async fn read_head(stream: &mut Stream, buf: &mut Vec<u8>) -> Result<wire::ResponseHead, String> {
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(head) = wire::parse_response_head(buf).map_err(|e| e.to_string())? {
            break head;
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read response head: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response head".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    buf.drain(..head.len);
    Ok(head)
}

/// Reads one connection's events until EOF, an error or the stop flag.
async fn read_events(open: OpenStream, index: usize, shared: Arc<Shared>) -> u64 {
    let OpenStream {
        mut stream,
        head,
        rest,
    } = open;
    let mut dechunker = head.chunked.then(wire::Dechunker::new);
    let mut scanner = wire::SseScanner::new();
    let mut plain = Vec::with_capacity(16 << 10);
    let mut buf = vec![0u8; 16 << 10];
    let mut latencies: Vec<u64> = Vec::with_capacity(256);
    // Each publisher waits for its previous publish to be answered, so its
    // own events must arrive in its order (I7); across publishers the
    // server's order decides.
    let publishers = shared.publishers.max(1);
    let mut last_seq: Vec<Option<u64>> = vec![None; publishers as usize];
    let mut seen = vec![0u64; (shared.events as usize).div_ceil(64)];
    let mut received = 0u64;
    let mut pending = rest;
    loop {
        let input: &[u8] = if pending.is_empty() {
            match stream.read(&mut buf).await {
                Ok(0) => {
                    shared.reader_eofs.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(n) => &buf[..n],
                Err(_) => {
                    if !shared.stop.load(Ordering::Relaxed) {
                        shared.reader_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
            }
        } else {
            &pending
        };
        let now = shared.now();
        let body: &[u8] = match &mut dechunker {
            Some(d) => {
                plain.clear();
                if d.feed(input, &mut plain).is_err() {
                    shared.reader_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                &plain
            }
            None => input,
        };
        let mut out_of_order = 0;
        let mut duplicates = 0;
        scanner.feed(body, |data| {
            let Some((seq, _)) = wire::parse_stamp(data) else {
                return; // welcome, probe or other non-stamped events
            };
            let Some(stamp) = shared.stamp.get(seq as usize) else {
                return;
            };
            let lane = &mut last_seq[(seq % publishers) as usize];
            if lane.is_some_and(|last| seq <= last) {
                out_of_order += 1;
            }
            *lane = Some(seq);
            let (word, bit) = (seq as usize / 64, 1u64 << (seq % 64));
            if seen[word] & bit != 0 {
                duplicates += 1;
            }
            seen[word] |= bit;
            latencies.push(now.saturating_sub(stamp.load(Ordering::Relaxed)));
            shared.count[seq as usize].fetch_add(1, Ordering::Relaxed);
            shared.last[seq as usize].fetch_max(now, Ordering::Relaxed);
        });
        pending = Vec::new();
        if out_of_order > 0 {
            shared
                .out_of_order
                .fetch_add(out_of_order, Ordering::Relaxed);
        }
        if duplicates > 0 {
            shared.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        }
        if !latencies.is_empty() {
            let n = latencies.len() as u64;
            {
                let mut h = shared.shards[index % SHARDS].lock();
                for &l in &latencies {
                    h.saturating_record(l.max(1_000));
                }
            }
            latencies.clear();
            received += n;
            shared.total.fetch_add(n, Ordering::Relaxed);
        }
        if dechunker.as_ref().is_some_and(wire::Dechunker::is_done) {
            shared.reader_eofs.fetch_add(1, Ordering::Relaxed);
            break;
        }
    }
    received
}

/// A keep-alive `POST /publish` connection.
struct Publisher {
    stream: Stream,
    addr: String,
    token: String,
    topic: String,
    buf: Vec<u8>,
}

impl Publisher {
    async fn connect(
        addr: &str,
        token: &str,
        topic: &str,
        tls: Option<&Tls>,
    ) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("publisher connect {addr}: {e}"))?;
        let stream = Stream::over(tcp, tls)
            .await
            .map_err(|e| format!("publisher TLS handshake: {e}"))?;
        stream.set_nodelay().map_err(|e| e.to_string())?;
        Ok(Self {
            stream,
            addr: addr.to_owned(),
            token: token.to_owned(),
            topic: topic.to_owned(),
            buf: Vec::with_capacity(4096),
        })
    }

    /// Publishes `data`; returns the `delivered` count the server reports.
    async fn publish(&mut self, data: &str) -> Result<u64, String> {
        let body = serde_json::to_string(&json!({ "topic": self.topic, "data": data }))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "POST /publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            self.addr,
            self.token,
            body.len(),
            body
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("publish write: {e}"))?;
        let (status, response) = read_response(&mut self.stream, &mut self.buf).await?;
        if status != 200 {
            return Err(format!(
                "POST /publish answered {status}: {}",
                String::from_utf8_lossy(&response)
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&response)
            .map_err(|e| format!("publish response is not JSON: {e}"))?;
        value
            .get("delivered")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("publish response has no delivered count: {value}"))
    }
}

/// Reads one whole response (Content-Length or chunked) from a keep-alive
/// connection; `buf` keeps bytes of a following response.
async fn read_response(stream: &mut Stream, buf: &mut Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    let mut chunk = [0u8; 4096];
    let head = read_head(stream, buf).await?;
    let mut body = Vec::new();
    if head.chunked {
        let mut dechunker = wire::Dechunker::new();
        loop {
            // Feed what is buffered; whatever follows the last chunk would
            // be the next response, which a sequential publisher never has.
            dechunker
                .feed(&std::mem::take(buf), &mut body)
                .map_err(|e| e.to_string())?;
            if dechunker.is_done() {
                break;
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read response: {e}"))?;
            if n == 0 {
                return Err("connection closed mid-response".to_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    } else {
        let len = head.content_length.unwrap_or(0);
        while buf.len() < len {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read response: {e}"))?;
            if n == 0 {
                return Err("connection closed mid-response".to_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        body.extend(buf.drain(..len));
    }
    Ok((head.status, body))
}

/// `GET path` on a fresh connection; the body, or `None` on any failure.
async fn get_text(addr: &str, path: &str, tls: Option<&Tls>) -> Option<String> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let mut stream = Stream::over(tcp, tls).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream, &mut buf))
            .await
            .ok()?
            .ok()?;
    (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
}

struct PublishStats {
    published: u64,
    reported_delivered: u64,
    rtt: Histogram<u64>,
}

async fn run_publisher(
    cfg: Arc<Config>,
    addr: String,
    shared: Arc<Shared>,
    which: u64,
    start: Instant,
    tls: Option<Tls>,
) -> Result<PublishStats, String> {
    let mut publisher = Publisher::connect(&addr, &cfg.token, &cfg.topic, tls.as_ref()).await?;
    let mut stats = PublishStats {
        published: 0,
        reported_delivered: 0,
        rtt: histogram(),
    };
    let mut data = String::with_capacity(cfg.payload + 48);
    let mut seq = which;
    while seq < shared.events {
        let stamp = if cfg.rate > 0.0 {
            let target = start + Duration::from_secs_f64(seq as f64 / cfg.rate);
            tokio::time::sleep_until(target.into()).await;
            target.saturating_duration_since(shared.base).as_nanos() as u64
        } else {
            shared.now()
        };
        shared.stamp[seq as usize].store(stamp, Ordering::Relaxed);
        wire::write_stamp(&mut data, seq, stamp, cfg.payload);
        let sent = Instant::now();
        stats.reported_delivered += publisher.publish(&data).await?;
        stats
            .rtt
            .saturating_record((sent.elapsed().as_nanos() as u64).max(1_000));
        stats.published += 1;
        seq += cfg.publishers as u64;
    }
    Ok(stats)
}

fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1_000.0
}

async fn run(cfg: Config) -> i32 {
    match run_inner(cfg).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("loadgen: {message}");
            1
        }
    }
}

async fn run_inner(cfg: Config) -> Result<i32, String> {
    let cfg = Arc::new(cfg);
    let (server, addr, pid) = start_server(&cfg).await?;
    let tls = cfg
        .tls_ca
        .as_deref()
        .map(|ca| Tls::new(std::path::Path::new(ca), &cfg.tls_name))
        .transpose()?;
    let stalled_count = ((cfg.connections as f64) * cfg.stalled_pct / 100.0).round() as usize;
    let active_count = cfg.connections - stalled_count;
    eprintln!(
        "loadgen[{}]: {} connections ({} stalled) to {addr}, {} events at {}, payload {} B",
        cfg.label,
        cfg.connections,
        stalled_count,
        cfg.events,
        if cfg.rate > 0.0 {
            format!("{}/s", cfg.rate)
        } else {
            "full speed".to_owned()
        },
        cfg.payload
    );

    // Idle server footprint before any SSE connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = pid.and_then(procstat::rss_kib);

    // Connect. Stalled connections are spread evenly among the others.
    let stride = cfg.connections.checked_div(stalled_count).unwrap_or(0);
    let is_stalled = |i: usize| stride > 0 && i % stride == 0 && i / stride < stalled_count;
    let permits = Arc::new(Semaphore::new(cfg.connect_concurrency));
    let connect_start = Instant::now();
    let mut connecting = tokio::task::JoinSet::new();
    for i in 0..cfg.connections {
        let permits = Arc::clone(&permits);
        let addr = addr.clone();
        let topic = cfg.topic.clone();
        let stalled = is_stalled(i);
        let tls = tls.clone();
        connecting.spawn(async move {
            let _permit = permits.acquire_owned().await.ok();
            (
                i,
                stalled,
                open_stream(&addr, &topic, stalled, tls.as_ref()).await,
            )
        });
    }
    let mut opened: Vec<(usize, bool, OpenStream)> = Vec::with_capacity(cfg.connections);
    while let Some(joined) = connecting.join_next().await {
        let (i, stalled, result) = joined.map_err(|e| format!("connect task: {e}"))?;
        let open = result.map_err(|e| format!("connection {i}: {e}"))?;
        opened.push((i, stalled, open));
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let content_type_ok = opened.iter().all(|(_, _, o)| {
        o.head
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/event-stream"))
    });

    let shared = Arc::new(Shared::new(cfg.events, cfg.publishers as u64));
    let mut readers = tokio::task::JoinSet::new();
    let mut stalled_streams = Vec::with_capacity(stalled_count);
    for (i, stalled, open) in opened {
        if stalled {
            stalled_streams.push(open);
        } else {
            readers.spawn(read_events(open, i, Arc::clone(&shared)));
        }
    }

    // Wait until the server reports every connection subscribed (ssehub
    // activates after the response head is out).
    let mut probe = Publisher::connect(&addr, &cfg.token, &cfg.topic, tls.as_ref()).await?;
    let probe_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = probe.publish("probe").await?;
        if delivered >= cfg.connections as u64 {
            break;
        }
        if Instant::now() > probe_deadline {
            return Err(format!(
                "only {delivered} of {} connections subscribed after 30 s",
                cfg.connections
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(probe);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = pid.and_then(procstat::rss_kib);
    let cpu_before = pid.and_then(procstat::cpu_time);
    let self_cpu_before = procstat::cpu_time(std::process::id());

    // Publish.
    let publish_start = Instant::now();
    let start_nanos = shared.now();
    let mut publishers = tokio::task::JoinSet::new();
    for which in 0..cfg.publishers as u64 {
        publishers.spawn(run_publisher(
            Arc::clone(&cfg),
            addr.clone(),
            Arc::clone(&shared),
            which,
            publish_start,
            tls.clone(),
        ));
    }
    let mut published = 0;
    let mut reported_delivered = 0;
    let mut rtt = histogram();
    while let Some(joined) = publishers.join_next().await {
        let stats = joined.map_err(|e| format!("publisher task: {e}"))??;
        published += stats.published;
        reported_delivered += stats.reported_delivered;
        rtt.add(&stats.rtt).map_err(|e| e.to_string())?;
    }
    let publish_secs = publish_start.elapsed().as_secs_f64();

    // Wait for the deliveries.
    let expected = cfg.events * active_count as u64;
    let drain_deadline = Instant::now() + cfg.drain_timeout;
    while shared.total.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_after = pid.and_then(procstat::cpu_time);
    let self_cpu_after = procstat::cpu_time(std::process::id());
    let delivered = shared.total.load(Ordering::Relaxed);
    let last_delivery = shared
        .last
        .iter()
        .map(|l| l.load(Ordering::Relaxed))
        .max()
        .unwrap_or(start_nanos);
    let duration_secs = (last_delivery.saturating_sub(start_nanos)) as f64 / 1e9;

    // Fan-out completion per complete event.
    let mut fanout = histogram();
    let mut incomplete = 0u64;
    for seq in 0..cfg.events as usize {
        let count = shared.count[seq].load(Ordering::Relaxed);
        if count >= active_count as u64 {
            let done = shared.last[seq].load(Ordering::Relaxed);
            let stamp = shared.stamp[seq].load(Ordering::Relaxed);
            fanout.saturating_record(done.saturating_sub(stamp).max(1_000));
        } else {
            incomplete += 1;
        }
    }
    let mut latency = histogram();
    for shard in &shared.shards {
        latency.add(&*shard.lock()).map_err(|e| e.to_string())?;
    }

    // The server's close counters first: the check below ends with our
    // side closing the stalled sockets, which the server would count.
    let metrics = get_text(&addr, "/metrics", tls.as_ref()).await.map(|text| {
        text.lines()
            .filter(|l| !l.starts_with('#') && (l.contains("close") || l.contains("slow")))
            .collect::<Vec<_>>()
            .join("; ")
    });

    // Were the stalled connections closed by the server? Read what is left:
    // the end of the chunked body (hyper keeps the connection for the next
    // request) or EOF means closed. The sockets stay open until every check
    // is done.
    let mut stalled_closed = 0;
    let mut kept = Vec::with_capacity(stalled_streams.len());
    if !stalled_streams.is_empty() {
        let mut checks = tokio::task::JoinSet::new();
        for open in stalled_streams {
            checks.spawn(async move {
                let OpenStream {
                    mut stream,
                    head,
                    rest,
                } = open;
                let mut dechunker = head.chunked.then(wire::Dechunker::new);
                let mut sink = Vec::new();
                let mut buf = vec![0u8; 64 << 10];
                let read_all = async {
                    let mut input = rest;
                    loop {
                        if let Some(d) = &mut dechunker {
                            sink.clear();
                            if d.feed(&input, &mut sink).is_err() || d.is_done() {
                                return true;
                            }
                        }
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return true,
                            Ok(n) => input = buf[..n].to_vec(),
                        }
                    }
                };
                let closed = tokio::time::timeout(Duration::from_secs(3), read_all)
                    .await
                    .unwrap_or(false);
                (closed, stream)
            });
        }
        while let Some(joined) = checks.join_next().await {
            if let Ok((closed, stream)) = joined {
                stalled_closed += usize::from(closed);
                kept.push(stream);
            }
        }
    }
    drop(kept);

    shared.stop.store(true, Ordering::Relaxed);
    readers.abort_all();
    drop(server);

    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    let missing = (expected + duplicates).saturating_sub(delivered);
    let out_of_order = shared.out_of_order.load(Ordering::Relaxed);
    let reader_errors = shared.reader_errors.load(Ordering::Relaxed);
    let reader_eofs = shared.reader_eofs.load(Ordering::Relaxed);
    let rss_per_conn = match (rss_before, rss_idle) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 * 1024.0 / cfg.connections as f64),
        _ => None,
    };
    let cpu_secs = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b).as_secs_f64()),
        _ => None,
    };
    let self_cpu_secs = match (self_cpu_before, self_cpu_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b).as_secs_f64()),
        _ => None,
    };
    let deliveries_per_sec = if duration_secs > 0.0 {
        delivered as f64 / duration_secs
    } else {
        0.0
    };
    let report = json!({
        "label": cfg.label,
        "tls": tls.is_some(),
        "addr": addr,
        "connections": cfg.connections,
        "stalled": stalled_count,
        "events": cfg.events,
        "rate": cfg.rate,
        "publishers": cfg.publishers,
        "payload": cfg.payload,
        "connect_secs": connect_secs,
        "connects_per_sec": cfg.connections as f64 / connect_secs,
        "content_type_ok": content_type_ok,
        "rss_before_kib": rss_before,
        "rss_idle_kib": rss_idle,
        "rss_per_conn_bytes": rss_per_conn,
        "published": published,
        "publish_secs": publish_secs,
        "reported_delivered": reported_delivered,
        "expected": expected,
        "delivered": delivered,
        "missing": missing,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "reader_errors": reader_errors,
        "reader_eofs": reader_eofs,
        "duration_secs": duration_secs,
        "deliveries_per_sec": deliveries_per_sec,
        "latency_p50_us": micros(latency.value_at_quantile(0.5)),
        "latency_p99_us": micros(latency.value_at_quantile(0.99)),
        "latency_p999_us": micros(latency.value_at_quantile(0.999)),
        "latency_max_us": micros(latency.max()),
        "fanout_p50_us": micros(fanout.value_at_quantile(0.5)),
        "fanout_p99_us": micros(fanout.value_at_quantile(0.99)),
        "fanout_max_us": micros(fanout.max()),
        "incomplete_events": incomplete,
        "publish_rtt_p50_us": micros(rtt.value_at_quantile(0.5)),
        "publish_rtt_p99_us": micros(rtt.value_at_quantile(0.99)),
        "server_cpu_secs": cpu_secs,
        "server_cpu_ns_per_delivery": cpu_secs.map(|c| if delivered > 0 { c * 1e9 / delivered as f64 } else { 0.0 }),
        "loadgen_cpu_secs": self_cpu_secs,
        "stalled_closed": stalled_closed,
        "server_close_metrics": metrics,
    });

    eprintln!(
        "loadgen[{}]: connected {} in {:.2} s ({:.0}/s); RSS {:?} → {:?} KiB ({} B/conn)",
        cfg.label,
        cfg.connections,
        connect_secs,
        cfg.connections as f64 / connect_secs,
        rss_before,
        rss_idle,
        rss_per_conn.map_or("?".to_owned(), |b| format!("{b:.0}")),
    );
    eprintln!(
        "loadgen[{}]: delivered {delivered}/{expected} in {duration_secs:.3} s = {deliveries_per_sec:.0}/s; latency p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs max {:.0} µs; fan-out p50 {:.0} µs max {:.0} µs; server CPU {:?} s ({} ns/delivery)",
        cfg.label,
        micros(latency.value_at_quantile(0.5)),
        micros(latency.value_at_quantile(0.99)),
        micros(latency.value_at_quantile(0.999)),
        micros(latency.max()),
        micros(fanout.value_at_quantile(0.5)),
        micros(fanout.max()),
        cpu_secs,
        cpu_secs.map_or("?".to_owned(), |c| format!("{:.0}", c * 1e9 / delivered.max(1) as f64)),
    );
    if stalled_count > 0 {
        eprintln!(
            "loadgen[{}]: {stalled_closed}/{stalled_count} stalled connections were closed by the server; metrics: {}",
            cfg.label,
            report["server_close_metrics"]
        );
    }
    println!("{report}");

    let faulty = missing > 0 || duplicates > 0 || out_of_order > 0 || reader_errors > 0;
    if faulty {
        eprintln!(
            "loadgen[{}]: FAILED: {missing} missing, {duplicates} extra, {out_of_order} out of order, {reader_errors} reader errors, {reader_eofs} streams ended",
            cfg.label
        );
    }
    Ok(if cfg.strict && faulty { 1 } else { 0 })
}
