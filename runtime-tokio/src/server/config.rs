//! The server's configuration: command-line flags and environment
//! variables ([`Args`], parsed by clap), checked and turned into a
//! [`ServerConfig`] with a clear error for anything inconsistent.

use super::jwt::JwtAuth;
use crate::respond::SseSettings;
use clap::Parser;
use ssehub_core::HubConfig;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of the `ssehub` binary; each has an `SSEHUB_*` environment
/// variable. Durations are written `500ms`, `15s`, `2m`, `1h` (a bare number
/// is seconds); `off` (or `0`) disables an optional one, which the parsed
/// value records as a zero duration.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "ssehub",
    version,
    about = "A Server-Sent Events hub",
    after_help = "Durations are written 500ms, 15s, 2m or 1h (a bare number is seconds); \
`off` disables --heartbeat, --idle-timeout, --stall-timeout, --replay-age and --retry.\n\
Logs go to stderr, filtered by RUST_LOG (default: info)."
)]
#[non_exhaustive]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "SSEHUB_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Bearer token for POST /publish, POST /clients/{id}/send and
    /// DELETE /clients/{id}. If absent, a random one is generated and logged.
    #[arg(long, env = "SSEHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Bearer token required to open streams (`Authorization: Bearer` or
    /// `?access_token=`); streams are open to anyone if absent.
    #[arg(long, env = "SSEHUB_SUBSCRIBE_TOKEN", hide_env_values = true)]
    pub subscribe_token: Option<String>,
    /// Heartbeat after this long without a frame to a client.
    #[arg(long, env = "SSEHUB_HEARTBEAT", default_value = "15s", value_parser = parse_optional_duration)]
    pub heartbeat: Duration,
    /// Send heartbeats as this named event instead of a comment.
    #[arg(long, env = "SSEHUB_HEARTBEAT_EVENT")]
    pub heartbeat_event: Option<String>,
    /// Close a client when nothing was flushed to it for this long.
    #[arg(long, env = "SSEHUB_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_optional_duration)]
    pub idle_timeout: Duration,
    /// Close a client whose queue made no write progress for this long (and
    /// drop its connection a couple of seconds later if its socket still
    /// accepts nothing).
    #[arg(long, env = "SSEHUB_STALL_TIMEOUT", default_value = "30s", value_parser = parse_optional_duration)]
    pub stall_timeout: Duration,
    /// Bound of each client's queue, in frames.
    #[arg(long, env = "SSEHUB_QUEUE_FRAMES", default_value_t = 1024)]
    pub queue_frames: usize,
    /// Bound of each client's queue, in bytes.
    #[arg(long, env = "SSEHUB_QUEUE_BYTES", default_value_t = 4 << 20)]
    pub queue_bytes: usize,
    /// Events each topic retains for replay.
    #[arg(long, env = "SSEHUB_REPLAY_SIZE", default_value_t = 1024)]
    pub replay_size: usize,
    /// Age after which retained events expire.
    #[arg(long, env = "SSEHUB_REPLAY_AGE", default_value = "5m", value_parser = parse_optional_duration)]
    pub replay_age: Duration,
    /// Most clients at once.
    #[arg(long, env = "SSEHUB_MAX_CLIENTS", default_value_t = 100_000)]
    pub max_clients: usize,
    /// Most clients from one IP address.
    #[arg(long, env = "SSEHUB_MAX_CLIENTS_PER_IP", default_value_t = 10_000)]
    pub max_clients_per_ip: usize,
    /// Most topics one client may subscribe to.
    #[arg(long, env = "SSEHUB_MAX_TOPICS_PER_CLIENT", default_value_t = 64)]
    pub max_topics_per_client: usize,
    /// Most topics the hub keeps.
    #[arg(long, env = "SSEHUB_MAX_TOPICS", default_value_t = 100_000)]
    pub max_topics: usize,
    /// Most topics one stream may create by subscribing (topics that exist
    /// are free); 0: only publishers create topics.
    #[arg(long, env = "SSEHUB_TOPIC_BUDGET_PER_CLIENT", default_value_t = 16)]
    pub topic_budget_per_client: usize,
    /// Most topics the streams of one IP may have created by subscribing
    /// (while those topics exist).
    #[arg(long, env = "SSEHUB_TOPIC_BUDGET_PER_IP", default_value_t = 1_000)]
    pub topic_budget_per_ip: usize,
    /// Bytes all replay rings may retain together; past it the oldest
    /// events hub-wide are evicted (resumers needing them get a reset).
    #[arg(long, env = "SSEHUB_REPLAY_MAX_BYTES", default_value_t = 256 << 20)]
    pub replay_max_bytes: usize,
    /// Largest request body (and event) accepted, in bytes.
    #[arg(long, env = "SSEHUB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Origins allowed to open streams cross-origin with credentials
    /// (cookies): repeat the flag, or separate with commas. `*` lets any
    /// other origin open streams too, without credentials; an unlisted
    /// origin is never echoed back.
    #[arg(
        long = "cors-origin",
        env = "SSEHUB_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Open each stream with `event: welcome` carrying the client id.
    #[arg(long, env = "SSEHUB_WELCOME", default_value_t = true, action = clap::ArgAction::Set)]
    pub welcome: bool,
    /// The `retry:` hint (browser reconnect delay) that opens each stream.
    #[arg(long, env = "SSEHUB_RETRY", default_value = "3s", value_parser = parse_optional_duration)]
    pub retry: Duration,
    /// Name of the event sent before a fatal kick (`DELETE /clients/{id}?fatal=true`).
    #[arg(long, env = "SSEHUB_FATAL_EVENT", default_value = "fatal")]
    pub fatal_event: String,
    /// Name of the event every client gets when the server shuts down.
    #[arg(long, env = "SSEHUB_SHUTDOWN_EVENT", default_value = "shutdown")]
    pub shutdown_event: String,
    /// Name of the event telling a client its Last-Event-ID cannot be replayed.
    #[arg(long, env = "SSEHUB_RESET_EVENT", default_value = "reset")]
    pub reset_event: String,
    /// How long a graceful shutdown waits for streams to drain.
    #[arg(long, env = "SSEHUB_DRAIN_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// `SO_SNDBUF` of every connection, in bytes (e.g. 262144): bounds the
    /// kernel memory a client that stops reading can pin and makes stalls
    /// visible sooner. Unset: the kernel autotunes (up to ~4 MiB).
    #[arg(long, env = "SSEHUB_SEND_BUFFER")]
    pub send_buffer: Option<usize>,
    /// Serve HTTP/1.1 `GET /events` without hyper (a few hundred bytes per
    /// idle stream instead of hyper's buffers); `false`: every request
    /// through hyper.
    #[arg(long, env = "SSEHUB_HTTP1_FAST_PATH", default_value_t = true, action = clap::ArgAction::Set)]
    pub http1_fast_path: bool,
    // --- JWT authorization (see `server::jwt`) ---
    /// HS256 secret (at least 32 bytes) of the JWTs that authorize
    /// subscribers, and publishers with a `publish` claim. Excludes
    /// --jwt-public-key and --subscribe-token.
    #[arg(long, env = "SSEHUB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file of the RSA (RS256) or P-256 (ES256) public key that
    /// verifies JWTs. Excludes --jwt-secret and --subscribe-token.
    #[arg(long, env = "SSEHUB_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<std::path::PathBuf>,
    /// Cookie that may carry the subscriber's JWT (EventSource cannot send
    /// headers; `?access_token=` works too).
    #[arg(long, env = "SSEHUB_JWT_COOKIE", default_value = super::jwt::DEFAULT_COOKIE)]
    pub jwt_cookie: String,
    // --- Presence events (see `ssehub_core::PresenceConfig`) ---
    /// Topics whose subscribers receive `join`/`leave` events (with the
    /// client id and the JWT `sub`), as patterns: `rooms/*`, `rooms/**`.
    /// Repeat the flag, or separate with commas. None by default.
    #[arg(long = "presence", env = "SSEHUB_PRESENCE", value_delimiter = ',')]
    pub presence: Vec<String>,
    /// Rate-limit window of presence events, per topic.
    #[arg(long, env = "SSEHUB_PRESENCE_WINDOW", default_value = "1s", value_parser = parse_duration)]
    pub presence_window: Duration,
    /// `join`/`leave` events per topic and window; later changes in the
    /// window are coalesced into one `presence` summary at its end.
    #[arg(long, env = "SSEHUB_PRESENCE_BURST", default_value_t = 10)]
    pub presence_burst: u32,
    // -- Connection hygiene (see `crate::serve`). --
    /// Drop a connection that has not sent a complete request head this
    /// long after it was accepted (TLS handshake, HTTP/2 preface and first
    /// byte included).
    #[arg(long, env = "SSEHUB_REQUEST_HEAD_TIMEOUT", default_value = "10s", value_parser = parse_optional_duration)]
    pub request_head_timeout: Duration,
    /// Close a connection with no request in flight (HTTP/1 keep-alive,
    /// HTTP/2 without streams) after this long.
    #[arg(long, env = "SSEHUB_CONNECTION_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_optional_duration)]
    pub connection_idle_timeout: Duration,
    /// Ping HTTP/2 connections after this long without a frame from the peer.
    #[arg(long, env = "SSEHUB_H2_KEEP_ALIVE_INTERVAL", default_value = "30s", value_parser = parse_optional_duration)]
    pub h2_keep_alive_interval: Duration,
    /// Drop an HTTP/2 connection whose ping is not answered within this.
    #[arg(long, env = "SSEHUB_H2_KEEP_ALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub h2_keep_alive_timeout: Duration,
    /// Most connections open at once; at the cap a connection that has not
    /// sent a request yet is evicted, or the new one is refused. Unset: the
    /// open-file limit minus a reserve.
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs
    /// --tls-key. Reloaded on SIGHUP. ALPN offers h2 and http/1.1.
    #[arg(
        long,
        env = "SSEHUB_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "SSEHUB_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
}

