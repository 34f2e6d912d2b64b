//! `caravan tenant ...`.

use caravan_client::Client;
use caravan_tenancy::{TenantCreate, TenantUpdate};

use crate::cli::TenantCommand;
use crate::output::Printer;

pub async fn run(
    client: &Client,
    printer: &Printer,
    command: &TenantCommand,
) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create {
            name,
            display_name,
            retention_days,
            daily_quota_bytes,
        } => {
            let request = TenantCreate {
                name: name.clone(),
                display_name: display_name.clone(),
                retention_days: *retention_days,
                daily_quota_bytes: *daily_quota_bytes,
            };
            printer.tenants(&[client.create_tenant(&request).await?])
        }
        TenantCommand::List => printer.tenants(&client.tenants().await?),
        TenantCommand::Show { name } => printer.tenant(&client.tenant(name).await?),
        TenantCommand::Update {
            name,
            display_name,
            retention_days,
            daily_quota_bytes,
            unlimited_quota,
        } => {
            let update = TenantUpdate {
                display_name: display_name.clone(),
                retention_days: *retention_days,
                daily_quota_bytes: match (daily_quota_bytes, unlimited_quota) {
                    (_, true) => Some(None),
                    (Some(bytes), false) => Some(Some(*bytes)),
                    (None, false) => None,
                },
            };
            printer.tenant(&client.update_tenant(name, &update).await?)
        }
        TenantCommand::Delete { name, force } => {
            client.delete_tenant(name, *force).await?;
            printer.done(&format!("tenant {name} deleted"))
        }
    }
}
