//! `caravan logs ...`.

use std::collections::HashMap;
use std::time::Duration;

use caravan_api::{LogOrder, LogPurge, LogSearch};
use caravan_client::Client;

use crate::cli::LogsCommand;
use crate::output::Printer;

/// How often `tail` asks for new logs.
const TAIL_POLL: Duration = Duration::from_millis(500);
/// How far back `tail` looks again for logs that arrived late (their `@timestamp` older than
/// the newest already printed).
const TAIL_LOOKBACK: &str = "30s";
/// Logs `tail` fetches per poll.
const TAIL_BATCH: usize = 1_000;

pub async fn run(client: &Client, printer: &Printer, command: &LogsCommand) -> anyhow::Result<()> {
    match command {
        LogsCommand::Usage { tenant, days } => {
            printer.log_usage(&client.log_usage(tenant, *days).await?)
        }
        LogsCommand::Search {
            query,
            tenants,
            since,
            from,
            to,
            size,
            asc,
            after,
        } => {
            let from = match (since, from) {
                (_, Some(from)) => Some(from.clone()),
                (Some(since), None) => Some(format!("now-{since}")),
                (None, None) => Some("now-15m".to_owned()),
            };
            let request = LogSearch {
                tenants: tenants.tenants.clone(),
                query: query.clone(),
                from,
                to: to.clone(),
                order: if *asc { LogOrder::Asc } else { LogOrder::Desc },
                size: Some(*size),
                after: after.clone(),
                ..LogSearch::default()
            };
            printer.log_search(&client.search_logs(&request).await?)
        }
        LogsCommand::Tail {
            query,
            tenants,
            since,
        } => tail(client, printer, query, &tenants.tenants, since.as_deref()).await,
        LogsCommand::Purge {
            tenant,
            day,
            before,
        } => {
            let request = LogPurge {
                day: day.clone(),
                before: before.clone(),
            };
            printer.purged(&client.purge_logs(tenant, &request).await?)
        }
    }
}

/// Polls for logs newer than the last printed, oldest first. Logs arriving up to
/// [`TAIL_LOOKBACK`] late are still printed, once (ids seen in the window are remembered).
async fn tail(
    client: &Client,
    printer: &Printer,
    query: &str,
    tenants: &[String],
    since: Option<&str>,
) -> anyhow::Result<()> {
    // An absolute start: `now-…` would move with every poll and skip what arrived between.
    let since_ms =
        caravan_query::parse_duration(since.unwrap_or("0s")).map_err(anyhow::Error::msg)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut from = (now_ms - since_ms).to_string();
    // Logs printed, with their time, while they are inside the look-back window.
    let mut seen: HashMap<(String, String), i64> = HashMap::new();
    let mut newest_ms = i64::MIN;
    let lookback_ms = caravan_query::parse_duration(TAIL_LOOKBACK).map_err(anyhow::Error::msg)?;
    loop {
        // The window from `from`, page after page (a burst may exceed one batch).
        let mut hits = Vec::new();
        let mut after = None;
        loop {
            let request = LogSearch {
                tenants: tenants.to_vec(),
                query: query.to_owned(),
                from: Some(from.clone()),
                order: LogOrder::Asc,
                size: Some(TAIL_BATCH),
                after: after.take(),
                ..LogSearch::default()
            };
            let page = client.search_logs(&request).await?;
            after = page.next;
            hits.extend(page.hits);
            if after.is_none() {
                break;
            }
        }
        let mut fresh = Vec::new();
        for hit in hits {
            let at_ms = hit
                .cursor
                .split('.')
                .next()
                .and_then(|ms| ms.parse::<i64>().ok())
                .unwrap_or(newest_ms);
            if seen
                .insert((hit.tenant.clone(), hit.id.clone()), at_ms)
                .is_none()
            {
                newest_ms = newest_ms.max(at_ms);
                fresh.push(hit);
            }
        }
        printer.log_lines(&fresh)?;
        if newest_ms > i64::MIN {
            let window_start = newest_ms - lookback_ms;
            seen.retain(|_, at_ms| *at_ms >= window_start);
            from = window_start.to_string();
        }
        tokio::select! {
            () = tokio::time::sleep(TAIL_POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
