//! Command-line and environment configuration (clap). The defaults run on SQLite under `./data`
//! with no setup.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::Clock;

/// The referral service of the 1480 counselling line and the 123 social emergency.
#[derive(Debug, Parser)]
#[command(name = "referrals", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging.
    #[command(flatten)]
    pub log: LogConfig,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the gRPC server.
    Serve(Box<ServeConfig>),
    /// Brings the database's schema up to this build's and exits; run it as the role that owns
    /// the tables (`serve` never changes the schema unless started with --migrate).
    Migrate(MigrateConfig),
    /// Bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Runs a scenario end to end on a throwaway SQLite database with the seed directory and
    /// prints each case's timeline.
    Demo(DemoConfig),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The keys that seal sensitive fields at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Field-key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Adds a new key to the keyring in the data directory, makes it the key new values are
    /// sealed with, and seals every stored value again under it. Servers open values sealed
    /// with the new key at once; they seal new values with it once restarted (run `reseal`
    /// after restarting them to catch values sealed meanwhile).
    Rotate(DatabaseConfig),
    /// Seals again, under the active key, every stored value sealed with another key, and
    /// seals values a database older than encryption at rest holds in clear.
    Reseal(DatabaseConfig),
}

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walks the hash chains of the events and the audit trail and says where the first
    /// edited, deleted or inserted row is; exits non-zero when a chain is broken.
    Verify(DatabaseConfig),
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mints a token signed with the server's key (creating the key if there is none yet) and
    /// prints it.
    Issue(IssueArgs),
}

/// What a minted token says.
#[derive(Debug, Clone, Args)]
pub struct IssueArgs {
    /// The bearer's part: hotline, operator, team, centre, supervisor, admin, auditor.
    #[arg(long)]
    pub role: String,
    /// The bearer's province (ISO 3166-2:IR code, e.g. IR-23), or `all` for national scope.
    #[arg(long)]
    pub province: String,
    /// Limits the token to one county of the province.
    #[arg(long)]
    pub county: Option<String>,
    /// The team, for a mobile team's token.
    #[arg(long)]
    pub team: Option<String>,
    /// Who the token is for: a call centre's account, a team id, or — for a centre, required —
    /// the service point id its referrals are addressed to; defaults to the role.
    #[arg(long)]
    pub subject: Option<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// The server's data directory, where its signing key is.
    #[arg(long, env = "REFERRALS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// What `referrals migrate` does.
#[derive(Debug, Clone, Args)]
pub struct MigrateConfig {
    /// The database, reached as the role that owns (or is to own) the tables.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// After migrating, gives this PostgreSQL role exactly what `referrals serve` needs and
    /// nothing more (deploy/postgres-grants.sql): read and append everywhere, change in place
    /// only outside the events and the audit trail, no DELETE, TRUNCATE or DDL. The role must
    /// exist and must not own the tables.
    #[arg(long, env = "REFERRALS_GRANT_TO")]
    pub grant_to: Option<String>,
}

/// Where the cases are kept.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Directory for the service's files; the SQLite database lives here unless
    /// --database-url names another database.
    #[arg(long, env = "REFERRALS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL: sqlite:PATH or postgres://USER@HOST/DB. Defaults to
    /// sqlite://DATA_DIR/referrals.db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most database connections the service opens.
    #[arg(long, env = "REFERRALS_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

impl DatabaseConfig {
    /// Returns the database URL, defaulting to the SQLite file in the data directory.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("referrals.db").display()))
    }

