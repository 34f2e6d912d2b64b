//! The fleet over HTTP: inventory, address ranges and leases, templates, services and their
//! placement, drains, checks, capacity and quotas under `/api/v1/fleet/...`, persisted in the
//! control-plane store, with the host-loss timer.
//!
//! One [`Fleet`] (the pure domain of `caravan-fleet`) lives in memory behind a read-write lock.
//! A request that changes it takes the write lock, so changes are serialised (which is also
//! what keeps address leases unique under concurrent requests), runs fleet operations (each
//! all-or-nothing), and persists their [`Outcome`]: the row changes and the audit events, in
//! one store transaction, before it answers. Reads take the read lock and never touch the
//! store.
//!
//! - Cancellation: once an operation has changed the fleet, persisting it runs in its own task
//!   holding the lock, so a client that disconnects cannot leave memory ahead of the store.
//! - Persistence failure: the store transaction rolled back, so the store still holds the state
//!   before the request; the fleet is reloaded from it, and the request fails with a 500. If the
//!   reload fails too, fleet endpoints answer 503 until the server restarts.
//! - Heartbeat times are not persisted (one write per host per second would dominate the store);
//!   at start and after a reload every `up` or `draining` host counts as having just sent one,
//!   so it gets one full timeout to show up again.
//! - Long polls (an agent's desired instances, a service's endpoints) wait on a `watch` channel
//!   bumped after every commit, load and reload, not on a timer: see [`long_poll`].
//!
//! Access: inventory, ranges, templates, capacity and drain status are readable by admins and
//! tenant tokens with `fleet:read`, and changed by admins only; agent calls (registration,
//! heartbeat, desired instances, instance reports) are made by admins and by the host's own
//! agent token (another host's: 403). Services and quotas belong to a tenant: its token reads
//! them with `fleet:read` and changes its services with `fleet:write`; another tenant's are 404,
//! never 403. The service registry is read by admins, agent tokens (every service) and tenant
//! tokens with `fleet:read` (their own services).

mod hosts;
mod inventory;
mod persist;
mod services;
mod timer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use caravan_fleet::{ErrorClass, Fleet, FleetError, Outcome, ServiceName, TenantName};
use caravan_store::{ControlStore, StoreError};
use caravan_tenancy::{Denied, Principal, Requirement, Scope, TokenId, authorize};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock, RwLockReadGuard, watch};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::{AppState, ServerError};

pub(crate) use timer::HostLossTimer;

/// The fleet router.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(inventory::router())
        .merge(hosts::router())
        .merge(services::router())
}

/// The in-memory fleet and its lock.
pub(crate) struct FleetState {
    cell: Arc<RwLock<Cell>>,
    /// Sent after every change of the in-memory fleet (commit, load, reload), while the write
    /// lock is still held, so a long poll that subscribed before reading cannot miss one. Its
    /// value is the time of the last change, in milliseconds since the epoch.
    changes: watch::Sender<u64>,
}

impl Default for FleetState {
    fn default() -> Self {
        Self {
            cell: Arc::default(),
            changes: watch::Sender::new(0),
        }
    }
}

/// What the lock guards.
pub(crate) struct Cell {
    fleet: Fleet,
    /// Why fleet requests cannot be served: not loaded yet, or a reload failed.
    unavailable: Option<String>,
}

impl Default for Cell {
    fn default() -> Self {
        Self {
            fleet: Fleet::new(),
            unavailable: Some("the fleet is not loaded yet".to_owned()),
        }
    }
}

/// Tenants of services an operation deletes, so that their events still name the owner.
pub(crate) type OwnerHints = BTreeMap<ServiceName, TenantName>;

/// The write lock on the fleet. Changes made through [`FleetWriter::fleet`] must be committed
/// with [`FleetWriter::commit`] before the writer is dropped.
pub(crate) struct FleetWriter {
    guard: OwnedRwLockWriteGuard<Cell>,
}

impl FleetState {
    /// The fleet, for reading. Answers 503 while it is not loaded.
    pub(crate) async fn read(&self) -> Result<RwLockReadGuard<'_, Fleet>, ApiError> {
        RwLockReadGuard::try_map(self.cell.read().await, |cell| {
            cell.unavailable.is_none().then_some(&cell.fleet)
        })
        .map_err(|guard| unavailable(guard.unavailable.as_deref()))
    }

    /// A receiver of change notifications: `changed()` resolves after the next change of the
    /// fleet. Subscribe (or `mark_unchanged`) before reading, then wait: nothing is missed.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes the long polls: the fleet changed.
    fn notify_changed(&self) {
        // `send_modify` wakes the receivers even when two changes fall in the same millisecond.
        self.changes
            .send_modify(|changed_at| *changed_at = now_ms());
    }

    /// When the fleet last changed, in milliseconds since the epoch (0: not loaded yet).
    pub(crate) fn changed_at_ms(&self) -> u64 {
        *self.changes.borrow()
    }

    /// The fleet, for changing: waits for the requests before this one.
    pub(crate) async fn write(&self) -> Result<FleetWriter, ApiError> {
        let guard = self.cell.clone().write_owned().await;
        if let Some(reason) = &guard.unavailable {
            return Err(unavailable(Some(reason)));
        }
        Ok(FleetWriter { guard })
    }
}