/// A checked server configuration. Build it from [`Args`] with
/// [`ServerConfig::from_args`], or from [`ServerConfig::default`] in tests.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one).
    pub addr: SocketAddr,
    /// The hub's limits and timeouts.
    pub hub: HubConfig,
    /// How streams are shaped.
    pub sse: SseSettings,
    /// Bearer token of the publishing and admin routes.
    pub token: String,
    /// Bearer token for opening streams, if required.
    pub subscribe_token: Option<String>,
    /// CORS origins of `/events`.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Name of the event sent before a fatal kick.
    pub fatal_event: String,
    /// Name of the final event of a shutdown.
    pub shutdown_event: String,
    /// How long a graceful shutdown waits for streams to drain.
    pub drain_timeout: Duration,
    /// Longest the tick driver sleeps (how late a deadline may fire).
    pub tick_interval: Duration,
    /// `SO_SNDBUF` of every connection; `None`: the kernel's autotuning.
    pub send_buffer: Option<usize>,
    /// Serve HTTP/1.1 `GET /events` on the fast path (`crate::serve`);
    /// `false`: every request through hyper.
    pub http1_fast_path: bool,
    /// JWT authorization of streams (and of publishers with a `publish`
    /// claim), if configured.
    pub jwt: Option<JwtAuth>,
    // -- Connection hygiene (see `crate::serve`). --
    /// How long a new connection has to send its first request head.
    pub request_head_timeout: Option<Duration>,
    /// How long a connection may have no request in flight.
    pub connection_idle_timeout: Option<Duration>,
    /// HTTP/2 keep-alive ping interval.
    pub h2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 ping may go unanswered.
    pub h2_keep_alive_timeout: Duration,
    /// Most connections at once; `None`: no cap (the binary sets one from
    /// its open-file limit).
    pub max_connections: Option<usize>,
    /// TLS, loaded from `--tls-cert` and `--tls-key`; `None`: cleartext.
    pub tls: Option<crate::serve::tls::Tls>,
    /// How often the dashboard's stats event is sampled and published
    /// (`GET /dashboard/stream`).
    pub stats_interval: Duration,
}

