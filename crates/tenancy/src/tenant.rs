//! A tenant is a team: it owns services and logs, and has its own retention and quota.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::{TenancyError, TenantName};

/// Log retention when a tenant is created without one, in days.
pub const RETENTION_DAYS_DEFAULT: u32 = 10;
/// The longest log retention a tenant may have, in days (ten years).
pub const RETENTION_DAYS_MAX: u32 = 3650;
/// The longest display name, in characters.
pub const DISPLAY_NAME_LEN_MAX: usize = 200;

/// A team, as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Unique name, a DNS label; also the prefix of the tenant's log indexes.
    pub name: TenantName,
    /// Human-readable name shown in the UI.
    pub display_name: String,
    /// Days of logs kept; older daily partitions are dropped.
    pub retention_days: u32,
    /// Bytes of logs accepted per UTC day; `null` means unlimited.
    pub daily_quota_bytes: Option<u64>,
    /// When the tenant was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the tenant was last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// The body of a request creating a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    /// Unique name, a DNS label.
    pub name: TenantName,
    /// Human-readable name; defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Days of logs kept; defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Bytes of logs accepted per UTC day; absent or `null` means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_quota_bytes: Option<u64>,
}

/// The body of a request changing a tenant: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New retention, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// New daily quota in bytes; `null` removes the quota.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>)]
    pub daily_quota_bytes: Option<Option<u64>>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`, by `default`).
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl Tenant {
    /// Builds a new tenant from a create request, filling defaults and validating every field.
    pub fn create(request: TenantCreate, now: OffsetDateTime) -> Result<Self, TenancyError> {
        let display_name = match request.display_name {
            Some(display_name) => validate_display_name(display_name)?,
            None => request.name.to_string(),
        };
        let retention_days =
            validate_retention(request.retention_days.unwrap_or(RETENTION_DAYS_DEFAULT))?;
        Ok(Tenant {
            name: request.name,
            display_name,
            retention_days,
            daily_quota_bytes: request.daily_quota_bytes,
            created_at: now,
            updated_at: now,
        })
    }

    /// Returns this tenant with `update` applied, or the first invalid field; `self` is unchanged.
    pub fn updated(&self, update: TenantUpdate, now: OffsetDateTime) -> Result<Self, TenancyError> {
        let mut next = self.clone();
        if let Some(display_name) = update.display_name {
            next.display_name = validate_display_name(display_name)?;
        }
        if let Some(retention_days) = update.retention_days {
            next.retention_days = validate_retention(retention_days)?;
        }
        if let Some(daily_quota_bytes) = update.daily_quota_bytes {
            next.daily_quota_bytes = daily_quota_bytes;
        }
        next.updated_at = now;
        Ok(next)
    }
}

fn validate_display_name(display_name: String) -> Result<String, TenancyError> {
    let invalid = |reason: &str| TenancyError::InvalidField {
        field: "display_name",
        reason: reason.to_owned(),
    };
    if display_name.trim().is_empty() {
        return Err(invalid("must not be blank"));
    }
    if display_name.chars().count() > DISPLAY_NAME_LEN_MAX {
        return Err(invalid("must be at most 200 characters long"));
    }
    if display_name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(display_name)
}

fn validate_retention(retention_days: u32) -> Result<u32, TenancyError> {
    if (1..=RETENTION_DAYS_MAX).contains(&retention_days) {
        Ok(retention_days)
    } else {
        Err(TenancyError::InvalidField {
            field: "retention_days",
            reason: format!("must be between 1 and {RETENTION_DAYS_MAX}, got {retention_days}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    fn create(json: &str) -> Result<Tenant, String> {
        let request: TenantCreate = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Tenant::create(request, now()).map_err(|e| e.to_string())
    }

    #[test]
    fn create_fills_defaults() {
        let tenant = create(r#"{"name":"payments"}"#).unwrap();
        assert_eq!(tenant.display_name, "payments");
        assert_eq!(tenant.retention_days, RETENTION_DAYS_DEFAULT);
        assert_eq!(tenant.daily_quota_bytes, None);
        assert_eq!(tenant.created_at, tenant.updated_at);
    }

    #[test]
    fn create_rejects_unknown_fields_and_bad_values() {
        let err = create(r#"{"name":"payments","retention":3}"#).unwrap_err();
        assert!(err.contains("unknown field `retention`"), "{err}");
        let err = create(r#"{"name":"payments","retention_days":0}"#).unwrap_err();
        assert!(err.contains("retention_days"), "{err}");
        let err = create(r#"{"name":"payments","display_name":" "}"#).unwrap_err();
        assert!(err.contains("display_name: must not be blank"), "{err}");
    }

    #[test]
    fn update_distinguishes_null_from_absent() {
        let tenant = create(r#"{"name":"payments","daily_quota_bytes":1000}"#).unwrap();
        let keep: TenantUpdate = serde_json::from_str(r#"{"retention_days":30}"#).unwrap();
        let kept = tenant.updated(keep, now()).unwrap();
        assert_eq!(kept.daily_quota_bytes, Some(1000));
        assert_eq!(kept.retention_days, 30);
        let clear: TenantUpdate = serde_json::from_str(r#"{"daily_quota_bytes":null}"#).unwrap();
        assert_eq!(
            tenant.updated(clear, now()).unwrap().daily_quota_bytes,
            None
        );
    }

    #[test]
    fn failed_update_changes_nothing() {
        let tenant = create(r#"{"name":"payments"}"#).unwrap();
        let bad = TenantUpdate {
            display_name: Some("Payments".into()),
            retention_days: Some(RETENTION_DAYS_MAX + 1),
            ..TenantUpdate::default()
        };
        assert!(tenant.updated(bad, now()).is_err());
        assert_eq!(tenant.display_name, "payments");
    }
}
