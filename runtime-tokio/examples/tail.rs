//! Tails topics of an `ssehub` server (or any SSE endpoint): events on
//! stdout, one per line, connection states and errors on stderr.
//!
//! ```text
//! cargo run -p ssehub-tokio --bin ssehub &
//! cargo run -p ssehub-tokio --example tail -- http://127.0.0.1:8080/events?topic=news
//! # over TLS, trusting a private CA besides the webpki roots:
//! cargo run -p ssehub-tokio --example tail -- --ca ca.pem https://localhost:8443/events?topic=news
//! ```
//!
//! Ctrl-C closes the stream (locally, for good) and exits 0; a stream the
//! server closed for good (fatal status or event, attempts exhausted)
//! exits 1.

use clap::Parser;
use ssehub_tokio::client::{ClientEvent, EventSource, HttpVersion, RootCertificates, State};
use std::process::ExitCode;
use std::time::Duration;

/// Tail an SSE stream, reconnecting as needed.
#[derive(Debug, Parser)]
struct Args {
    /// The stream's URL, e.g. http://127.0.0.1:8080/events?topic=news or
    /// https://hub.example/events?topic=news
    url: String,
    /// Start after this event id (sent as `Last-Event-ID`).
    #[arg(long)]
    last_event_id: Option<String>,
    /// Bearer token for a hub started with a subscribe token.
    #[arg(long, env = "SSEHUB_SUBSCRIBE_TOKEN")]
    token: Option<String>,
    /// Speak HTTP/2 only (prior knowledge over http://, ALPN `h2` over
    /// https://). By default: HTTP/1.1 over http://, and over https://
    /// whatever ALPN negotiates (HTTP/2 where the server offers it).
    #[arg(long, conflicts_with = "http1")]
    http2: bool,
    /// Speak HTTP/1.1 only, also over https://.
    #[arg(long)]
    http1: bool,
    /// Trust the certificate authorities in this PEM file too (for
    /// https:// URLs), e.g. a test or private CA.
    #[arg(long, value_name = "FILE")]
    ca: Vec<std::path::PathBuf>,
    /// Trust the platform's certificate store instead of the compiled-in
    /// webpki (Mozilla) roots.
    #[arg(long)]
    native_roots: bool,
    /// The event that tells the client to stop for good.
    #[arg(long, default_value = "fatal")]
    fatal_event: String,
    /// Give up after this many consecutive failed attempts.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Reconnect when the server is silent this long (heartbeats count),
    /// in seconds.
    #[arg(long, default_value_t = 45)]
    read_timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = EventSource::builder(args.url.as_str())
        .fatal_event(args.fatal_event)
        .read_timeout(Some(Duration::from_secs(args.read_timeout)));
    if let Some(id) = args.last_event_id {
        builder = builder.last_event_id(id);
    }
    if let Some(token) = args.token {
        builder = builder.bearer_auth(token);
    }
    if args.http2 {
        builder = builder.http_version(HttpVersion::Http2);
    } else if args.http1 {
        builder = builder.http_version(HttpVersion::Http1);
    }
    if args.native_roots {
        builder = builder.root_certificates(RootCertificates::Native);
    }
    for path in &args.ca {
        match std::fs::read(path) {
            Ok(pem) => builder = builder.add_root_certificates_pem(pem),
            Err(error) => {
                eprintln!("tail: cannot read {}: {error}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    if let Some(max) = args.max_attempts {
        builder = builder.max_attempts(max);
    }
    let mut events = match builder.build() {
        Ok(events) => events,
        Err(error) => {
            eprintln!("tail: {error}");
            return ExitCode::from(2);
        }
    };

    let handle = events.handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            handle.close();
        }
    });

    let mut code = ExitCode::SUCCESS;
    while let Some(item) = events.next().await {
        match item {
            ClientEvent::Message(event) => {
                let id = if event.last_event_id.is_empty() {
                    "-"
                } else {
                    event.last_event_id.as_str()
                };
                println!("{id} {}: {}", event.event, event.data.replace('\n', "\\n"));
            }
            ClientEvent::State(State::Reconnecting { attempt, delay }) => {
                eprintln!("-- reconnecting (attempt {attempt}) in {delay:.1?}");
            }
            ClientEvent::State(State::Closed(info)) => {
                eprintln!("-- closed: {info}");
                if !info.is_local {
                    code = ExitCode::FAILURE;
                }
            }
            ClientEvent::State(state) => eprintln!("-- {state:?}"),
            ClientEvent::Error(error) => eprintln!("-- error: {error}"),
            other => eprintln!("-- {other:?}"),
        }
    }
    code
}
