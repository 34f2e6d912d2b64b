//! Search activity: which tenants are being read, so that only their partitions pay for
//! one-second freshness.
//!
//! Elasticsearch's *search-idle* shards (`index.search.idle.after`, 30 s by default) skip their
//! periodic refresh until a search arrives, which then waits for one refresh. The store does
//! the same per tenant: a tenant searched within `search_idle_after` is *search-active*, and its
//! partitions commit every `commit_interval`; the partitions of a *search-idle* tenant commit
//! every `idle_commit_interval`, or sooner when the write-ahead log fills. A tenant that ships
//! a lot and reads rarely then makes fewer, larger segments, and tantivy merges less. The first
//! read of an idle tenant commits that tenant's partitions before it runs, so it sees every
//! acknowledged document, as a refresh would.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each tenant was last read.
pub(crate) struct SearchActivity {
    idle_after: Duration,
    last_read: Mutex<HashMap<String, Instant>>,
}

impl SearchActivity {
    pub(crate) fn new(idle_after: Duration) -> SearchActivity {
        SearchActivity {
            idle_after,
            last_read: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // Every mutation is a single insert or retain: a poisoned map is still consistent.
        self.last_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a read of `tenant` at `now`; returns whether the tenant was search-idle until
    /// then (the caller commits before reading).
    pub(crate) fn read(&self, tenant: &str, now: Instant) -> bool {
        let mut last_read = self.lock();
        match last_read.get_mut(tenant) {
            Some(at) => {
                let was_idle = now.saturating_duration_since(*at) >= self.idle_after;
                *at = (*at).max(now);
                was_idle
            }
            None => {
                last_read.insert(tenant.to_string(), now);
                true
            }
        }
    }

    /// Whether `tenant` was read within `search_idle_after` of `now`.
    pub(crate) fn is_active(&self, tenant: &str, now: Instant) -> bool {
        self.lock()
            .get(tenant)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.idle_after)
    }

    /// Forgets the tenants idle at `now` (they are idle whether remembered or not).
    pub(crate) fn forget_idle(&self, now: Instant) {
        let idle_after = self.idle_after;
        self.lock()
            .retain(|_, at| now.saturating_duration_since(*at) < idle_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_idle_until_read_and_again_after_idle_after() {
        let activity = SearchActivity::new(Duration::from_secs(30));
        let start = Instant::now();
        assert!(!activity.is_active("payments", start));
        assert!(activity.read("payments", start), "never read: idle");
        assert!(activity.is_active("payments", start));
        assert!(!activity.is_active("search", start), "per tenant");
        let later = start + Duration::from_secs(29);
        assert!(!activity.read("payments", later), "read 29 s ago: active");
        assert!(activity.is_active("payments", later + Duration::from_secs(29)));
        let idle = later + Duration::from_secs(30);
        assert!(!activity.is_active("payments", idle));
        activity.forget_idle(idle);
        assert!(activity.lock().is_empty());
        assert!(activity.read("payments", idle), "idle again");
    }
}
