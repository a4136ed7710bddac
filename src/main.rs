//! The `referrals` binary: parses configuration, starts logging and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use referrals::config::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = referrals::telemetry::init(&cli.log) {
        eprintln!("cannot start logging: {error}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Serve(config) => match tokio::net::TcpListener::bind(config.listen).await {
            Ok(listener) => referrals::run(*config, listener, referrals::shutdown_signal()).await,
            Err(error) => {
                tracing::error!(listen = %config.listen, %error, "cannot listen");
                return ExitCode::FAILURE;
            }
        },
        Command::Migrate(database) => referrals::migrate(&database).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = error.report(), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}
