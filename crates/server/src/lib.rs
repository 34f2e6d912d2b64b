//! Caravan's HTTP server.
//!
//! This crate owns HTTP: it turns requests into calls on the domain crates and the store, and
//! their results into responses. Each capability is its own module with its own router
//! (`tenants`, `tokens`, ...), merged once in [`app`]; a new capability adds a module and one line
//! there.
//!
//! Entry point: [`run`], which opens the store, bootstraps the admin token, serves until the
//! shutdown future resolves, lets in-flight requests finish and flushes the store.

mod app;
mod auth;
mod config;
mod error;
mod extract;
mod fleet;
mod logs;
mod metrics;
mod schema;
mod state;
mod system;
mod tenants;
mod tokens;

use std::future::Future;
use std::sync::Arc;

use caravan_store::{ControlStore, SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use app::{app, openapi};
pub use config::{ConfigError, DATA_DIR_DEFAULT, ServerConfig, ServerOverrides};
pub use error::{ErrorBody, ErrorPosition};
pub use state::AppState;

/// The name of the file, inside the data directory, holding the bootstrap admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The name of the SQLite database file inside the data directory.
pub const DATABASE_FILE: &str = "caravan.db";

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created or written.
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The control-plane store could not be opened or flushed.
    #[error(transparent)]
    Store(#[from] caravan_store::StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The metric registry could not be built (a programming error: duplicate or bad names).
    #[error("metrics: {0}")]
    Metrics(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The log store could not be opened.
    #[error("log store: {0}")]
    LogStore(#[from] caravan_logstore::LogStoreError),
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Runs the server until `shutdown` resolves, then stops accepting connections, lets in-flight
/// requests finish (at most `shutdown_grace_seconds`) and flushes the store.
///
/// Prints two kinds of lines on standard output, for people and for scripts: the bootstrap admin
/// token on first start, and `caravan listening on http://ADDRESS` once the port is bound.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| ServerError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let store_path = data_dir.join(DATABASE_FILE);
    let store: Arc<dyn ControlStore> = tokio::task::spawn_blocking(move || {
        SqliteStore::open(&store_path).map(|s| Arc::new(s) as Arc<dyn ControlStore>)
    })
    .await
    .map_err(|e| ServerError::Serve(std::io::Error::other(e)))??;

    auth::bootstrap_admin_token(store.as_ref(), data_dir)?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            address: config.listen.to_string(),
            source,
        })?;
    let address = listener.local_addr().map_err(ServerError::Serve)?;
    let grace = std::time::Duration::from_secs(config.shutdown_grace_seconds);
    let cluster_uuid = auth::cluster_uuid(data_dir)?;
    let logstore = logs::open_logstore(&config).await?;
    let state = AppState::new(config, store.clone(), cluster_uuid, logstore)?;
    logs::load_usage(&state).await?;
    let router = app(state.clone());

    let (stopping_tx, stopping_rx) = watch::channel(false);
    let shutdown_state = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        shutdown_state.set_ready(false);
        tracing::info!("shutdown requested; finishing in-flight requests");
        // The receiver lives until `run` returns; nobody listening means there is nothing to stop.
        let _ = stopping_tx.send(true);
    });

    let background = logs::spawn_background_tasks(&state, stopping_rx.clone());
    let host_loss_timer = fleet::start(&state, store.clone(), stopping_rx.clone()).await?;

    state.set_ready(true);
    tracing::info!(%address, "listening");
    println!("caravan listening on http://{address}");

    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stopping_rx.clone()));
    tokio::select! {
        result = server => result.map_err(ServerError::Serve)?,
        () = async { stopped(stopping_rx).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests still running after the grace period; stopping anyway");
        }
    }

    for task in background {
        // Each task ends on the stopping signal; a panic in one is already logged.
        let _ = task.await;
    }
    host_loss_timer.stop().await;
    logs::shut_down(&state).await;
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .map_err(|e| ServerError::Serve(std::io::Error::other(e)))??;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn stopped(mut receiver: watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once shutdown was sent.
    let _ = receiver.wait_for(|stopping| *stopping).await;
}

/// Resolves on SIGINT or SIGTERM: the shutdown future the binary passes to [`run`].
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
