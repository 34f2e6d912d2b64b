//! `caravan logs ...`.

use caravan_api::LogPurge;
use caravan_client::Client;

use crate::cli::LogsCommand;
use crate::output::Printer;

pub async fn run(client: &Client, printer: &Printer, command: &LogsCommand) -> anyhow::Result<()> {
    match command {
        LogsCommand::Usage { tenant, days } => {
            printer.log_usage(&client.log_usage(tenant, *days).await?)
        }
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