impl Default for ServerConfig {
    /// `127.0.0.1:8080`, the core's defaults, a random token.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            hub: HubConfig {
                epoch: epoch_now(),
                ..HubConfig::default()
            },
            sse: SseSettings::default(),
            token: random_token(),
            subscribe_token: None,
            cors_origins: Vec::new(),
            max_body_bytes: 1 << 20,
            fatal_event: "fatal".to_owned(),
            shutdown_event: "shutdown".to_owned(),
            drain_timeout: Duration::from_secs(5),
            tick_interval: Duration::from_secs(1),
            send_buffer: None,
            http1_fast_path: true,
            jwt: None,
            // -- Connection hygiene. --
            request_head_timeout: Some(Duration::from_secs(10)),
            connection_idle_timeout: Some(Duration::from_secs(60)),
            h2_keep_alive_interval: Some(Duration::from_secs(30)),
            h2_keep_alive_timeout: Duration::from_secs(20),
            max_connections: None,
            tls: None,
            stats_interval: Duration::from_secs(1),
        }
    }
}

/// Whether the token came from the configuration or was generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` / `SSEHUB_TOKEN`.
    Configured,
    /// Generated at start (the binary logs it).
    Generated,
}

/// A configuration that cannot work, with what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ServerConfig {
    /// Checks `args` and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag and the problem: zero bounds, a
    /// heartbeat not shorter than the idle timeout (healthy quiet clients
    /// would be dropped), a queue smaller than one event, malformed tokens,
    /// CORS origins or event names.
    pub fn from_args(args: Args) -> Result<(Self, TokenSource), ConfigError> {
        let enabled = |d: Duration| Some(d).filter(|d| !d.is_zero());
        let (heartbeat, idle_timeout) = (enabled(args.heartbeat), enabled(args.idle_timeout));
        let err = |msg: String| Err(ConfigError(msg));
        if args.send_buffer == Some(0) {
            return err("--send-buffer must be at least 1 byte".to_owned());
        }
        // -- Connection hygiene. --
        if args.max_connections == Some(0) {
            return err("--max-connections must be at least 1".to_owned());
        }
        if args.h2_keep_alive_timeout.is_zero() {
            return err("--h2-keep-alive-timeout must be longer than 0".to_owned());
        }
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(
                crate::serve::tls::Tls::from_pem_files(cert, key)
                    .map_err(|e| ConfigError(format!("--tls-cert/--tls-key: {e}")))?,
            ),
            (None, None) => None,
            _ => return err("--tls-cert and --tls-key go together".to_owned()),
        };
        for (flag, value) in [
            ("--queue-frames", args.queue_frames),
            ("--queue-bytes", args.queue_bytes),
            ("--max-clients", args.max_clients),
            ("--max-clients-per-ip", args.max_clients_per_ip),
            ("--max-topics-per-client", args.max_topics_per_client),
            ("--max-topics", args.max_topics),
            ("--max-body-bytes", args.max_body_bytes),
            ("--replay-max-bytes", args.replay_max_bytes),
        ] {
            if value == 0 {
                return err(format!("{flag} must be at least 1"));
            }
        }
        if args.queue_bytes < args.max_body_bytes {
            return err(format!(
                "--queue-bytes ({}) must be at least --max-body-bytes ({}): a single event would overflow a client's queue",
                args.queue_bytes, args.max_body_bytes
            ));
        }
        if let (Some(heartbeat), Some(idle)) = (heartbeat, idle_timeout) {
            // The core's rule (`HubConfig::validate`): the heartbeat's tick
            // must come before the idle deadline's, a resolution apart.
            let resolution = HubConfig::default().timer_resolution;
            if heartbeat.saturating_add(resolution) > idle {
                return err(format!(
                    "--heartbeat ({heartbeat:?}) must be shorter than --idle-timeout ({idle:?}) by at least the timer resolution ({resolution:?}), or quiet clients are dropped as idle"
                ));
            }
        }
        if idle_timeout.is_some() && heartbeat.is_none() {
            return err(
                "--idle-timeout needs heartbeats (--heartbeat), or quiet clients are dropped as idle; set --idle-timeout off"
                    .to_owned(),
            );
        }
        for (flag, name) in [
            ("--fatal-event", &args.fatal_event),
            ("--shutdown-event", &args.shutdown_event),
            ("--reset-event", &args.reset_event),
        ]
        .into_iter()
        .chain(
            args.heartbeat_event
                .as_ref()
                .map(|n| ("--heartbeat-event", n)),
        ) {
            if name.is_empty() || name.chars().any(char::is_control) {
                return err(format!(
                    "{flag} must be a non-empty name without control characters"
                ));
            }
        }
        for origin in &args.cors_origins {
            if !valid_origin(origin) {
                return err(format!(
                    "--cors-origin {origin:?} is not `*` or scheme://host[:port] (no path, no trailing slash)"
                ));
            }
        }
        let jwt = jwt_from_args(&args)?;
        let (token, source) = match args.token {
            Some(token) => {
                check_token("--token", &token)?;
                (token, TokenSource::Configured)
            }
            None => (random_token(), TokenSource::Generated),
        };
        if let Some(token) = &args.subscribe_token {
            check_token("--subscribe-token", token)?;
        }
        let hub = HubConfig {
            epoch: epoch_now(),
            max_clients: args.max_clients,
            max_topics_per_client: args.max_topics_per_client,
            max_clients_per_peer: args.max_clients_per_ip,
            max_topics: args.max_topics,
            max_created_topics_per_client: args.topic_budget_per_client,
            max_created_topics_per_peer: args.topic_budget_per_ip,
            replay_max_total_bytes: args.replay_max_bytes,
            queue_max_frames: args.queue_frames,
            queue_max_bytes: args.queue_bytes,
            max_event_bytes: args.max_body_bytes,
            replay_capacity: args.replay_size,
            replay_max_age: enabled(args.replay_age),
            heartbeat_interval: heartbeat,
            heartbeat_event: args.heartbeat_event,
            idle_timeout,
            write_stall_timeout: enabled(args.stall_timeout),
            reset_event: args.reset_event,
            presence: ssehub_core::PresenceConfig {
                patterns: args.presence,
                window: args.presence_window,
                burst: args.presence_burst,
                ..ssehub_core::PresenceConfig::default()
            },
            ..HubConfig::default()
        };
        let sse = SseSettings {
            retry: enabled(args.retry),
            welcome: args.welcome,
            ..SseSettings::default()
        };
        // The core's own checks, as a backstop for anything missed above.
        hub.validate()
            .map_err(|e| ConfigError(format!("hub configuration: {e}")))?;
        let config = Self {
            addr: args.addr,
            hub,
            sse,
            token,
            subscribe_token: args.subscribe_token,
            cors_origins: args.cors_origins,
            max_body_bytes: args.max_body_bytes,
            fatal_event: args.fatal_event,
            shutdown_event: args.shutdown_event,
            drain_timeout: args.drain_timeout,
            send_buffer: args.send_buffer,
            http1_fast_path: args.http1_fast_path,
            jwt,
            // -- Connection hygiene. --
            request_head_timeout: enabled(args.request_head_timeout),
            connection_idle_timeout: enabled(args.connection_idle_timeout),
            h2_keep_alive_interval: enabled(args.h2_keep_alive_interval),
            h2_keep_alive_timeout: args.h2_keep_alive_timeout,
            max_connections: args.max_connections,
            tls,
            ..Self::default()
        };
        Ok((config, source))
    }
}

