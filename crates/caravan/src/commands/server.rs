//! `caravan server`.

use std::path::PathBuf;

use caravan_server::{ServerConfig, ServerOverrides};

use crate::cli::ServerArgs;

pub async fn run(args: &ServerArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let overrides = ServerOverrides {
        listen: args.listen,
        data_dir,
    };
    let config = ServerConfig::load(args.config.as_deref(), overrides)?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    caravan_server::run(config, caravan_server::shutdown_signal()).await?;
    Ok(())
}
