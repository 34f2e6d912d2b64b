//! Printing results: tables for people, JSON for scripts.

mod fleet;

use caravan_api::{
    DayUsage, PurgedPartition, SchemaPushed, SchemaVersionSummary, SchemaVersionView,
};
use caravan_schema::Dictionary;
use caravan_tenancy::{Tenant, TokenCreated, TokenInfo, TokenKind, WhoAmI};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::Output;

/// Prints results in the chosen format.
pub struct Printer {
    format: Output,
}

impl Printer {
    pub fn new(format: Output) -> Self {
        Self { format }
    }

    fn json<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }

    pub fn tenants(&self, tenants: &[Tenant]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(tenants);
        }
        let mut table = table(&[
            "NAME",
            "DISPLAY NAME",
            "RETENTION",
            "DAILY QUOTA",
            "CREATED",
        ]);
        for tenant in tenants {
            table.add_row(vec![
                tenant.name.to_string(),
                tenant.display_name.clone(),
                format!("{} days", tenant.retention_days),
                quota(tenant.daily_quota_bytes),
                timestamp(tenant.created_at),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn tenant(&self, tenant: &Tenant) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(tenant);
        }
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY);
        for (key, value) in [
            ("name", tenant.name.to_string()),
            ("display name", tenant.display_name.clone()),
            ("retention", format!("{} days", tenant.retention_days)),
            ("daily quota", quota(tenant.daily_quota_bytes)),
            ("created", timestamp(tenant.created_at)),
            ("updated", timestamp(tenant.updated_at)),
        ] {
            table.add_row(vec![key.to_owned(), value]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn tokens(&self, tokens: &[TokenInfo]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(tokens);
        }
        let mut table = table(&[
            "ID", "NAME", "KIND", "TENANT", "HOST", "SCOPES", "CREATED", "REVOKED",
        ]);
        for token in tokens {
            let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
            table.add_row(vec![
                token.id.to_string(),
                token.name.clone(),
                token.kind.as_str().to_owned(),
                token
                    .tenant
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                token
                    .host
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                match token.kind {
                    TokenKind::Admin => "all".to_owned(),
                    TokenKind::Agent => "-".to_owned(),
                    TokenKind::Tenant => scopes.join(","),
                },
                timestamp(token.created_at),
                token.revoked_at.map_or("-".to_owned(), timestamp),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn token_created(&self, created: &TokenCreated) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(created);
        }
        self.tokens(std::slice::from_ref(&created.token))?;
        println!("secret (shown once, keep it safe): {}", created.secret);
        Ok(())
    }

    pub fn whoami(&self, whoami: &WhoAmI) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(whoami);
        }
        let scopes: Vec<&str> = whoami.scopes.iter().map(|s| s.as_str()).collect();
        match (&whoami.tenant, &whoami.host) {
            (Some(tenant), _) => println!(
                "{} token {} for tenant {tenant}: {}",
                whoami.kind.as_str(),
                whoami.token,
                scopes.join(", ")
            ),
            (None, Some(host)) => println!(
                "{} token {} for host {host}: its agent calls, log shipping, the service registry",
                whoami.kind.as_str(),
                whoami.token
            ),
            (None, None) => println!("{} token {}", whoami.kind.as_str(), whoami.token),
        }
        Ok(())
    }

    pub fn schema_pushed(&self, pushed: &SchemaPushed) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(pushed);
        }
        let whose = pushed
            .tenant
            .as_ref()
            .map_or("common schema".to_owned(), |t| {
                format!("extension schema of {t}")
            });
        println!("{whose}: version {} ({} keys)", pushed.version, pushed.keys);
        for change in &pushed.changes {
            println!("  {change}");
        }
        Ok(())
    }

    pub fn schema_keys(
        &self,
        schema: &SchemaVersionView,
        dictionary: &Dictionary,
    ) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(schema);
        }
        println!(
            "{} version {} ({}), pushed {} by {}",
            schema
                .tenant
                .as_ref()
                .map_or("common schema".to_owned(), |t| format!(
                    "extension schema of {t}"
                )),
            schema.version,
            schema.root_message,
            timestamp(schema.created_at),
            schema.created_by
        );
        let mut table = table(&["KEY", "TYPE", "ALIASES", "FLAGS"]);
        for field in dictionary.fields() {
            let mut flags = Vec::new();
            if !field.indexed {
                flags.push("not indexed".to_owned());
            }
            if field.default_field {
                flags.push("default field".to_owned());
            }
            if field.repeated {
                flags.push("repeated".to_owned());
            }
            if let Some(limit) = field.ignore_above {
                flags.push(format!("ignore_above {limit}"));
            }
            if !field.enum_values.is_empty() {
                flags.push(format!("one of {}", field.enum_values.join("|")));
            }
            table.add_row(vec![
                field.key.clone(),
                field.field_type.to_string(),
                field.aliases.join(", "),
                flags.join(", "),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn schema_sources(&self, schema: &SchemaVersionView) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(&schema.files);
        }
        for file in &schema.files {
            println!("// ---- {} ----", file.name);
            println!("{}", file.content);
        }
        Ok(())
    }

    pub fn schema_versions(&self, versions: &[SchemaVersionSummary]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(versions);
        }
        let mut table = table(&["VERSION", "ROOT", "PUSHED", "BY"]);
        for version in versions {
            table.add_row(vec![
                version.version.to_string(),
                version.root_message.clone(),
                timestamp(version.created_at),
                version.created_by.clone(),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn log_usage(&self, days: &[DayUsage]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(days);
        }
        let mut days_table = table(&[
            "DAY",
            "RECEIVED",
            "ACCEPTED",
            "BYTES ACCEPTED",
            "BYTES STORED",
            "COERCED",
            "WITH _IGNORED",
            "REJECTED",
        ]);
        for day in days {
            let rejected: Vec<String> = day
                .rejected
                .iter()
                .map(|(reason, n)| format!("{reason}: {n}"))
                .collect();
            days_table.add_row(vec![
                day.day.clone(),
                day.documents_received.to_string(),
                day.documents_accepted.to_string(),
                size(day.bytes_accepted),
                size(day.bytes_stored),
                day.documents_coerced.to_string(),
                day.documents_with_ignored.to_string(),
                if rejected.is_empty() {
                    "-".to_owned()
                } else {
                    rejected.join(", ")
                },
            ]);
        }
        println!("{days_table}");
        let mut unknown: std::collections::BTreeMap<&str, u64> = Default::default();
        for day in days {
            for (key, count) in &day.unknown_keys {
                *unknown.entry(key.as_str()).or_default() += count;
            }
        }
        if !unknown.is_empty() {
            let mut top: Vec<(&str, u64)> = unknown.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let mut keys = table(&["UNKNOWN KEY (stored, not indexed)", "DOCUMENTS"]);
            for (key, count) in top.into_iter().take(20) {
                keys.add_row(vec![key.to_owned(), count.to_string()]);
            }
            println!("{keys}");
        }
        Ok(())
    }

    pub fn purged(&self, purged: &[PurgedPartition]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(purged);
        }
        if purged.is_empty() {
            println!("nothing to purge");
            return Ok(());
        }
        let mut table = table(&["TENANT", "DAY", "DOCUMENTS", "DISK"]);
        for partition in purged {
            table.add_row(vec![
                partition.tenant.clone(),
                partition.day.clone(),
                partition.documents.to_string(),
                size(partition.disk_bytes),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    /// A search: the result as JSON, or one line per log (see [`Printer::log_lines`]) and a
    /// summary with the aggregations.
    pub fn log_search(&self, result: &caravan_api::LogSearchResult) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(result);
        }
        self.log_lines(&result.hits)?;
        eprintln!(
            "{} of {} logs in {} ms{}",
            result.hits.len(),
            result.total,
            result.took_ms,
            result
                .next
                .as_deref()
                .map(|next| format!("; more with --after {next}"))
                .unwrap_or_default()
        );
        Ok(())
    }

    /// Logs, one per line: `@timestamp tenant {source without @timestamp}` (JSON lines with
    /// `-o json`, for piping into jq).
    pub fn log_lines(&self, hits: &[caravan_api::LogHit]) -> anyhow::Result<()> {
        use std::io::Write;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for hit in hits {
            if self.format == Output::Json {
                writeln!(out, "{}", serde_json::to_string(hit)?)?;
                continue;
            }
            let mut source = hit.source.clone();
            if let Some(map) = source.as_object_mut() {
                map.remove("@timestamp");
            }
            writeln!(out, "{} {} {}", hit.timestamp, hit.tenant, source)?;
        }
        out.flush()?;
        Ok(())
    }

    /// JSON documents (dictionaries, templates) print as JSON whatever the format.
    pub fn raw_json(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        self.json(value)
    }

    pub fn done(&self, message: &str) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(&serde_json::json!({"result": message}));
        }
        println!("{message}");
        Ok(())
    }
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(header.to_vec());
    table
}

fn timestamp(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// A daily quota: unlimited, or a size.
fn quota(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unlimited".to_owned(), size)
}

/// A byte count for people: `10.0 GiB (10737418240 B)`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {} ({bytes} B)", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_readable() {
        assert_eq!(quota(None), "unlimited");
        assert_eq!(quota(Some(512)), "512 B");
        assert_eq!(
            quota(Some(10 * 1024 * 1024 * 1024)),
            "10.0 GiB (10737418240 B)"
        );
    }
}
