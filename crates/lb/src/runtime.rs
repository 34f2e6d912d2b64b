//! HAProxy's Runtime API and master CLI: one command (or several separated by `;`) per
//! connection over a Unix socket, the answer read until HAProxy closes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long one command may take, connection included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The most an answer may hold (`show stat` of many servers stays far below).
const ANSWER_BYTES_MAX: u64 = 16 << 20;

/// A command on a HAProxy socket failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The socket could not be reached, or the exchange failed.
    #[error("HAProxy socket {socket}: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// HAProxy did not answer in time.
    #[error("HAProxy socket {socket}: no answer within {COMMAND_TIMEOUT:?}")]
    Timeout {
        /// The socket.
        socket: PathBuf,
    },
    /// HAProxy refused a command.
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused {
        /// The command.
        command: String,
        /// What HAProxy said.
        answer: String,
    },
}

/// Sends `command` (a line; `;` separates several) and returns HAProxy's answer.
pub async fn send(socket: &Path, command: &str) -> Result<String, RuntimeError> {
    let io = |source| RuntimeError::Io {
        socket: socket.to_owned(),
        source,
    };
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await.map_err(io)?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(io)?;
        // The master CLI answers only once the writing side is closed.
        stream.shutdown().await.map_err(io)?;
        let mut answer = String::new();
        stream
            .take(ANSWER_BYTES_MAX)
            .read_to_string(&mut answer)
            .await
            .map_err(io)?;
        Ok(answer)
    };
    tokio::time::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .map_err(|_| RuntimeError::Timeout {
            socket: socket.to_owned(),
        })?
}

/// Sends `set server` commands in batches (one connection each), checking every answer: a
/// `set server` that works answers nothing, or a note of what changed.
pub async fn apply(socket: &Path, commands: &[String]) -> Result<(), RuntimeError> {
    for batch in commands.chunks(64) {
        let answer = send(socket, &batch.join(";")).await?;
        // Answers come in order, one block per command, separated by blank lines.
        for line in answer
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
        {
            let accepted = line.starts_with("IP changed from")
                || line.starts_with("no need to change")
                || line.contains("port changed from");
            if !accepted {
                return Err(RuntimeError::Refused {
                    command: batch.join(";"),
                    answer: line.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// The process id of the worker answering on the runtime socket (`show info`'s `Pid`).
pub async fn worker_pid(runtime_socket: &Path) -> Result<u32, RuntimeError> {
    let info = send(runtime_socket, "show info").await?;
    info.lines()
        .find_map(|line| line.strip_prefix("Pid: "))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| RuntimeError::Refused {
            command: "show info".into(),
            answer: "no Pid in the answer".into(),
        })
}
