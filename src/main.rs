//! The `referrals` binary: parses configuration, starts logging and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use referrals::config::{Cli, Command, TokenCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // The demo prints its own story; the server inside it only speaks of trouble, unless asked.
    if matches!(cli.command, Command::Demo(_)) && std::env::var_os("REFERRALS_LOG").is_none() {
        cli.log.log = "error".into();
    }
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
        Command::Token(TokenCommand::Issue(args)) => {
            return match referrals::auth::issue_token(&args, chrono::Utc::now()) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("cannot issue a token: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Demo(config) => {
            return match referrals::demo::run(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "demo failed");
                    eprintln!("demo failed: {error}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = error.report(), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}
