//! The `ssehub` binary configured only through `SSEHUB_*` environment
//! variables: CORS origins (comma-separated) and the JWT secret reach the
//! server, and a bad value exits 2 naming the flag.

mod common;

use common::open;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn ssehub() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssehub"));
    command
        .env_clear()
        .env("SSEHUB_ADDR", "127.0.0.1:0")
        .env("SSEHUB_TOKEN", "env-token-0123")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the binary and reads its address from the `listening` log line.
async fn spawn(mut command: Command) -> (Child, SocketAddr) {
    let mut child = command.spawn().expect("spawn ssehub");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if let Some(rest) = line
                .split("addr=")
                .nth(1)
                .filter(|_| line.contains("listening"))
            {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        panic!("ssehub exited before listening");
    })
    .await
    .expect("ssehub listens within 30 s");
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test]
async fn cors_origins_and_the_jwt_secret_come_from_the_environment() {
    let secret = "env-secret-0123456789abcdef-0123456789";
    let mut command = ssehub();
    command
        .env("SSEHUB_CORS_ORIGINS", "https://a.example,https://b.example")
        .env("SSEHUB_JWT_SECRET", secret)
        .env("SSEHUB_JWT_COOKIE", "jwt");
    let (_child, addr) = spawn(command).await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"ssehub": {"subscribe": ["t"]}}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    for origin in ["https://a.example", "https://b.example"] {
        let extra = format!("Origin: {origin}\r\nCookie: jwt={token}\r\n");
        let (_raw, head) = open(addr, "/events?topic=t", &extra).await;
        assert_eq!(head.status, 200, "{origin}");
        assert_eq!(head.header("access-control-allow-origin"), Some(origin));
        assert_eq!(
            head.header("access-control-allow-credentials"),
            Some("true")
        );
    }
    let (_raw, head) = open(addr, "/events?topic=t", "Origin: https://c.example\r\n").await;
    assert_eq!(head.status, 401, "no token");
    assert_eq!(head.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_bad_environment_value_exits_2_naming_the_flag() {
    for (name, value, needle) in [
        (
            "SSEHUB_CORS_ORIGINS",
            "https://a.example,https://b.example/",
            "--cors-origin",
        ),
        ("SSEHUB_JWT_SECRET", "too-short", "--jwt-secret"),
        (
            "SSEHUB_JWT_PUBLIC_KEY",
            "/nonexistent/key.pem",
            "--jwt-public-key",
        ),
    ] {
        let output = ssehub()
            .env(name, value)
            .output()
            .await
            .expect("run ssehub");
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{name}={value}: {stderr}");
    }
}