fn unavailable(reason: Option<&str>) -> ApiError {
    ApiError::unavailable(format!(
        "the fleet is unavailable: {}",
        reason.unwrap_or("unknown reason")
    ))
}

impl FleetWriter {
    /// The fleet, to run an operation on.
    pub(crate) fn fleet(&mut self) -> &mut Fleet {
        &mut self.guard.fleet
    }

    /// Persists an operation's outcome (row changes and events, one transaction), attributing
    /// the events to `by` (`None`: the server itself). Runs in its own task, so that it
    /// completes even if the request is cancelled. On failure the fleet is reloaded from the
    /// store (see the module documentation).
    pub(crate) async fn commit(
        self,
        state: &AppState,
        outcome: Outcome,
        by: Option<&TokenId>,
        hints: OwnerHints,
    ) -> Result<FleetWriter, ApiError> {
        if outcome.is_empty() {
            return Ok(self);
        }
        let task_state = state.clone();
        let by = by.cloned();
        let mut guard = self.guard;
        let task = tokio::spawn(async move {
            let result = persist_outcome(&task_state, &mut guard, outcome, by, &hints).await;
            (guard, result)
        });
        match task.await {
            Ok((guard, Ok(()))) => {
                // Still under the write lock: woken readers see the change.
                state.fleet().notify_changed();
                Ok(FleetWriter { guard })
            }
            Ok((_, Err(error))) => Err(error),
            Err(join_error) => {
                // The commit task panicked after the fleet changed: bring memory back in line.
                let mut guard = state.fleet().cell.clone().write_owned().await;
                reload_after_failure(state, &mut guard).await;
                Err(ApiError::internal(join_error))
            }
        }
    }
}

async fn persist_outcome(
    state: &AppState,
    cell: &mut Cell,
    outcome: Outcome,
    by: Option<TokenId>,
    hints: &OwnerHints,
) -> Result<(), ApiError> {
    let records = persist::records(
        &cell.fleet,
        &outcome,
        by.as_ref(),
        hints,
        crate::tenants::now(),
    );
    let result = match records {
        Ok((rows, events)) if rows.is_empty() && events.is_empty() => return Ok(()),
        Ok((rows, events)) => {
            let count = events.len();
            let stored = state
                .store(move |store| store.apply_fleet_changes(&rows, &events))
                .await;
            if stored.is_ok() {
                tracing::debug!(events = count, by = ?by.as_ref().map(TokenId::as_str), "fleet change persisted");
            }
            stored
        }
        Err(error) => Err(ApiError::internal(error)),
    };
    if result.is_err() {
        reload_after_failure(state, cell).await;
    }
    result
}

/// Replaces the in-memory fleet by the store's, after a change could not be persisted.
async fn reload_after_failure(state: &AppState, cell: &mut Cell) {
    tracing::error!("a fleet change was not persisted; reloading the fleet from the store");
    let now = now_ms();
    match state
        .store(move |store| persist::load(store, now, persist::Settle::Skip))
        .await
    {
        Ok(fleet) => {
            cell.fleet = fleet;
            cell.unavailable = None;
        }
        Err(_) => {
            tracing::error!(
                "the fleet could not be reloaded; fleet endpoints answer 503 until restart"
            );
            cell.unavailable = Some(
                "a change could not be persisted and the state could not be reloaded; restart \
                 the server"
                    .to_owned(),
            );
        }
    }
    state.fleet().notify_changed();
}

/// Loads the fleet from the store, places what can be placed, and starts the host-loss timer,
/// which stops when `stopping` turns true.
pub(crate) async fn start(
    state: &AppState,
    store: Arc<dyn ControlStore>,
    stopping: watch::Receiver<bool>,
) -> Result<HostLossTimer, ServerError> {
    let now = now_ms();
    let fleet = tokio::task::spawn_blocking(move || {
        persist::load(store.as_ref(), now, persist::Settle::PlacePending)
    })
    .await
    .map_err(|e| ServerError::Serve(std::io::Error::other(e)))??;
    tracing::info!(
        hosts = fleet.hosts().count(),
        services = fleet.services().count(),
        instances = fleet.instances().count(),
        "fleet loaded"
    );
    let mut cell = state.fleet().cell.write().await;
    cell.fleet = fleet;
    cell.unavailable = None;
    state.fleet().notify_changed();
    drop(cell);
    Ok(timer::spawn(state.clone(), stopping))
}