    /// Names the backend without the URL's credentials, for logs.
    pub fn backend(&self) -> &'static str {
        if self.url().starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// The server's settings.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "REFERRALS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Applies the database migrations before serving, as `referrals migrate` would: for the
    /// embedded SQLite database and demos. Without it the server never changes the schema and
    /// refuses to start on one that is behind, saying what to run; in production, migrate with
    /// the owner's role and serve with a role that owns nothing (see the README's "Operate").
    #[arg(long, env = "REFERRALS_MIGRATE")]
    pub migrate: bool,
    /// Directory seed file (TOML) to load at start, such as seed/directory.toml. Loading is
    /// idempotent: entries are added or updated, and live state (occupancy, a team's duty
    /// status, load and position) is set only for new entries.
    #[arg(long, env = "REFERRALS_SEED_DIRECTORY")]
    pub seed_directory: Option<PathBuf>,
    /// Runs even when the database's durability settings are weakened (an in-memory SQLite,
    /// synchronous_commit=off, fsync=off). For throwaway demos only: acknowledged intakes may be
    /// lost.
    #[arg(long, env = "REFERRALS_ALLOW_WEAK_DURABILITY")]
    pub allow_weak_durability: bool,
    /// Where to serve metrics in the Prometheus text format (`GET /metrics`); off unless set,
    /// and never on the gRPC port.
    #[arg(long, env = "REFERRALS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Largest request message accepted, in bytes; larger ones are refused.
    #[arg(long, env = "REFERRALS_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub max_message_bytes: usize,
    /// How often an idle HTTP/2 connection is pinged, so a dead mobile link is noticed and
    /// NAT and carrier middleboxes keep the connection open.
    #[arg(long, env = "REFERRALS_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[arg(long, env = "REFERRALS_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// Most requests and streams in flight at once on one connection; more wait for a place.
    #[arg(long, env = "REFERRALS_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// How often the health service checks the database.
    #[arg(long, env = "REFERRALS_HEALTH_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    /// Most intakes waiting for the writer before submitters wait for room.
    #[arg(long, env = "REFERRALS_INTAKE_QUEUE", default_value_t = 4096)]
    pub intake_queue: usize,
    /// Most intakes committed in one transaction.
    #[arg(long, env = "REFERRALS_INTAKE_BATCH", default_value_t = 256)]
    pub intake_batch: usize,
    /// How long an intake waits for room in a full queue before RESOURCE_EXHAUSTED.
    #[arg(long, env = "REFERRALS_INTAKE_QUEUE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub intake_queue_timeout: Duration,
    /// The clock; the system clock unless a test sets one.
    #[arg(skip)]
    pub clock: Clock,
    /// How long a watch stream may stay idle before a heartbeat is sent (keeps mobile
    /// networks' NAT mappings open).
    #[arg(long, env = "REFERRALS_HEARTBEAT_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// The most events a reconnecting stream replays; a client further behind reloads its
    /// cases and watches from now.
    #[arg(long, env = "REFERRALS_MAX_REPLAY", default_value_t = 100_000)]
    pub max_replay: i64,
    /// Messages queued for one stream's client before the stream waits for it.
    #[arg(long, env = "REFERRALS_STREAM_BUFFER", default_value_t = 64)]
    pub stream_buffer: usize,
    /// How long a stream waits for a client that reads nothing before telling it that it fell
    /// behind (it resumes from the number it is given).
    #[arg(long, env = "REFERRALS_STREAM_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stream_stall_timeout: Duration,
    /// Reads of cases (get, timeline, list, statistics) served at once; the database
    /// connections beyond them stay free for intake and changes, so a flood of reads cannot
    /// starve intake.
    #[arg(long, env = "REFERRALS_MAX_CONCURRENT_READS", default_value_t = 8)]
    pub max_concurrent_reads: usize,
    /// How long a read waits for its turn before it is shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "REFERRALS_READ_QUEUE_TIMEOUT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub read_queue_timeout: Duration,
    /// How often the event feed looks for events from other servers that it was not told of
    /// (PostgreSQL tells at once; SQLite processes sharing a file find each other's events only
    /// this way).
    #[arg(long, env = "REFERRALS_FEED_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub feed_poll_interval: Duration,
    /// Changes a deadline target: KIND:PRIORITY=DURATION (team_acknowledgement, on_scene,
    /// referral_acceptance; p0 to p4; 0s removes the target) or prosecutor_notice=DURATION.
    /// Repeatable; the defaults are the design's (P0: acknowledged in 3 min, on scene in 30).
    #[arg(
        long = "sla-target",
        env = "REFERRALS_SLA_TARGETS",
        value_delimiter = ','
    )]
    pub sla_targets: Vec<String>,
    /// How often deadlines are checked.
    #[arg(long, env = "REFERRALS_SLA_CHECK_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub sla_check_interval: Duration,
    /// How often the chains' heads are signed into the data directory's audit-anchors.jsonl
    /// (and once more at shutdown): a rewrite older than the last checkpoint is detected.
    #[arg(long, env = "REFERRALS_ANCHOR_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub anchor_interval: Duration,
    /// Serves TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "REFERRALS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, env = "REFERRALS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Requires every client to present a certificate signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "REFERRALS_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Requests per second one authenticated subject may make (0: no limit); past it,
    /// RESOURCE_EXHAUSTED with the time to wait.
    #[arg(long, env = "REFERRALS_RATE_LIMIT", default_value_t = 200)]
    pub rate_limit: u32,
    /// Requests one subject may make at once above the steady rate.
    #[arg(long, env = "REFERRALS_RATE_BURST", default_value_t = 400)]
    pub rate_burst: u32,
    /// How long shutdown waits for requests in flight before closing.
    #[arg(long, env = "REFERRALS_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// How logs are written.
#[derive(Debug, Clone, Args)]
pub struct LogConfig {
    /// Log format.
    #[arg(
        long,
        env = "REFERRALS_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (for example `info` or `referrals=debug`).
    #[arg(long, env = "REFERRALS_LOG", default_value = "info", global = true)]
    pub log: String,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The demo's settings.
#[derive(Debug, Clone, Args)]
pub struct DemoConfig {
    /// Keeps the demo's database (its path is printed) instead of deleting it.
    #[arg(long)]
    pub keep_data: bool,
}
