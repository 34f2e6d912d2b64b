//! The host-loss timer: every `fleet.down_check_interval_ms`, hosts silent for longer than
//! `fleet.heartbeat_timeout_ms` go `down` and their instances are rescheduled; the outcome is
//! persisted like any request's, attributed to the server itself.

use std::time::Duration;

use caravan_fleet::{EventKind, Outcome};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{OwnerHints, now_ms};
use crate::AppState;

/// The running timer task. It ends when the server's stopping signal turns true.
pub(crate) struct HostLossTimer {
    task: JoinHandle<()>,
}

impl HostLossTimer {
    /// Waits for the task to end (after the stopping signal), so that no change is half done
    /// when the store is flushed.
    pub(crate) async fn stop(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the host-loss timer failed");
        }
    }
}

/// Starts the timer.
pub(super) fn spawn(state: AppState, mut stopping: watch::Receiver<bool>) -> HostLossTimer {
    let config = state.config().fleet.clone();
    let task = tokio::spawn(async move {
        let mut ticker =
            tokio::time::interval(Duration::from_millis(config.down_check_interval_ms));
        // A slow store delays the next check instead of bunching checks up.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if *stopping.borrow() {
                break;
            }
            tokio::select! {
                // An error means the sender is gone, which only happens once shutdown was sent.
                changed = stopping.changed() => if changed.is_err() { break } else { continue },
                _ = ticker.tick() => {}
            }
            if let Err(error) = check(&state, config.heartbeat_timeout_ms).await {
                tracing::warn!(?error, "host-loss check failed; retrying at the next tick");
            }
        }
        tracing::debug!("host-loss timer stopped");
    });
    HostLossTimer { task }
}

async fn check(state: &AppState, timeout_ms: u64) -> Result<(), crate::error::ApiError> {
    let mut writer = state.fleet().write().await?;
    let outcome = writer.fleet().detect_down_hosts(now_ms(), timeout_ms)?;
    log_host_loss(&outcome);
    writer
        .commit(state, outcome, None, OwnerHints::new())
        .await?;
    Ok(())
}

fn log_host_loss(outcome: &Outcome) {
    for event in &outcome.events {
        match event.kind {
            EventKind::HostStateChanged => {
                tracing::warn!(host = ?event.host.as_ref().map(|h| h.as_str()), "{}", event.message);
            }
            EventKind::InstanceRescheduled | EventKind::InstancePending => {
                tracing::info!(service = ?event.service.as_ref().map(|s| s.as_str()), "{}", event.message);
            }
            _ => {}
        }
    }
}
