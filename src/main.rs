//! The `referrals` binary: parses configuration, starts logging and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use referrals::config::{AuditCommand, Cli, Command, KeysCommand, TokenCommand};

/// jemalloc with its background threads returns freed memory to the system within seconds:
/// with glibc's allocator, what two thousand streams under load had used stayed resident after
/// they closed (BENCHMARKS.md, fan-out).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        Command::Migrate(config) => {
            referrals::migrate(&config.database, config.grant_to.as_deref()).await
        }
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
        Command::Audit(AuditCommand::Verify(database)) => {
            return match referrals::verify_chains(&database).await {
                Ok(reports) => {
                    let mut intact = true;
                    for report in &reports {
                        let checkpoints = report.chain.ends_with("checkpoints");
                        match &report.problem {
                            None if checkpoints => println!(
                                "{} hold: {} checked against the stored chain",
                                report.chain, report.rows
                            ),
                            Some(problem) if checkpoints => {
                                intact = false;
                                println!("{} BROKEN: {problem}", report.chain);
                            }
                            None => println!(
                                "{} chain intact: {} rows{}",
                                report.chain,
                                report.rows,
                                if report.unchained > 0 {
                                    format!(
                                        " ({} older rows written before the chain, not covered)",
                                        report.unchained
                                    )
                                } else {
                                    String::new()
                                }
                            ),
                            Some(problem) => {
                                intact = false;
                                println!("{} chain BROKEN: {problem}", report.chain);
                            }
                        }
                    }
                    if intact {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("cannot verify: {}", error.report());
                    ExitCode::from(2)
                }
            };
        }
        Command::Keys(command) => {
            let (database, rotate) = match command {
                KeysCommand::Rotate(database) => (database, true),
                KeysCommand::Reseal(database) => (database, false),
            };
            return match referrals::reseal(&database, rotate).await {
                Ok((added, counts)) => {
                    if let Some(id) = added {
                        println!("field key {id} added; new values are sealed with it");
                    }
                    for (column, count) in counts {
                        println!(
                            "{column}: {} resealed, {} sealed from clear",
                            count.resealed, count.sealed_from_clear
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("cannot reseal: {}", error.report());
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
