//! The state every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use caravan_store::{ControlStore, StoreError};

use crate::ServerConfig;
use crate::error::ApiError;
use caravan_logstore::LogStore;

use crate::fleet::FleetState;
use crate::logs::{Unapplied, UsageBook};
use crate::metrics::Metrics;
use crate::schema::SchemaState;

/// Shared server state: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServerConfig,
    store: Arc<dyn ControlStore>,
    metrics: Metrics,
    ready: AtomicBool,
    schema: SchemaState,
    fleet: FleetState,
    unapplied: Unapplied,
    cluster_uuid: String,
    logstore: LogStore,
    usage: UsageBook,
    index_router: crate::logs::IndexRouter,
}

impl AppState {
    /// Builds the state around an opened store.
    pub fn new(
        config: ServerConfig,
        store: Arc<dyn ControlStore>,
        cluster_uuid: String,
        logstore: LogStore,
    ) -> Result<Self, crate::ServerError> {
        let metrics = Metrics::new().map_err(|e| crate::ServerError::Metrics(e.to_string()))?;
        let usage = UsageBook::new(metrics.registry())
            .map_err(|e| crate::ServerError::Metrics(e.to_string()))?;
        let index_router = crate::logs::IndexRouter {
            pattern: config
                .logs
                .index_pattern
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| {
                    crate::ServerError::Config(crate::ConfigError::Invalid(format!(
                        "logs.index_pattern: {e}"
                    )))
                })?,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                metrics,
                ready: AtomicBool::new(false),
                schema: SchemaState::default(),
                fleet: FleetState::default(),
                unapplied: Unapplied::default(),
                cluster_uuid,
                logstore,
                usage,
                index_router,
            }),
        })
    }

    /// The effective configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The log store.
    pub(crate) fn logstore(&self) -> &LogStore {
        &self.inner.logstore
    }

    /// The log usage books.
    pub(crate) fn usage(&self) -> &UsageBook {
        &self.inner.usage
    }

    /// How index names map to tenants.
    pub(crate) fn index_router(&self) -> &crate::logs::IndexRouter {
        &self.inner.index_router
    }

    /// The control-plane store, for code already running on a blocking thread.
    pub(crate) fn store_handle(&self) -> Arc<dyn ControlStore> {
        self.inner.store.clone()
    }

    pub(crate) fn unapplied(&self) -> &Unapplied {
        &self.inner.unapplied
    }

    /// This installation's identifier, answered as Elasticsearch's `cluster_uuid`.
    pub(crate) fn cluster_uuid(&self) -> &str {
        &self.inner.cluster_uuid
    }

    pub(crate) fn schema(&self) -> &SchemaState {
        &self.inner.schema
    }

    /// The fleet and the lock that serialises its changes.
    pub(crate) fn fleet(&self) -> &FleetState {
        &self.inner.fleet
    }

    /// Whether the server accepts work (false before start-up completes and during shutdown).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Relaxed);
    }

    /// Runs a store operation on a blocking thread, so that the async runtime never waits on
    /// disk.
    pub(crate) async fn store<T, F>(&self, operation: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn ControlStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || operation(store.as_ref()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }
}