/// Longest wait of a long poll on the fleet (desired instances, service endpoints).
pub(crate) const LONG_POLL_WAIT_MS_MAX: u64 = 30_000;
/// How often a waiting long poll checks whether the server is shutting down (changes wake it
/// at once).
const LONG_POLL_SHUTDOWN_CHECK_MS: u64 = 250;

/// A long poll: `look` reads the fleet and answers what to send and whether it differs from
/// what the caller knows; if it does not, waits for fleet changes (woken by each commit) until
/// it does or `wait` runs out (at most [`LONG_POLL_WAIT_MS_MAX`]), or the server shuts down
/// (waiting clients are answered at once: shutdown waits for in-flight requests). Answers the
/// last look.
pub(crate) async fn long_poll<T>(
    state: &AppState,
    wait: Duration,
    mut look: impl FnMut(&Fleet) -> Result<(T, bool), ApiError>,
) -> Result<T, ApiError> {
    let wait = wait.min(Duration::from_millis(LONG_POLL_WAIT_MS_MAX));
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.fleet().subscribe();
    loop {
        // Marked seen before reading: a change after this read wakes the wait below.
        changes.borrow_and_update();
        let (answer, differs) = {
            let fleet = state.fleet().read().await?;
            look(&fleet)?
        };
        let now = tokio::time::Instant::now();
        if differs || now >= deadline || !state.is_ready() {
            return Ok(answer);
        }
        let nap = (deadline - now).min(Duration::from_millis(LONG_POLL_SHUTDOWN_CHECK_MS));
        if let Ok(Err(_)) = tokio::time::timeout(nap, changes.changed()).await {
            // No sender (it lives as long as the state): fall back to rechecking.
            tokio::time::sleep(nap).await;
        }
    }
}

/// Deletes a tenant, consulting the fleet first: a tenant that owns services is refused (the
/// error lists them with its other holdings) unless `force`, which deletes its services too.
/// Its quota goes with it. The fleet stays locked throughout, so no service can be created for
/// the tenant while it is being deleted.
pub(crate) async fn delete_tenant(
    state: &AppState,
    by: &TokenId,
    name: &caravan_tenancy::TenantName,
    force: bool,
) -> Result<(), ApiError> {
    let mut writer = state.fleet().write().await?;
    let lookup = name.clone();
    let (exists, holdings) = state
        .store(move |store| {
            Ok((
                store.tenant(&lookup)?.is_some(),
                store.tenant_holdings(&lookup)?,
            ))
        })
        .await?;
    if !exists {
        return Err(StoreError::NotFound {
            what: "tenant",
            name: name.to_string(),
        }
        .into());
    }
    let owner = TenantName::new(name.as_str()).ok();
    let services: Vec<ServiceName> = writer
        .fleet()
        .services()
        .filter(|service| Some(&service.tenant) == owner.as_ref())
        .map(|service| service.name.clone())
        .collect();
    if !services.is_empty() {
        if !force {
            let names: Vec<&str> = services.iter().map(ServiceName::as_str).collect();
            let mut owns = vec![format!(
                "{} services ({})",
                services.len(),
                names.join(", ")
            )];
            owns.extend(holdings.iter().map(|h| format!("{} {}", h.count, h.what)));
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "in_use",
                format!(
                    "tenant {:?} is in use: it owns {}; delete those first or force",
                    name.as_str(),
                    owns.join(", ")
                ),
            ));
        }
        let hints: OwnerHints = services
            .iter()
            .filter_map(|service| Some((service.clone(), owner.clone()?)))
            .collect();
        let outcome = all_or_nothing(writer.fleet(), |fleet, outcome| {
            for service in &services {
                merge(outcome, fleet.delete_service(service)?);
            }
            Ok(())
        })?;
        writer = writer.commit(state, outcome, Some(by), hints).await?;
    }
    let deleted = name.clone();
    state
        .store(move |store| store.delete_tenant(&deleted, force))
        .await?;
    if let Some(owner) = owner
        && writer.fleet().quotas().any(|(tenant, _)| tenant == &owner)
    {
        let outcome = writer.fleet().set_tenant_quota(owner, None)?;
        writer
            .commit(state, outcome, Some(by), OwnerHints::new())
            .await?;
    }
    Ok(())
}

