//! One module per command group; each turns parsed arguments into calls and prints results.

mod agent;
mod demo;
mod fleet;
mod lb;
mod logs;
mod schema;
mod server;
mod tenant;
mod token;

use std::path::{Path, PathBuf};

use anyhow::Context;
use caravan_client::Client;
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::output::Printer;

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let printer = Printer::new(cli.output);
    match cli.command {
        Command::Server(ref args) => server::run(args, cli.data_dir.clone()).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "caravan",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Tenant(ref command) => tenant::run(&client(&cli)?, &printer, command).await,
        Command::Token(ref command) => token::run(&client(&cli)?, &printer, command).await,
        Command::Schema(ref command) => schema::run(&cli, &printer, command).await,
        Command::Logs(ref command) => logs::run(&client(&cli)?, &printer, command).await,
        Command::Zone(_)
        | Command::DataCenter(_)
        | Command::Host(_)
        | Command::Range(_)
        | Command::Lease(_)
        | Command::Template(_)
        | Command::Service(_)
        | Command::Instance(_)
        | Command::Capacity(_)
        | Command::Quota(_)
        | Command::Fleet(_) => fleet::run(&client(&cli)?, &printer, &cli.command).await,
        Command::Agent(ref args) => agent::run_agent(&cli, args).await,
        Command::SampleApp(ref args) => agent::run_sample_app(args).await,
        Command::Demo(ref args) => demo::run(args).await,
        Command::Lb(ref args) => lb::run(&cli, args).await,
        Command::Whoami => {
            let whoami = client(&cli)?.whoami().await?;
            printer.whoami(&whoami)
        }
    }
}

/// A client for the configured server. Without a token, a local server's admin token file is
/// used, so that an operator on the server's machine needs no set-up.
pub(crate) fn client(cli: &Cli) -> anyhow::Result<Client> {
    let token = match &cli.token {
        Some(token) => Some(token.clone()),
        None if is_local(&cli.server) => read_admin_token(&data_dir(cli.data_dir.as_deref()))?,
        None => None,
    };
    Ok(Client::new(&cli.server, token)?)
}

/// The token a long-running client (`agent`, `lb`) uses: the given one, or a local server's
/// admin token; `who` names the command in the error.
pub(crate) fn required_token(cli: &Cli, who: &str) -> anyhow::Result<String> {
    match &cli.token {
        Some(token) => Ok(token.clone()),
        None if is_local(&cli.server) => read_admin_token(&data_dir(cli.data_dir.as_deref()))?
            .with_context(|| format!("{who} needs --token (or a local server's admin.token)")),
        None => anyhow::bail!("{who} needs --token"),
    }
}

pub(crate) fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map_or_else(
        || PathBuf::from(caravan_server::DATA_DIR_DEFAULT),
        Path::to_path_buf,
    )
}

pub(crate) fn is_local(server: &str) -> bool {
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .unwrap_or(server);
    ["127.", "localhost", "[::1]"]
        .iter()
        .any(|prefix| rest.starts_with(prefix))
}

pub(crate) fn read_admin_token(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = data_dir.join(caravan_server::ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(Some(token.trim().to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_servers_are_recognised() {
        assert!(is_local("http://127.0.0.1:9200"));
        assert!(is_local("http://localhost:9200"));
        assert!(is_local("http://[::1]:9200"));
        assert!(!is_local("http://caravan.internal:9200"));
        assert!(!is_local("http://10.0.0.1:9200"));
    }
}
