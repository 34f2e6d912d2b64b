//! `caravan token ...`.

use caravan_client::Client;
use caravan_tenancy::{TokenCreate, TokenKind};

use crate::cli::TokenCommand;
use crate::output::Printer;

pub async fn run(client: &Client, printer: &Printer, command: &TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            admin,
            tenant,
            scopes,
            host,
        } => {
            let kind = match (admin, host) {
                (true, _) => TokenKind::Admin,
                (false, Some(_)) => TokenKind::Agent,
                (false, None) => TokenKind::Tenant,
            };
            let request = TokenCreate {
                name: name.clone(),
                kind,
                tenant: tenant.clone(),
                host: host.clone(),
                scopes: scopes.clone(),
            };
            printer.token_created(&client.create_token(&request).await?)
        }
        TokenCommand::List { tenant } => printer.tokens(&client.tokens(tenant.as_ref()).await?),
        TokenCommand::Revoke { id } => printer.tokens(&[client.revoke_token(id).await?]),
    }
}