/// Runs several operations as one: if one fails, the fleet is put back as it was before the
/// first. Costs a copy of the fleet, so only requests that need several operations use it.
pub(crate) fn all_or_nothing(
    fleet: &mut Fleet,
    steps: impl FnOnce(&mut Fleet, &mut Outcome) -> Result<(), FleetError>,
) -> Result<Outcome, FleetError> {
    let before = fleet.clone();
    let mut outcome = Outcome::default();
    match steps(fleet, &mut outcome) {
        Ok(()) => Ok(outcome),
        Err(error) => {
            *fleet = before;
            Err(error)
        }
    }
}

/// Appends `next` to `outcome` (changes stay in order, so replaying them stays correct).
pub(crate) fn merge(outcome: &mut Outcome, next: Outcome) {
    outcome.changes.extend(next.changes);
    outcome.events.extend(next.events);
}

/// Milliseconds since the Unix epoch: the fleet's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The one mapping from fleet refusals to HTTP statuses. A lack of capacity, addresses or quota
/// is a 409 like other conflicts with the current state: the same request may succeed later.
impl From<FleetError> for ApiError {
    fn from(error: FleetError) -> Self {
        let reason = match &error {
            // One line per member that could not be placed.
            FleetError::Unplaceable { service, failures } => {
                let mut reason = format!("service {service} cannot be placed:");
                for failure in failures {
                    reason.push_str("\n  ");
                    reason.push_str(&failure.to_string());
                }
                reason
            }
            other => other.to_string(),
        };
        match error.class() {
            ErrorClass::Invalid => ApiError::invalid(reason),
            ErrorClass::NotFound => ApiError::not_found(reason),
            ErrorClass::Conflict => ApiError::new(StatusCode::CONFLICT, "conflict", reason),
            ErrorClass::Insufficient => ApiError::new(StatusCode::CONFLICT, "insufficient", reason),
            ErrorClass::Internal => ApiError::internal(reason),
        }
    }
}

/// Platform-wide changes (inventory, ranges, templates, quotas): admins only.
pub(crate) fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    authorize(principal, Requirement::Admin, None).map_err(|d| ApiError::denied(d, "fleet"))
}

/// Platform-wide reads (inventory, capacity): admins, and tenant tokens with `fleet:read`.
pub(crate) fn require_read(principal: &Principal) -> Result<(), ApiError> {
    authorize(principal, Requirement::Scope(Scope::FleetRead), None)
        .map_err(|d| ApiError::denied(d, "fleet"))
}

/// Access to something `owner` owns (a scope, or another requirement such as
/// [`Requirement::Registry`]). Another tenant's thing answers `missing()`, the very error a
/// thing that does not exist gets, so that its existence is not revealed.
pub(crate) fn require_owner<'r>(
    principal: &Principal,
    owner: &TenantName,
    requirement: impl Into<Requirement<'r>>,
    missing: impl FnOnce() -> ApiError,
) -> Result<(), ApiError> {
    let requirement = requirement.into();
    // A fleet tenant name that is not a valid tenancy name cannot be any token's tenant.
    let decision = match caravan_tenancy::TenantName::new(owner.as_str()) {
        Ok(owner) => authorize(principal, requirement, Some(&owner)),
        Err(_) if principal.tenant().is_none() => authorize(principal, requirement, None),
        Err(_) => Err(Denied::NotFound),
    };
    decision.map_err(|denied| match denied {
        Denied::NotFound => missing(),
        forbidden @ Denied::Forbidden(_) => ApiError::denied(forbidden, "fleet"),
    })
}

/// Whether a tenant token may see `owner`'s things (admins see everything). Only a filter after
/// an access check: agent tokens pass it too, and may read the registry only.
pub(crate) fn sees(principal: &Principal, owner: &TenantName) -> bool {
    match principal.tenant() {
        None => true,
        Some(own) => own.as_str() == owner.as_str(),
    }
}

/// The fleet's name of a tenancy tenant (fleet names must start with a letter).
pub(crate) fn fleet_tenant(name: &caravan_tenancy::TenantName) -> Result<TenantName, ApiError> {
    TenantName::new(name.as_str()).map_err(|error| {
        ApiError::invalid(format!("tenant {name} cannot own fleet resources: {error}"))
    })
}

/// Fails with 404 unless the tenant exists in the store.
pub(crate) async fn ensure_tenant_exists(
    state: &AppState,
    tenant: &TenantName,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found(format!("tenant {:?} not found", tenant.as_str()));
    let Ok(name) = caravan_tenancy::TenantName::new(tenant.as_str()) else {
        return Err(not_found());
    };
    let exists = state
        .store(move |store| Ok(store.tenant(&name)?.is_some()))
        .await?;
    if exists { Ok(()) } else { Err(not_found()) }
}
