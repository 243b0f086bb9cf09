//! `ssehub`: the Server-Sent Events hub server.
//!
//! `cargo run --release -p ssehub-tokio --bin ssehub -- --help` lists the
//! flags; each has an `SSEHUB_*` environment variable. Logs go to stderr,
//! filtered by `RUST_LOG` (default `info`). SIGINT or SIGTERM shut down
//! gracefully: every stream gets the final event, then the process exits.

use clap::Parser;
use ssehub_tokio::server::{Args, Server, ServerConfig, TokenSource};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let (config, token_source) = match ServerConfig::from_args(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ssehub: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ssehub: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        if token_source == TokenSource::Generated {
            tracing::warn!(
                token = %config.token,
                "no --token / SSEHUB_TOKEN given: generated this bearer token for the admin routes"
            );
        }
        let addr = config.addr;
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("ssehub: cannot listen on {addr}: {error}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!("demo page at http://{}/", server.local_addr());
        let summary = server.run_until(shutdown_signal()).await;
        tracing::info!(?summary, "bye");
        ExitCode::SUCCESS
    })
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
