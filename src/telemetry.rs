//! Logging with tracing: human-readable or JSON lines on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber writing to stderr, in colour when stderr is a terminal.
pub fn init(config: &LogConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    install(config, std::io::stderr, std::io::stderr().is_terminal())
}

/// Installs the global subscriber writing to `writer` (tests capture logs this way).
pub fn init_with_writer<W>(
    config: &LogConfig,
    writer: W,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    install(config, writer, false)
}

fn install<W>(
    config: &LogConfig,
    writer: W,
    ansi: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.log)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
}
