//! `ssehub`: the Server-Sent Events hub server.
//!
//! `cargo run --release -p ssehub-tokio --bin ssehub -- --help` lists the
//! flags; each has an `SSEHUB_*` environment variable. Logs go to stderr,
//! filtered by `RUST_LOG` (default `info`). SIGINT or SIGTERM shut down
//! gracefully: every stream gets the final event, then the process exits.
//!
//! At start the open-file soft limit is raised to the hard limit, and the
//! connection cap (`--max-connections`) defaults to what that limit leaves
//! room for; see [`fit_to_nofile`]. With `--tls-cert`/`--tls-key`, SIGHUP
//! reloads the certificate for new connections; open streams go on.

use clap::Parser;
use ssehub_tokio::serve::nofile;
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
    let (mut config, token_source) = match ServerConfig::from_args(args) {
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
    match nofile::raise_to_hard_limit() {
        Ok(limit) => {
            for warning in fit_to_nofile(&mut config, limit.soft) {
                tracing::warn!("{warning}");
            }
            tracing::info!(
                open_files = limit.soft,
                max_connections = config.max_connections,
                "open-file limit"
            );
        }
        Err(error) => tracing::warn!(%error, "cannot read or raise the open-file limit"),
    }
    runtime.block_on(async move {
        if token_source == TokenSource::Generated {
            tracing::warn!(
                token = %config.token,
                "no --token / SSEHUB_TOKEN given: generated this bearer token for the admin routes"
            );
        }
        let addr = config.addr;
        #[cfg(unix)]
        if let Some(tls) = config.tls.clone() {
            tokio::spawn(reload_on_sighup(tls));
        }
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("ssehub: cannot listen on {addr}: {error}");
                return ExitCode::FAILURE;
            }
        };
        let scheme = if server.config().tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("demo page at {scheme}://{}/", server.local_addr());
        let summary = server.run_until(shutdown_signal()).await;
        tracing::info!(?summary, "bye");
        ExitCode::SUCCESS
    })
}

/// Sizes the connection cap to an open-file limit of `soft` descriptors,
/// and returns a warning for each configured limit that does not fit.
///
/// - No `--max-connections`: the cap is what the limit leaves room for
///   ([`nofile::connection_budget`]).
/// - A `--max-connections` above that is kept (the operator may know
///   better), with a warning: past the budget `accept` fails for want of
///   descriptors, and silent connections are evicted to make room.
/// - `--max-clients` above the budget: a warning, since over HTTP/1 each
///   stream holds a connection (over HTTP/2 streams share one).
fn fit_to_nofile(config: &mut ServerConfig, soft: u64) -> Vec<String> {
    let budget = nofile::connection_budget(soft);
    let mut warnings = Vec::new();
    match config.max_connections {
        None => config.max_connections = Some(budget),
        Some(max) if max > budget => warnings.push(format!(
            "--max-connections ({max}) exceeds the {budget} connections the open-file limit \
             ({soft}) leaves room for: raise the hard limit (ulimit -Hn) or lower the cap"
        )),
        Some(_) => {}
    }
    if config.hub.max_clients > budget {
        warnings.push(format!(
            "--max-clients ({}) exceeds the {budget} connections the open-file limit ({soft}) \
             leaves room for: over HTTP/1 each stream holds a connection, so at most {budget} \
             HTTP/1 streams can be open",
            config.hub.max_clients
        ));
    }
    warnings
}

/// Reloads the TLS certificate and key on every SIGHUP; a reload that
/// fails is logged and leaves the previous certificate in force.
#[cfg(unix)]
async fn reload_on_sighup(tls: ssehub_tokio::serve::tls::Tls) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP: TLS certificates will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!(cert = %tls.cert_path().display(), "TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(%error, "TLS certificate not reloaded; the previous one stays")
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_defaults_to_the_budget_and_excess_is_warned_about() {
        let mut config = ServerConfig::default();
        config.hub.max_clients = 500;
        assert!(fit_to_nofile(&mut config, 1024).is_empty());
        assert_eq!(config.max_connections, Some(960));

        let mut config = ServerConfig {
            max_connections: Some(5000),
            ..ServerConfig::default()
        };
        let warnings = fit_to_nofile(&mut config, 1024);
        assert_eq!(
            config.max_connections,
            Some(5000),
            "an explicit cap is kept"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("--max-connections (5000)"));
        assert!(warnings[1].contains("--max-clients (100000)"));
    }
}
