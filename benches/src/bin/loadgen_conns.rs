//! Many idle SSE connections against one server, then single events to all
//! of them: what an idle connection costs, and how long one event takes to
//! reach every subscriber.
//!
//! The server runs inside this process (its own tokio runtime, `--threads`
//! workers), so a counting global allocator sees its heap: live bytes and
//! live allocations per idle connection, next to `VmRSS` per connection.
//! The connections are held by `--workers` child processes (this binary
//! with `--worker`), each under its own open-file limit, and each
//! connection binds its own source address in 127.0.0.0/8 before
//! connecting, so ephemeral ports do not run out.
//!
//! Figures, on stdout as a table and as one JSON line at the end:
//!
//! - server RSS and heap (bytes, allocations) before and after the
//!   connections are open, per connection;
//! - time to open them all (response head received);
//! - `--events` single events, `--interval-ms` apart, published with
//!   `POST /publish`: publish → receive time of every delivery (p50, p99,
//!   max) and per event the time to the last subscriber (median, max). The
//!   payload carries the publish time (`CLOCK_MONOTONIC`, shared by all
//!   processes of the machine);
//! - server CPU per delivery (this process's CPU over the publish phase,
//!   the publisher's few requests included) and the load generator's CPU
//!   (the workers') over the same phase.
//!
//! ```text
//! loadgen_conns --server ssehub|ssehub-hyper|b --connections 10000 [--workers 4]
//!               [--events 20] [--interval-ms 250] [--threads 2] [--payload 32]
//! ```
//!
//! Not run in CI: it needs the machine to itself for minutes.