/// The JWT flags: at most one key, not with a shared subscribe token.
fn jwt_from_args(args: &Args) -> Result<Option<JwtAuth>, ConfigError> {
    let auth = match (&args.jwt_secret, &args.jwt_public_key) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "--jwt-secret and --jwt-public-key exclude each other: give one key".to_owned(),
            ))
        }
        (Some(secret), None) => JwtAuth::hs256(secret.as_bytes())
            .map_err(|e| ConfigError(format!("--jwt-secret: {e}")))?,
        (None, Some(path)) => {
            let pem = std::fs::read(path)
                .map_err(|e| ConfigError(format!("--jwt-public-key {}: {e}", path.display())))?;
            JwtAuth::from_public_key_pem(&pem)
                .map_err(|e| ConfigError(format!("--jwt-public-key {}: {e}", path.display())))?
        }
    };
    if args.subscribe_token.is_some() {
        return Err(ConfigError(
            "--subscribe-token and JWT authorization (--jwt-secret, --jwt-public-key) exclude each other"
                .to_owned(),
        ));
    }
    auth.with_cookie(&args.jwt_cookie)
        .map(Some)
        .map_err(|e| ConfigError(format!("--jwt-cookie {:?}: {e}", args.jwt_cookie)))
}

fn check_token(flag: &str, token: &str) -> Result<(), ConfigError> {
    if token.len() < 8 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError(format!(
            "{flag} must be at least 8 visible ASCII characters, without spaces"
        )));
    }
    Ok(())
}

fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['/', '?', '#', ' '])
}

/// Milliseconds since the Unix epoch: the hub's epoch, so ids from a
/// previous instance are recognised.
fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// 128 random bits as hex, from the standard library's OS-seeded hasher
/// keys (no extra dependency for one token).
pub(crate) fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for salt in 0..2u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

/// `500ms`, `15s`, `2m`, `1h`, or a bare number of seconds.
///
/// # Errors
///
/// A message naming the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let bad = || format!("invalid duration {s:?}: use e.g. 500ms, 15s, 2m or 1h");
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs).ok_or_else(bad);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        _ => Err(bad()),
    }
}

/// Like [`parse_duration`], with `off` (or `0`) meaning disabled, which
/// is returned as [`Duration::ZERO`].
///
/// # Errors
///
/// As [`parse_duration`].
pub fn parse_optional_duration(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "off" | "none" => Ok(Duration::ZERO),
        s => parse_duration(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(ServerConfig, TokenSource), String> {
        let args = Args::try_parse_from(std::iter::once("ssehub").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        ServerConfig::from_args(args).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_work_and_generate_a_token() {
        let (config, source) = parse(&[]).unwrap();
        assert_eq!(source, TokenSource::Generated);
        assert_eq!(config.token.len(), 32);
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.hub.heartbeat_interval, Some(Duration::from_secs(15)));
        assert!(config.sse.welcome);
    }

    #[test]
    fn flags_reach_the_config() {
        let (config, source) = parse(&[
            "--addr=0.0.0.0:9000",
            "--token=secret-token",
            "--heartbeat=500ms",
            "--idle-timeout=off",
            "--stall-timeout=2m",
            "--cors-origin=https://a.example,http://b.example:8080",
            "--welcome=false",
            "--send-buffer=262144",
        ])
        .unwrap();
        assert_eq!(source, TokenSource::Configured);
        assert_eq!(config.token, "secret-token");
        assert_eq!(
            config.hub.heartbeat_interval,
            Some(Duration::from_millis(500))
        );
        assert_eq!(config.hub.idle_timeout, None);
        assert_eq!(
            config.hub.write_stall_timeout,
            Some(Duration::from_secs(120))
        );
        assert_eq!(config.cors_origins.len(), 2);
        assert!(!config.sse.welcome);
        assert_eq!(config.send_buffer, Some(262_144));
    }

    #[test]
    fn presence_flags_set_the_patterns_and_refuse_a_bad_one() {
        let (config, _) = parse(&[]).unwrap();
        assert!(config.hub.presence.patterns.is_empty());
        let (config, _) = parse(&[
            "--presence=rooms/*",
            "--presence=lobby,chat/**",
            "--presence-window=250ms",
            "--presence-burst=0",
        ])
        .unwrap();
        let presence = &config.hub.presence;
        assert_eq!(presence.patterns, ["rooms/*", "lobby", "chat/**"]);
        assert_eq!(presence.window, Duration::from_millis(250));
        assert_eq!(presence.burst, 0);
        let error = parse(&["--presence=a\u{7}b"]).unwrap_err();
        assert!(error.contains("presence pattern"), "{error}");
    }

    #[test]
    fn jwt_flags_load_one_key_and_refuse_the_rest() {
        let secret = "--jwt-secret=0123456789abcdef0123456789abcdef";
        let (config, _) = parse(&[secret, "--jwt-cookie=auth"]).unwrap();
        let jwt = config.jwt.unwrap();
        assert_eq!(jwt.algorithm(), jsonwebtoken::Algorithm::HS256);
        assert_eq!(jwt.cookie(), "auth");
        let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
        for (file, alg) in [
            ("rsa_public.pem", jsonwebtoken::Algorithm::RS256),
            ("ec_public.pem", jsonwebtoken::Algorithm::ES256),
        ] {
            let flag = format!("--jwt-public-key={keys}/{file}");
            let (config, _) = parse(&[&flag]).unwrap();
            assert_eq!(config.jwt.unwrap().algorithm(), alg, "{file}");
        }
        let private = format!("--jwt-public-key={keys}/missing.pem");
        let garbage = format!(
            "--jwt-public-key={}",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")
        );
        let both = format!("--jwt-public-key={keys}/rsa_public.pem");
        for (args, needle) in [
            (vec!["--jwt-secret=short"], "32 bytes"),
            (vec![private.as_str()], "--jwt-public-key"),
            (vec![garbage.as_str()], "not a PEM"),
            (vec![secret, both.as_str()], "exclude"),
            (vec![secret, "--subscribe-token=sub-token-1"], "exclude"),
            (vec![secret, "--jwt-cookie=a b"], "--jwt-cookie"),
        ] {
            let err = parse(&args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(parse(&[]).unwrap().0.jwt.is_none());
    }

    #[test]
    fn cors_origin_is_repeatable_and_comma_separated() {
        let (config, _) = parse(&[
            "--cors-origin=https://a.example",
            "--cors-origin",
            "https://b.example,*",
        ])
        .unwrap();
        assert_eq!(
            config.cors_origins,
            ["https://a.example", "https://b.example", "*"]
        );
    }

    #[test]
    fn connection_hygiene_flags_reach_the_config() {
        let (config, _) = parse(&[]).unwrap();
        assert_eq!(config.request_head_timeout, Some(Duration::from_secs(10)));
        assert_eq!(config.max_connections, None);
        let (config, _) = parse(&[
            "--request-head-timeout=2s",
            "--connection-idle-timeout=off",
            "--h2-keep-alive-interval=5s",
            "--h2-keep-alive-timeout=1s",
            "--max-connections=100",
        ])
        .unwrap();
        assert_eq!(config.request_head_timeout, Some(Duration::from_secs(2)));
        assert_eq!(config.connection_idle_timeout, None);
        assert_eq!(config.h2_keep_alive_interval, Some(Duration::from_secs(5)));
        assert_eq!(config.h2_keep_alive_timeout, Duration::from_secs(1));
        assert_eq!(config.max_connections, Some(100));
        for (args, needle) in [
            (&["--max-connections=0"][..], "--max-connections"),
            (
                &["--h2-keep-alive-timeout=0"][..],
                "--h2-keep-alive-timeout",
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn bad_config_is_refused_with_the_flag_named() {
        for (args, needle) in [
            (&["--heartbeat=90s"][..], "--heartbeat"),
            (
                &["--heartbeat=1s", "--idle-timeout=1005ms"][..],
                "--heartbeat",
            ),
            (&["--queue-frames=0"][..], "--queue-frames"),
            (&["--token=short"][..], "--token"),
            (&["--cors-origin=https://a.example/"][..], "--cors-origin"),
            (&["--heartbeat=soon"][..], "invalid duration"),
            (&["--addr=nowhere"][..], "--addr"),
            (&["--heartbeat=off"][..], "--idle-timeout"),
            (&["--queue-bytes=10"][..], "--queue-bytes"),
            (&["--send-buffer=0"][..], "--send-buffer"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
