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

/// Whether the index pattern `pattern` (`*` any run) can name an index of `tenant`: the
/// tenant itself or an index `<tenant>-…` (the prefix rule), so `payments-*`, `pay*` and `*`
/// reach `payments`.
pub(crate) fn pattern_reaches(pattern: &str, tenant: &str) -> bool {
    glob_matches(pattern.as_bytes(), tenant.as_bytes())
        || glob_matches_some_with_prefix(pattern.as_bytes(), format!("{tenant}-").as_bytes())
}

/// `*`-glob matching (iterative, linear in practice).
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether some text starting with `prefix` matches `pattern`: the prefix must be consumed
/// literally until the pattern's first `*` (which absorbs the rest), or entirely.
fn glob_matches_some_with_prefix(pattern: &[u8], prefix: &[u8]) -> bool {
    for (i, &c) in prefix.iter().enumerate() {
        match pattern.get(i) {
            Some(b'*') => return true,
            Some(&p) if p == c => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_reach_tenants_by_name_or_prefix() {
        use super::pattern_reaches;
        assert!(pattern_reaches("*", "payments"));
        assert!(pattern_reaches("payments-*", "payments"));
        assert!(pattern_reaches("pay*", "payments"));
        assert!(pattern_reaches("payments-2026.11.*", "payments"));
        assert!(pattern_reaches("*ments", "payments"));
        assert!(!pattern_reaches("search-*", "payments"));
        assert!(!pattern_reaches("payments-*", "pay"));
        assert!(!pattern_reaches("pay-*", "payments"));
    }

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
