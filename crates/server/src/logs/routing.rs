//! From an index name (or a document field) to the tenant that owns the document.
//!
//! Default rule: the longest tenant name that the index name equals or starts with followed by
//! `-` (`payments-2026.11.22` -> `payments`, even when a tenant `pay` exists). Alternatives:
//! a regular expression with a `tenant` capture group, and a document field (such as
//! `kubernetes.namespace`, as BlaBlaCar's Filebeat did) that wins when present.

use regex::Regex;

/// How index names map to tenants.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexRouter {
    /// A pattern with a `tenant` capture group replacing the prefix rule, when configured.
    pub pattern: Option<Regex>,
}

impl IndexRouter {
    /// The tenant for `index`, among `tenants` (sorted or not), if any matches.
    pub(crate) fn tenant_for_index<'t>(
        &self,
        index: &str,
        tenants: &'t [String],
    ) -> Option<&'t str> {
        if let Some(pattern) = &self.pattern {
            let captured = pattern.captures(index)?.name("tenant")?.as_str();
            return tenants.iter().map(String::as_str).find(|t| *t == captured);
        }
        tenants
            .iter()
            .map(String::as_str)
            .filter(|tenant| {
                index == *tenant
                    || index
                        .strip_prefix(tenant)
                        .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|tenant| tenant.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants() -> Vec<String> {
        ["pay", "payments", "search"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn longest_prefix_followed_by_dash() {
        let router = IndexRouter::default();
        let tenants = tenants();
        assert_eq!(
            router.tenant_for_index("payments-2026.11.22", &tenants),
            Some("payments")
        );
        assert_eq!(
            router.tenant_for_index("payments", &tenants),
            Some("payments")
        );
        assert_eq!(router.tenant_for_index("pay-x", &tenants), Some("pay"));
        assert_eq!(router.tenant_for_index("paymentsx-1", &tenants), None);
        assert_eq!(router.tenant_for_index("other-2026", &tenants), None);
    }

    #[test]
    fn configured_pattern() {
        let router = IndexRouter {
            pattern: Some(
                Regex::new(r"^logs-(?P<tenant>[a-z0-9-]+)-\d{4}\.\d{2}\.\d{2}$").unwrap(),
            ),
        };
        let tenants = tenants();
        assert_eq!(
            router.tenant_for_index("logs-search-2026.11.22", &tenants),
            Some("search")
        );
        assert_eq!(router.tenant_for_index("search-2026.11.22", &tenants), None);
        assert_eq!(
            router.tenant_for_index("logs-ghost-2026.11.22", &tenants),
            None
        );
    }
}
