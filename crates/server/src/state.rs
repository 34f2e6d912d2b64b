//! The state every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use caravan_store::{ControlStore, StoreError};

use crate::ServerConfig;
use crate::error::ApiError;
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
}

impl AppState {
    /// Builds the state around an opened store.
    pub fn new(
        config: ServerConfig,
        store: Arc<dyn ControlStore>,
    ) -> Result<Self, crate::ServerError> {
        let metrics = Metrics::new().map_err(|e| crate::ServerError::Metrics(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                metrics,
                ready: AtomicBool::new(false),
                schema: SchemaState::default(),
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

    pub(crate) fn schema(&self) -> &SchemaState {
        &self.inner.schema
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
