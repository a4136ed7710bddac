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

/// Counts requests refused under load and logs them as a sum, at most once per
/// [`RefusalCount::EVERY`]: under a flood a line per refusal would be thousands of lines a
/// second, spending on logging what refusing saved. The first refusal after a quiet spell is
/// logged at once; the ones after it go into the next line.
#[derive(Debug)]
pub(crate) struct RefusalCount {
    why: &'static str,
    refused: std::sync::atomic::AtomicU64,
    reported: std::sync::Mutex<Option<std::time::Instant>>,
}

impl RefusalCount {
    pub(crate) const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// A counter whose lines say `why`.
    pub(crate) fn new(why: &'static str) -> Self {
        Self {
            why,
            refused: Default::default(),
            reported: Default::default(),
        }
    }

    /// Counts one refusal; logs the count when the last line is old enough.
    pub(crate) fn count(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.refused.fetch_add(1, Relaxed);
        // Whoever holds the lock is logging; this refusal goes into the next line.
        let Ok(mut reported) = self.reported.try_lock() else {
            return;
        };
        let now = std::time::Instant::now();
        if reported.is_none_or(|at| now.duration_since(at) >= Self::EVERY) {
            *reported = Some(now);
            let refused = self.refused.swap(0, Relaxed);
            tracing::warn!(
                refused,
                why = self.why,
                "requests refused under load (the count since the last such line)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::RefusalCount;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    #[test]
    fn a_flood_of_refusals_is_one_line_now_and_a_sum_later() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let count = RefusalCount::new("a test's limit");
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..1000 {
                count.count();
            }
            let text = lines.text();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(
                text.contains("refused=1 ") && text.contains("a test's limit"),
                "{text}"
            );

            // Once the last line is old enough, the next refusal reports all since it.
            let old = std::time::Instant::now()
                .checked_sub(RefusalCount::EVERY)
                .expect("the clock is past one interval");
            *count.reported.lock().unwrap_or_else(|e| e.into_inner()) = Some(old);
            count.count();
            let text = lines.text();
            assert_eq!(text.lines().count(), 2, "{text}");
            assert!(
                text.lines()
                    .nth(1)
                    .is_some_and(|l| l.contains("refused=1000 ")),
                "{text}"
            );
        });
    }
}