use hdrhistogram::Histogram;
use ssehub_benches::{procstat, wire};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Counts live heap bytes and allocations of the whole process.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Live allocations by size, in 16-byte classes up to 64 KiB (the last
/// class holds everything larger): where an idle connection's bytes are.
static BY_SIZE: [AtomicUsize; SIZE_CLASSES] = [const { AtomicUsize::new(0) }; SIZE_CLASSES];
const SIZE_CLASSES: usize = 4097;

fn class(size: usize) -> usize {
    size.div_ceil(16).min(SIZE_CLASSES - 1)
}

fn counted(size: usize, added: bool) {
    let slot = &BY_SIZE[class(size)];
    if added {
        LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
        LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        slot.fetch_add(1, Ordering::Relaxed);
    } else {
        LIVE_BYTES.fetch_sub(size, Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        slot.fetch_sub(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            counted(layout.size(), true);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        counted(layout.size(), false);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            counted(layout.size(), true);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `realloc`'s contract, forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            counted(layout.size(), false);
            counted(new_size, true);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const USAGE: &str = "\
usage: loadgen_conns --server ssehub|ssehub-hyper|b [options]
  --connections N   idle SSE connections (default 1000)
  --workers W       client processes holding them (default 4)
  --events E        single events published, one at a time (default 20)
  --interval-ms MS  between events (default 250)
  --threads T       server runtime worker threads (default 2)
  --payload BYTES   padding after the stamp (default 32)
  --settle-ms MS    wait after the last connection opened before sampling RSS (default 2000)
  --label TEXT      name in the JSON line";

const TOKEN: &str = "bench-token";
const TOPIC: &str = "bench";

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--worker") {
        worker_main(&args[1..])
    } else {
        coordinator_main(&args)
    };
    if let Err(message) = result {
        eprintln!("loadgen_conns: {message}");
        std::process::exit(2);
    }
}

/// `--flag value` pairs.
fn flags(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        out.push((flag.clone(), value.clone()));
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value:?}"))
}

// ---------------------------------------------------------------- worker

/// A worker: opens `--conns` streams from source addresses starting at
/// index `--first`, prints `ready <opened> <failed>`, then
/// `complete` once every stream has `--events` events; on `report` from
/// stdin prints `ev <seq> <latency µs>…` per event and exits.
fn worker_main(args: &[String]) -> Result<(), String> {
    let (mut addr, mut conns, mut first, mut events) = (String::new(), 0usize, 0usize, 0u64);
    for (flag, value) in flags(args)? {
        match flag.as_str() {
            "--addr" => addr = value,
            "--conns" => conns = num(&flag, &value)?,
            "--first" => first = num(&flag, &value)?,
            "--events" => events = num(&flag, &value)?,
            _ => return Err(format!("worker: unknown flag {flag}")),
        }
    }
    procstat::raise_fd_limit(1 << 20);
    let addr: SocketAddr = addr.parse().map_err(|e| format!("--addr: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(worker(addr, conns, first, events))
}

struct WorkerShared {
    /// Per event seq: the latencies (µs) of its deliveries.
    latencies: Mutex<Vec<Vec<u32>>>,
    complete: AtomicUsize,
    events: u64,
}

async fn worker(addr: SocketAddr, conns: usize, first: usize, events: u64) -> Result<(), String> {
    let shared = Arc::new(WorkerShared {
        latencies: Mutex::new(vec![Vec::new(); usize::try_from(events).unwrap_or(0)]),
        complete: AtomicUsize::new(0),
        events,
    });
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for i in 0..conns {
        let (gate, opened_tx, done_tx, shared) = (
            Arc::clone(&gate),
            opened_tx.clone(),
            done_tx.clone(),
            Arc::clone(&shared),
        );
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let stream = open(addr, first + i).await;
            drop(permit);
            match stream {
                Ok((stream, rest, chunked)) => {
                    let _ = opened_tx.send(true);
                    read_events(stream, rest, chunked, &shared, &done_tx).await;
                }
                Err(error) => {
                    eprintln!("worker: connection {}: {error}", first + i);
                    let _ = opened_tx.send(false);
                }
            }
        });
    }
    drop((opened_tx, done_tx));
    let (mut opened, mut failed) = (0usize, 0usize);
    while opened + failed < conns {
        match opened_rx.recv().await {
            Some(true) => opened += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    println!("ready {opened} {failed}");
    let _ = std::io::stdout().flush();
    // Commands from the coordinator, read by a thread (blocking stdin).
    let (command_tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if command_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut announced = false;
    loop {
        tokio::select! {
            done = done_rx.recv(), if !announced => {
                if done.is_some() && shared.complete.load(Ordering::Relaxed) >= opened {
                    println!("complete");
                    let _ = std::io::stdout().flush();
                    announced = true;
                }
            }
            line = commands.recv() => match line.as_deref() {
                Some("report") => break,
                Some(_) => {}
                None => return Ok(()),
            },
        }
    }
    let latencies = shared.latencies.lock().map_err(|e| e.to_string())?;
    let mut out = String::new();
    for (seq, values) in latencies.iter().enumerate() {
        use std::fmt::Write as _;
        out.clear();
        let _ = write!(out, "ev {seq}");
        for v in values {
            let _ = write!(out, " {v}");
        }
        println!("{out}");
    }
    println!("end");
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The `index`-th source address: 127.1.0.1 onwards.
fn source(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x7f01_0001u32 + u32::try_from(index).unwrap_or(0))
}

/// Opens one stream from its own source address; the stream, the bytes
/// read past the head, and whether the body is chunked.
async fn open(addr: SocketAddr, index: usize) -> Result<(TcpStream, Vec<u8>, bool), String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((source(index), 0)))
        .map_err(|e| format!("bind {}: {e}", source(index)))?;
    let mut stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET /events?topic={TOPIC} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head = loop {
        if let Some(head) = wire::parse_response_head(&buf).map_err(|e| e.to_string())? {
            break head;
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head.status != 200 {
        return Err(format!("answered {}", head.status));
    }
    buf.drain(..head.len);
    Ok((stream, buf, head.chunked))
}

/// Reads one stream's events, recording each stamped one's latency, until
/// `events` arrived (then keeps the connection open until EOF).
async fn read_events(
    mut stream: TcpStream,
    rest: Vec<u8>,
    chunked: bool,
    shared: &WorkerShared,
    done: &tokio::sync::mpsc::UnboundedSender<()>,
) {
    let mut dechunker = chunked.then(wire::Dechunker::new);
    let mut scanner = wire::SseScanner::new();
    let mut plain = Vec::new();
    let mut buf = [0u8; 2048];
    let mut received = 0u64;
    let mut pending = rest;
    loop {
        let input: &[u8] = if pending.is_empty() {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => &buf[..n],
            }
        } else {
            &pending
        };
        let now = mono_ns();
        plain.clear();
        match dechunker.as_mut() {
            Some(d) => {
                if d.feed(input, &mut plain).is_err() {
                    return;
                }
            }
            None => plain.extend_from_slice(input),
        }
        pending.clear();
        let mut got = 0u64;
        scanner.feed(&plain, |data| {
            if let Some((seq, stamp)) = wire::parse_stamp(data) {
                let micros = u32::try_from(now.saturating_sub(stamp) / 1000).unwrap_or(u32::MAX);
                if let Ok(mut latencies) = shared.latencies.lock() {
                    if let Some(slot) =
                        latencies.get_mut(usize::try_from(seq).unwrap_or(usize::MAX))
                    {
                        slot.push(micros);
                        got += 1;
                    }
                }
            }
        });
        let before = received;
        received += got;
        if before < shared.events && received >= shared.events {
            shared.complete.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(());
            return keep_open(stream).await;
        }
    }
}

/// Holds a stream open, discarding what comes, until EOF.
async fn keep_open(mut stream: TcpStream) {
    let mut buf = [0u8; 512];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

// ----------------------------------------------------------- coordinator

struct Config {
    server: String,
    connections: usize,
    workers: usize,
    events: u64,
    interval: Duration,
    threads: usize,
    payload: usize,
    settle: Duration,
    label: String,
}

fn coordinator_main(args: &[String]) -> Result<(), String> {
    let mut cfg = Config {
        server: String::new(),
        connections: 1000,
        workers: 4,
        events: 20,
        interval: Duration::from_millis(250),
        threads: 2,
        payload: 32,
        settle: Duration::from_millis(2000),
        label: String::new(),
    };
    for (flag, value) in flags(args)? {
        match flag.as_str() {
            "--server" => cfg.server = value,
            "--connections" => cfg.connections = num(&flag, &value)?,
            "--workers" => cfg.workers = num::<usize>(&flag, &value)?.max(1),
            "--events" => cfg.events = num(&flag, &value)?,
            "--interval-ms" => cfg.interval = Duration::from_millis(num(&flag, &value)?),
            "--threads" => cfg.threads = num::<usize>(&flag, &value)?.max(1),
            "--payload" => cfg.payload = num(&flag, &value)?,
            "--settle-ms" => cfg.settle = Duration::from_millis(num(&flag, &value)?),
            "--label" => cfg.label = value,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if !matches!(cfg.server.as_str(), "ssehub" | "ssehub-hyper" | "b") {
        return Err(format!(
            "--server must be ssehub, ssehub-hyper or b\n{USAGE}"
        ));
    }
    if cfg.label.is_empty() {
        cfg.label = format!("{} x{}", cfg.server, cfg.connections);
    }
    let limit = procstat::raise_fd_limit(1 << 20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(coordinate(cfg, limit))
}

/// Starts the server under test on a free loopback port; returns its
/// address and whatever keeps it alive.
async fn start_server(server: &str) -> Result<(SocketAddr, Box<dyn std::any::Any + Send>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if server == "b" {
        use axum::serve::ListenerExt;
        use ssehub_benches::baseline_b::{router, AppState, BroadcastHub};
        let state = AppState {
            hub: Arc::new(BroadcastHub::new(1024)),
            token: Arc::from(TOKEN),
        };
        // TCP_NODELAY as ssehub sets it (the fairness fix of issue 15).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move { axum::serve(listener, router(state)).await });
        return Ok((addr, Box::new(AbortOnDrop(task))));
    }
    let config = ssehub_tokio::server::ServerConfig {
        addr,
        token: TOKEN.to_owned(),
        http1_fast_path: server == "ssehub",
        ..ssehub_tokio::server::ServerConfig::default()
    };
    let server = ssehub_tokio::server::Server::with_listener(listener, config);
    Ok((addr, Box::new(server)))
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `line` to a worker's stdin.
fn tell(child: &mut Child, line: &str) {
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = writeln!(stdin, "{line}");
        let _ = stdin.flush();
    }
}

/// This process's user and system CPU time (`/proc/self/stat`, in clock
/// ticks of 10 ms).
fn user_sys() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || {
        Duration::from_millis(
            fields
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
                * 10,
        )
    };
    let user = next();
    (user, next())
}

fn sizes() -> Vec<usize> {
    BY_SIZE.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

fn heap() -> (usize, usize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_ALLOCS.load(Ordering::Relaxed),
    )
}

async fn coordinate(cfg: Config, fd_limit: u64) -> Result<(), String> {
    let (addr, _server) = start_server(&cfg.server).await?;
    let me = std::process::id();
    let mut publisher = Publisher::connect(addr).await?;
    // Warm the publish path (and the topic) before the baseline sample.
    publisher.publish("warm-up").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = procstat::rss_kib(me).unwrap_or(0);
    let heap0 = heap();
    let sizes0 = sizes();

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut children = Vec::new();
    let mut lines = Vec::new();
    let per = cfg.connections.div_ceil(cfg.workers);
    let mut first = 0;
    while first < cfg.connections {
        let n = per.min(cfg.connections - first);
        let mut child = Command::new(&exe)
            .args(["--worker", "--addr", &addr.to_string()])
            .args(["--conns", &n.to_string(), "--first", &first.to_string()])
            .args(["--events", &cfg.events.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn worker: {e}"))?;
        let stdout = child.stdout.take().ok_or("worker stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        children.push(child);
        lines.push(rx);
        first += n;
    }
    let next_line = |rx: &std::sync::mpsc::Receiver<String>, within: Duration| {
        rx.recv_timeout(within).map_err(|e| format!("worker: {e}"))
    };
    let (mut opened, mut failed) = (0usize, 0usize);
    for rx in &lines {
        let line = tokio::task::block_in_place(|| next_line(rx, Duration::from_secs(600)))?;
        let mut words = line.split_whitespace().skip(1);
        opened += words.next().and_then(|w| w.parse().ok()).unwrap_or(0usize);
        failed += words.next().and_then(|w| w.parse().ok()).unwrap_or(0usize);
    }
    let open_time = started.elapsed();
    tokio::time::sleep(cfg.settle).await;
    let rss1 = procstat::rss_kib(me).unwrap_or(0);
    let heap1 = heap();
    let sizes1 = sizes();
    let per_conn = |a: usize, b: usize| (b.saturating_sub(a)) as f64 / opened.max(1) as f64;
    let rss_per_conn = per_conn(rss0 as usize * 1024, rss1 as usize * 1024);
    let heap_per_conn = per_conn(heap0.0, heap1.0);
    let allocs_per_conn = per_conn(heap0.1, heap1.1);

    let worker_cpu = |children: &[Child]| -> Duration {
        children
            .iter()
            .filter_map(|c| procstat::cpu_time(c.id()))
            .sum()
    };
    // Live allocations added per connection, by size class.
    let mut by_size = Vec::new();
    for (i, (a, b)) in sizes0.iter().zip(&sizes1).enumerate() {
        let per = b.saturating_sub(*a) as f64 / opened.max(1) as f64;
        if per >= 0.05 {
            by_size.push(serde_json::json!({
                "bytes": format!("{}-{}", (i * 16).saturating_sub(15), i * 16),
                "per_conn": (per * 100.0).round() / 100.0,
            }));
        }
    }
    let (cpu0, lg_cpu0) = (procstat::cpu_time(me), worker_cpu(&children));
    let split0 = user_sys();
    let publish_started = Instant::now();
    let mut data = String::new();
    let mut delivered_reported = 0u64;
    for seq in 0..cfg.events {
        let at = publish_started + cfg.interval * u32::try_from(seq).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at.into()).await;
        wire::write_stamp(&mut data, seq, mono_ns(), cfg.payload);
        delivered_reported += publisher.publish(&data).await?;
    }
    let mut complete = 0;
    for rx in &lines {
        if let Ok(line) = tokio::task::block_in_place(|| next_line(rx, Duration::from_secs(30))) {
            if line == "complete" {
                complete += 1;
            }
        }
    }
    let publish_time = publish_started.elapsed();
    let (cpu1, lg_cpu1) = (procstat::cpu_time(me), worker_cpu(&children));
    let split1 = user_sys();
    let (user, sys) = (
        split1.0.saturating_sub(split0.0),
        split1.1.saturating_sub(split0.1),
    );
    for child in &mut children {
        tell(child, "report");
    }
    let mut all =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())?;
    let mut per_event_max = vec![0u64; usize::try_from(cfg.events).unwrap_or(0)];
    let mut deliveries = 0u64;
    for rx in &lines {
        loop {
            let line = tokio::task::block_in_place(|| next_line(rx, Duration::from_secs(60)))?;
            if line == "end" {
                break;
            }
            let mut words = line.split_whitespace();
            if words.next() != Some("ev") {
                continue;
            }
            let seq: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            for micros in words.filter_map(|w| w.parse::<u64>().ok()) {
                let _ = all.record(micros.max(1));
                deliveries += 1;
                if let Some(max) = per_event_max.get_mut(seq) {
                    *max = (*max).max(micros);
                }
            }
        }
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let server_cpu = cpu1.zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let lg_cpu = lg_cpu1.saturating_sub(lg_cpu0);
    let cpu_per_delivery_us = server_cpu.map(|c| c.as_secs_f64() * 1e6 / deliveries.max(1) as f64);
    per_event_max.sort_unstable();
    let ms = |micros: u64| micros as f64 / 1000.0;
    let completion_median = per_event_max
        .get(per_event_max.len() / 2)
        .copied()
        .unwrap_or(0);
    let completion_max = per_event_max.last().copied().unwrap_or(0);
    let expected = cfg.events * opened as u64;

    println!(
        "{}: {} connections opened ({} failed) by {} workers in {:.2} s (fd limit {fd_limit})",
        cfg.label,
        opened,
        failed,
        lines.len(),
        open_time.as_secs_f64()
    );
    println!(
        "  server RSS {} -> {} KiB: {:.0} B/conn; heap {:.0} B/conn in {:.1} allocations/conn",
        rss0, rss1, rss_per_conn, heap_per_conn, allocs_per_conn
    );
    println!("  {} events, {} apart: {deliveries}/{expected} deliveries ({delivered_reported} reported), {complete}/{} workers complete",
        cfg.events, humantime(cfg.interval), lines.len());
    println!("  publish -> receive p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; last subscriber per event: median {:.1} ms, max {:.1} ms",
        ms(all.value_at_quantile(0.5)), ms(all.value_at_quantile(0.99)), ms(all.max()),
        ms(completion_median), ms(completion_max));
    println!(
        "  server CPU {:.3} s (user {:.2}, system {:.2}) over {:.1} s = {:.2} µs/delivery; load generator CPU {:.3} s",
        server_cpu.map_or(0.0, |c| c.as_secs_f64()),
        user.as_secs_f64(),
        sys.as_secs_f64(),
        publish_time.as_secs_f64(),
        cpu_per_delivery_us.unwrap_or(0.0),
        lg_cpu.as_secs_f64()
    );
    let json = serde_json::json!({
        "label": cfg.label,
        "server": cfg.server,
        "connections": opened,
        "failed": failed,
        "open_seconds": open_time.as_secs_f64(),
        "rss_before_kib": rss0,
        "rss_after_kib": rss1,
        "rss_per_conn_bytes": rss_per_conn,
        "heap_per_conn_bytes": heap_per_conn,
        "allocs_per_conn": allocs_per_conn,
        "allocs_by_size": by_size,
        "events": cfg.events,
        "deliveries": deliveries,
        "expected": expected,
        "p50_ms": ms(all.value_at_quantile(0.5)),
        "p99_ms": ms(all.value_at_quantile(0.99)),
        "max_ms": ms(all.max()),
        "completion_median_ms": ms(completion_median),
        "completion_max_ms": ms(completion_max),
        "server_cpu_s": server_cpu.map(|c| c.as_secs_f64()),
        "server_cpu_per_delivery_us": cpu_per_delivery_us,
        "server_user_s": user.as_secs_f64(),
        "server_system_s": sys.as_secs_f64(),
        "loadgen_cpu_s": lg_cpu.as_secs_f64(),
    });
    println!("{json}");
    Ok(())
}

fn humantime(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// One keep-alive `POST /publish` connection.
struct Publisher {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Publisher {
    async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("publisher connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Self {
            stream,
            addr,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Publishes `data`; the `delivered` count the server reports.
    async fn publish(&mut self, data: &str) -> Result<u64, String> {
        let body = serde_json::json!({ "topic": TOPIC, "data": data }).to_string();
        let request = format!(
            "POST /publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len(),
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("publish: {e}"))?;
        let mut chunk = [0u8; 4096];
        let head = loop {
            if let Some(head) = wire::parse_response_head(&self.buf).map_err(|e| e.to_string())? {
                break head;
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("publish response: {e}"))?;
            if n == 0 {
                return Err("publisher connection closed".to_owned());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        self.buf.drain(..head.len);
        let len = head.content_length.unwrap_or(0);
        while self.buf.len() < len {
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("publish response: {e}"))?;
            if n == 0 {
                return Err("publisher connection closed".to_owned());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        if head.status != 200 {
            return Err(format!(
                "POST /publish answered {}: {}",
                head.status,
                String::from_utf8_lossy(&body)
            ));
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("publish answer: {e}"))?;
        Ok(value
            .get("delivered")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0))
    }
}
