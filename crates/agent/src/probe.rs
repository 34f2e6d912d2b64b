//! One health probe of an instance, on the loopback address and the port the agent gave it:
//! TCP connect, HTTP GET (2xx or 3xx, HTTP/1.0 so that the answer ends with the connection),
//! or a command (exit status 0). Every probe is bounded by the check's timeout.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use caravan_fleet::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes of an HTTP answer read to find its status line.
const HTTP_STATUS_LINE_BYTES_MAX: usize = 1024;

/// Runs `probe` against `port` within `timeout`; true on success. An exec probe runs in `dir`
/// with `env`.
pub async fn run(
    probe: &Probe,
    port: u16,
    timeout: Duration,
    dir: &Path,
    env: &BTreeMap<String, String>,
) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let attempt = async {
        match probe {
            Probe::Tcp => TcpStream::connect(address).await.is_ok(),
            Probe::Http { path } => http_ok(address, path).await,
            Probe::Exec { command } => exec_ok(command, dir, env).await,
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

async fn http_ok(address: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return false;
    };
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: caravan-agent\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::with_capacity(128);
    let mut buffer = [0u8; 256];
    while answer.len() < HTTP_STATUS_LINE_BYTES_MAX && !answer.contains(&b'\n') {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    http_status_ok(&answer)
}

/// Whether an HTTP answer starts with a 2xx or 3xx status line.
fn http_status_ok(answer: &[u8]) -> bool {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let version_ok = words.next().is_some_and(|v| v.starts_with(b"HTTP/"));
    let status = words.next().unwrap_or_default();
    version_ok && status.len() == 3 && matches!(status.first(), Some(b'2' | b'3'))
}

async fn exec_ok(command: &[String], dir: &Path, env: &BTreeMap<String, String>) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .envs(env)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(mut child) => child.wait().await.is_ok_and(|status| status.success()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_2xx_and_3xx_pass() {
        assert!(http_status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(http_status_ok(b"HTTP/1.0 302 Found\r\n"));
        assert!(!http_status_ok(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!http_status_ok(b"HTTP/1.1 500 Internal\r\n"));
        assert!(!http_status_ok(b"garbage"));
        assert!(!http_status_ok(b""));
    }

    #[tokio::test]
    async fn probes_reach_a_listener_and_fail_without_one() {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0u8; 512];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(b"HTTP/1.0 204 No Content\r\n\r\n").await;
            }
        });
        let dir = std::env::temp_dir();
        let env = BTreeMap::new();
        let second = Duration::from_secs(1);
        assert!(run(&Probe::Tcp, port, second, &dir, &env).await);
        let http = Probe::Http {
            path: "/health".to_owned(),
        };
        assert!(run(&http, port, second, &dir, &env).await);
        let closed = {
            let socket = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            socket.local_addr().unwrap().port()
        };
        assert!(!run(&Probe::Tcp, closed, second, &dir, &env).await);
        assert!(!run(&http, closed, second, &dir, &env).await);
        let exec = |command: &[&str]| Probe::Exec {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert!(run(&exec(&["true"]), port, second, &dir, &env).await);
        assert!(!run(&exec(&["false"]), port, second, &dir, &env).await);
        assert!(
            !run(
                &exec(&["sleep", "5"]),
                port,
                Duration::from_millis(100),
                &dir,
                &env
            )
            .await
        );
    }
}
