//! `referrals-load`: a closed-loop load program for the complete intake path, with a baseline.
//!
//! `--concurrency` tasks each send an intake (1480 or 123, in the `--hotline-share` mix, each with
//! a request id of its own) over one of `--connections` HTTP/2 connections, wait for the receipt,
//! and send the next, for `--duration` or until `--count` intakes were sent. Latency goes into an
//! HDR histogram. With `--database-url` the program then checks that the database holds exactly
//! as many new cases as intakes were acknowledged, and with `--baseline` it measures, against the
//! same database and at the same concurrency, plain inserts of one ~1.5 KB row per transaction,
//! and prints the ratio of intake to baseline throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser};
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};

use referrals::auth::{self, Keys, Role};
use referrals::grpc::auth::BearerToken;
use referrals::pb;
use referrals::pb::emergency_intake_client::EmergencyIntakeClient;
use referrals::pb::hotline_intake_client::HotlineIntakeClient;
use referrals::sample::{self, Sample};

mod fanout;

/// The load program's settings.
/// The load program's command line.
#[derive(Debug, Parser)]
#[command(name = "referrals-load", version, about)]
struct Cli {
    #[command(flatten)]
    load: LoadConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse().load).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("referrals-load: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LoadConfig {
    /// The server to load.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// The server's data directory: a national supervisor's token is minted with its key.
    #[arg(long, env = "REFERRALS_DATA_DIR", default_value = "./data")]
    pub data_dir: std::path::PathBuf,
    /// Intakes in flight at once (closed loop: each task sends its next on the last's answer).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections the tasks share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// How long to send for.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many intakes instead (whichever comes first).
    #[arg(long)]
    pub count: Option<u64>,
    /// Share of 1480 intakes; the rest are 123.
    #[arg(long, default_value_t = 0.5)]
    pub hotline_share: f64,
    /// The server's database, to check that every acknowledged intake is a case (and for the
    /// baseline).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Also measure plain single-row inserts against the same database.
    #[arg(long, requires = "database_url")]
    pub baseline: bool,
    /// Meanwhile, this many tasks flood the server with reads (closed loop, no pause), to see
    /// that reads do not starve intake.
    #[arg(long, default_value_t = 0)]
    pub read_flood: usize,
    /// The read the flood sends: ListCases (the first page, no filter), or GetCase over the
    /// newest cases (each read decrypts the case and writes an audit entry).
    #[arg(long, value_enum, default_value_t = FloodRead::List)]
    pub read_flood_with: FloodRead,
    /// Before the list probe, grow the cases table to this many rows by copying the cases it
    /// holds back in time, into other counties, priorities, statuses and categories. Only for
    /// a benchmark database: a copy's sealed details still describe its original.
    #[arg(long, requires = "database_url")]
    pub grow_cases_to: Option<i64>,
    /// After the intakes, measure ListCases: this many rounds of a mix of filters and a deep
    /// page, one request in flight.
    #[arg(long, default_value_t = 0)]
    pub list_probe: u32,
    /// Meanwhile, hold this many live streams open (see `fanout`), then check each is complete.
    #[arg(long, default_value_t = 0, requires = "database_url")]
    pub streams: usize,
    /// What the streams watch.
    #[arg(long, value_enum, default_value_t = fanout::StreamKind::Mixed)]
    pub stream_kind: fanout::StreamKind,
    /// Streams that share one HTTP/2 connection.
    #[arg(long, default_value_t = 10)]
    pub streams_per_connection: usize,
    /// The server's process id, to report its CPU and memory (read from /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// While the intakes run, print the server's resident memory this often (needs
    /// `--server-pid`): a long run shows whether it grows.
    #[arg(long, value_parser = humantime::parse_duration, requires = "server_pid")]
    pub memory_every: Option<Duration>,
    /// Check the streams against the database without replaying each from its start: every
    /// stream must still reach the last event, in order, and none may be ended by the server.
    /// For runs too long to replay (a Tehran watcher of a 10-minute run holds millions of
    /// events).
    #[arg(long)]
    pub no_replay: bool,
}

/// The read a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FloodRead {
    /// ListCases, first page, no filter.
    List,
    /// GetCase, round the newest cases.
    Get,
}

impl FloodRead {
    fn rpc(self) -> &'static str {
        match self {
            FloodRead::List => "ListCases",
            FloodRead::Get => "GetCase",
        }
    }
}

/// Why the load program failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Setting up failed.
    #[error("{0}")]
    Setup(String),
    /// The database could not be read.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The count check failed.
    #[error(
        "count check FAILED: {acknowledged} intakes acknowledged as new cases, but the database gained {gained}"
    )]
    Count {
        /// New cases acknowledged.
        acknowledged: u64,
        /// Cases the database gained.
        gained: i64,
    },
}

/// What one run measured.
#[derive(Debug)]
pub struct Measured {
    /// Requests answered successfully.
    pub ok: u64,
    /// Answered with an error, by code.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Of the successful, how many were replays (there should be none).
    pub replayed: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency of successful requests, in microseconds.
    pub latency: Histogram<u64>,
}

impl Measured {
    /// Successful requests a second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn line(&self, what: &str) -> String {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{what}: {} ok in {:.1} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; errors {:?}",
            self.ok,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            ms(0.50),
            ms(0.99),
            ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.errors
        )
    }
}

/// Latency in microseconds, 3 significant digits, growing as needed.
fn histogram() -> Histogram<u64> {
    let mut histogram = Histogram::new(3).unwrap_or_else(|_| unreachable!("3 digits are valid"));
    histogram.auto(true);
    histogram
}

/// Runs the load and prints what it measured; fails when the count check fails.
pub async fn run(config: LoadConfig) -> Result<(), LoadError> {
    // One subject per task, as many call-centre accounts would be: each is held to the
    // server's per-subject rate limit on its own.
    let mut bearers = Vec::new();
    for task in 0..config.concurrency.max(1) {
        let token = mint(&config, &format!("load-{task}"))?;
        bearers.push(
            BearerToken::new(&token)
                .ok_or_else(|| LoadError::Setup("the token is not a header value".into()))?,
        );
    }
    let mut channels = Vec::new();
    for _ in 0..config.connections.max(1) {
        let channel = Endpoint::from_shared(config.target.clone())
            .map_err(|e| LoadError::Setup(e.to_string()))?
            .connect()
            .await
            .map_err(|e| LoadError::Setup(format!("cannot connect to {}: {e}", config.target)))?;
        channels.push(channel);
    }
    let before = match &config.database_url {
        Some(url) => Some(count_cases(url).await?),
        None => None,
    };
    // `--count 0` sends no intake: the run only grows the table or probes lists.
    if config.count != Some(0) {
        intake_run(&config, &channels, &bearers, before).await?;
    }
    if let (Some(url), Some(target)) = (&config.database_url, config.grow_cases_to) {
        let started = Instant::now();
        let (from, to) = grow_cases(url, target).await?;
        println!(
            "grew the cases table from {from} to {to} rows in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    if config.list_probe > 0 {
        let cases = match &config.database_url {
            Some(url) => format!("{} cases", count_cases(url).await?),
            None => "an unknown number of cases".to_owned(),
        };
        let channel = tonic::service::interceptor::InterceptedService::new(
            channels[0].clone(),
            bearers[0].clone(),
        );
        println!(
            "list probe over {cases}: {} rounds, one request in flight, pages of 50",
            config.list_probe
        );
        for line in list_probe(channel, config.list_probe).await {
            println!("  {line}");
        }
    }
    Ok(())
}

/// The intake part of a run: the closed loop (with the read flood beside it), the count check
/// against `before`, and the baseline.
async fn intake_run(
    config: &LoadConfig,
    channels: &[Channel],
    bearers: &[BearerToken],
    before: Option<i64>,
) -> Result<(), LoadError> {
    println!(
        "load: {} in flight over {} connection(s), {:.0} % 1480, for {}{}",
        config.concurrency,
        channels.len(),
        config.hotline_share * 100.0,
        humantime::format_duration(config.duration),
        config
            .count
            .map(|n| format!(" or {n} intakes"))
            .unwrap_or_default()
    );
    let flood = (config.read_flood > 0).then(|| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = (0..config.read_flood)
            .map(|task| {
                let channel = tonic::service::interceptor::InterceptedService::new(
                    channels[task % channels.len()].clone(),
                    bearers[task % bearers.len()].clone(),
                );
                let stop = stop.clone();
                let with = config.read_flood_with;
                tokio::spawn(async move {
                    let mut client =
                        referrals::pb::case_tracking_client::CaseTrackingClient::new(channel);
                    let (mut ok, mut shed, mut other) = (0u64, 0u64, 0u64);
                    // GetCase's flood reads round the newest page of cases, listed again
                    // (and counted as a read) whenever it has none yet.
                    let mut ids: Vec<String> = Vec::new();
                    let mut next = task;
                    while !stop.load(Ordering::Relaxed) {
                        let result = if with == FloodRead::List || ids.is_empty() {
                            client
                                .list_cases(pb::ListCasesRequest::default())
                                .await
                                .map(|list| {
                                    if with == FloodRead::Get {
                                        ids = list
                                            .into_inner()
                                            .cases
                                            .into_iter()
                                            .map(|c| c.case_id)
                                            .collect();
                                    }
                                })
                        } else {
                            next = (next + 1) % ids.len();
                            let request = pb::GetCaseRequest {
                                case_id: ids[next].clone(),
                            };
                            client.get_case(request).await.map(drop)
                        };
                        match result {
                            Ok(()) => ok += 1,
                            Err(s) if s.code() == tonic::Code::ResourceExhausted => shed += 1,
                            Err(_) => other += 1,
                        }
                    }
                    (ok, shed, other)
                })
            })
            .collect();
        (stop, tasks)
    });
    let fanout = if config.streams > 0 || config.server_pid.is_some() {
        Some(fanout::open(config).await?)
    } else {
        None
    };
    let acks = fanout.as_ref().map(|f| f.acks.clone());
    let (intake, recorded) = intakes(config, channels, bearers, acks).await;
    println!("{}", intake.line("intake"));
    if let (Some(fanout), Some(url)) = (fanout, &config.database_url) {
        fanout.finish(url, !config.no_replay).await?;
    }
    if let Some((stop, tasks)) = flood {
        stop.store(true, Ordering::Relaxed);
        let (mut ok, mut shed, mut other) = (0u64, 0u64, 0u64);
        for task in tasks {
            if let Ok((o, s, e)) = task.await {
                ok += o;
                shed += s;
                other += e;
            }
        }
        println!(
            "read flood ({} tasks of {}): {ok} served ({:.0}/s), {shed} shed with RESOURCE_EXHAUSTED, {other} other errors",
            config.read_flood,
            config.read_flood_with.rpc(),
            ok as f64 / intake.elapsed.as_secs_f64()
        );
    }
    if let (Some(url), Some(before)) = (&config.database_url, before) {
        let gained = count_cases(url).await? - before;
        if gained != recorded as i64 {
            return Err(LoadError::Count {
                acknowledged: recorded,
                gained,
            });
        }
        println!("count check: {recorded} new cases acknowledged, {gained} in the database: OK");
    }
    if config.baseline
        && let Some(url) = &config.database_url
    {
        let baseline = baseline(url, config).await?;
        println!(
            "{}",
            baseline.line("baseline (one ~1.5 KB row per transaction)")
        );
        println!(
            "ratio intake/baseline: {:.2}",
            intake.throughput() / baseline.throughput()
        );
    }
    Ok(())
}

fn mint(config: &LoadConfig, subject: &str) -> Result<String, LoadError> {
    let keys = Keys::load(&config.data_dir)
        .map_err(|e| LoadError::Setup(e.to_string()))?
        .ok_or_else(|| {
            LoadError::Setup(format!(
                "no signing key in {}: point --data-dir at the server's",
                config.data_dir.display()
            ))
        })?;
    keys.issue(&auth::claims(
        subject,
        Role::Supervisor,
        auth::ALL_PROVINCES,
        None,
        None,
        chrono::Utc::now(),
        Duration::from_secs(24 * 3600),
    ))
    .map_err(|e| LoadError::Setup(e.to_string()))
}

/// Sends intakes in a closed loop; returns what was measured and how many new cases were
/// acknowledged.
async fn intakes(
    config: &LoadConfig,
    channels: &[Channel],
    bearers: &[BearerToken],
    acks: Option<fanout::Acks>,
) -> (Measured, u64) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + config.duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..config.concurrency.max(1) {
        let channel = tonic::service::interceptor::InterceptedService::new(
            channels[task % channels.len()].clone(),
            bearers[task].clone(),
        );
        let sent = sent.clone();
        let run = run.clone();
        let limit = config.count.unwrap_or(u64::MAX);
        let share = (config.hotline_share.clamp(0.0, 1.0) * 1000.0) as u64;
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            let mut hotline = HotlineIntakeClient::new(channel.clone());
            let mut emergency = EmergencyIntakeClient::new(channel);
            let mut latency = histogram();
            let mut errors = std::collections::BTreeMap::new();
            let (mut ok, mut replayed, mut recorded) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let request_id = format!("load-{run}-{n}");
                // Spread 1480 and 123 evenly through the run.
                let is_hotline = (n * 7919) % 1000 < share;
                let began = Instant::now();
                let answer = if is_hotline {
                    hotline
                        .submit_referral(sample_hotline(request_id, n))
                        .await
                        .map(|r| r.into_inner().receipt)
                } else {
                    emergency
                        .report_emergency(sample_emergency(request_id, n))
                        .await
                        .map(|r| r.into_inner().receipt)
                };
                let took = began.elapsed();
                if let (Some(acks), Ok(Some(receipt))) = (&acks, &answer)
                    && let Ok(mut acks) = acks.lock()
                {
                    acks.insert(receipt.case_id.clone(), began + took);
                }
                match answer {
                    Ok(receipt) => {
                        ok += 1;
                        if receipt.is_some_and(|r| r.replayed) {
                            replayed += 1;
                        } else {
                            recorded += 1;
                        }
                        let _ = latency.record((took.as_micros() as u64).max(1));
                    }
                    Err(status) => {
                        *errors.entry(format!("{:?}", status.code())).or_insert(0) += 1;
                    }
                }
            }
            (ok, replayed, recorded, errors, latency)
        }));
    }
    let mut measured = Measured {
        ok: 0,
        errors: Default::default(),
        replayed: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    let mut recorded = 0;
    for task in tasks {
        if let Ok((ok, replayed, new, errors, latency)) = task.await {
            measured.ok += ok;
            measured.replayed += replayed;
            recorded += new;
            for (code, n) in errors {
                *measured.errors.entry(code).or_insert(0) += n;
            }
            let _ = measured.latency.add(&latency);
        }
    }
    measured.elapsed = start.elapsed();
    (measured, recorded)
}

async fn count_cases(url: &str) -> Result<i64, LoadError> {
    scalar(url, "select count(*) from cases").await
}

/// Runs a query of one integer on the database `url` names, on a connection of its own.
pub(crate) async fn scalar(url: &str, sql: &'static str) -> Result<i64, LoadError> {
    if url.starts_with("postgres") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let n = sqlx::query_scalar(sql).fetch_one(&pool).await?;
        pool.close().await;
        Ok(n)
    } else {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let n = sqlx::query_scalar(sql).fetch_one(&pool).await?;
        pool.close().await;
        Ok(n)
    }
}

/// The baseline's row: an id, a time and ~1.5 KB of payload, like a case row with its details.
const BASELINE_PAYLOAD: usize = 1_500;

macro_rules! baseline_loop {
    ($pool:expr, $config:expr) => {{
        let pool = $pool;
        let deadline = Instant::now() + $config.duration;
        let start = Instant::now();
        let sent = Arc::new(AtomicU64::new(0));
        let limit = $config.count.unwrap_or(u64::MAX);
        let mut tasks = Vec::new();
        for _ in 0..$config.concurrency.max(1) {
            let pool = pool.clone();
            let sent = sent.clone();
            tasks.push(tokio::spawn(async move {
                let mut latency = histogram();
                let mut errors = std::collections::BTreeMap::new();
                let mut ok = 0u64;
                let mut payload = vec![0u8; BASELINE_PAYLOAD];
                while Instant::now() < deadline {
                    if sent.fetch_add(1, Ordering::Relaxed) >= limit {
                        break;
                    }
                    let id = uuid::Uuid::now_v7();
                    payload[..16].copy_from_slice(id.as_bytes());
                    let began = Instant::now();
                    let done = sqlx::query(
                        "insert into load_baseline (id, created_at, payload) values ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(chrono::Utc::now().timestamp_micros())
                    .bind(&payload)
                    .execute(&pool)
                    .await;
                    match done {
                        Ok(_) => {
                            ok += 1;
                            let _ = latency.record((began.elapsed().as_micros() as u64).max(1));
                        }
                        Err(error) => {
                            *errors.entry(error.to_string()).or_insert(0u64) += 1;
                        }
                    }
                }
                (ok, errors, latency)
            }));
        }
        let mut measured = Measured {
            ok: 0,
            errors: Default::default(),
            replayed: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
        };
        for task in tasks {
            if let Ok((ok, errors, latency)) = task.await {
                measured.ok += ok;
                for (code, n) in errors {
                    *measured.errors.entry(code).or_insert(0) += n;
                }
                let _ = measured.latency.add(&latency);
            }
        }
        measured.elapsed = start.elapsed();
        sqlx::query("drop table load_baseline")
            .execute(&pool)
            .await?;
        pool.close().await;
        measured
    }};
}

/// Plain single-row inserts, one per transaction, at the same concurrency, against the same
/// database with the service's durability settings.
async fn baseline(url: &str, config: &LoadConfig) -> Result<Measured, LoadError> {
    let connections = u32::try_from(config.concurrency.max(1)).unwrap_or(u32::MAX);
    if url.starts_with("postgres") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(connections)
            .connect(url)
            .await?;
        sqlx::query(
            "create table if not exists load_baseline \
             (id uuid primary key, created_at bigint not null, payload bytea not null)",
        )
        .execute(&pool)
        .await?;
        Ok(baseline_loop!(pool, config))
    } else {
        use std::str::FromStr;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await?;
        sqlx::query(
            "create table if not exists load_baseline \
             (id blob primary key, created_at integer not null, payload blob not null) strict",
        )
        .execute(&pool)
        .await?;
        Ok(baseline_loop!(pool, config))
    }
}

/// An intake of realistic size: call `call_id` from a number some callers share (`number`),
/// about a woman or (`minor`) a girl in Tehran.
fn intake(call_id: &str, number: u64, category: pb::Category, minor: bool) -> pb::Intake {
    let now = chrono::Utc::now().timestamp();
    // Most callers call once; some call again.
    let caller = format!("0912{:07}", number % 9_000_000);
    Sample::child(now - 600)
        .call(call_id, "load-operator", &caller)
        .with(|i| {
            let contact = i.contact.get_or_insert_default();
            contact.answered_at = Some(sample::timestamp(now - 590));
            contact.ended_at = None;
            let reporter = i.reporter.get_or_insert_default();
            reporter.relationship = pb::Relationship::Neighbour as i32;
            reporter.name = "Load Reporter Name".into();
            reporter.callback_number = "09120000001".into();
            i.location.get_or_insert_default().address =
                "Street 4, No. 12, second floor, the door on the left".into();
            i.primary_category = category as i32;
            i.secondary_categories = Vec::new();
            i.narrative = "The caller describes what she heard and saw in some detail; the \
                           operator writes it down in her own words, as a real intake would, a \
                           few sentences long, so that the request is of a realistic size."
                .into();
        })
        .subject(|s| {
            s.age = Some(pb::subject::Age::AgeYears(if minor { 9 } else { 31 }));
            s.minor = Some(minor);
            s.name = "Load Subject Name".into();
        })
        .risk(|r| {
            let unknown = pb::Answer::Unknown as i32;
            *r = pb::RiskFacts {
                suicide_screening: Some(pb::SuicideScreening {
                    wish_to_be_dead: unknown,
                    suicidal_thoughts: unknown,
                    method: unknown,
                    intent: unknown,
                    plan: unknown,
                    behaviour_last_3_months: unknown,
                }),
                recency: pb::Recency::Last24Hours as i32,
                ..pb::RiskFacts::default()
            }
        })
        .build()
}

/// A 1480 intake with its own request id: psychological distress, referred to counselling.
pub fn sample_hotline(request_id: String, n: u64) -> pb::SubmitReferralRequest {
    pb::SubmitReferralRequest {
        intake: Some(intake(
            &request_id,
            n,
            pb::Category::PsychologicalDistress,
            false,
        )),
        request_id,
        action: pb::HotlineAction::CounsellingCentreReferral as i32,
    }
}

/// A 123 intake with its own request id: suspected neglect of a child, referred on.
pub fn sample_emergency(request_id: String, n: u64) -> pb::ReportEmergencyRequest {
    pb::ReportEmergencyRequest {
        intake: Some(intake(&request_id, n, pb::Category::ChildNeglect, true)),
        request_id,
        action: pb::EmergencyAction::ResolvedByPhone as i32,
    }
}

/// The filters the list probe asks for, as a supervisor with national reach would.
fn probe_filters() -> Vec<(&'static str, pb::ListCasesRequest)> {
    let all = pb::ListCasesRequest::default;
    vec![
        ("newest", all()),
        (
            "line 1480",
            pb::ListCasesRequest {
                line: Some(pb::Line::Hotline1480 as i32),
                ..all()
            },
        ),
        (
            "province",
            pb::ListCasesRequest {
                province: "IR-23".into(),
                ..all()
            },
        ),
        (
            "province and county",
            pb::ListCasesRequest {
                province: "IR-23".into(),
                county: "Tehran".into(),
                ..all()
            },
        ),
        (
            "status open",
            pb::ListCasesRequest {
                status: Some(pb::CaseStatus::Open as i32),
                ..all()
            },
        ),
        (
            "priority P1",
            pb::ListCasesRequest {
                priority: Some(pb::Priority::P1Urgent as i32),
                ..all()
            },
        ),
        (
            "category",
            pb::ListCasesRequest {
                category: Some(pb::Category::ChildNeglect as i32),
                ..all()
            },
        ),
        (
            "province and priority",
            pb::ListCasesRequest {
                province: "IR-23".into(),
                priority: Some(pb::Priority::P2Priority as i32),
                ..all()
            },
        ),
    ]
}

/// Pages walked before the deep page is timed.
const DEEP_PAGE: usize = 5;

/// Times ListCases, one request in flight: each round asks for the first page of every filter
/// and walks to the fifth page of the unfiltered list. Returns a line per filter and one for
/// all requests together.
async fn list_probe<S>(channel: S, rounds: u32) -> Vec<String>
where
    S: tonic::client::GrpcService<tonic::body::Body> + Clone,
    S::Error: Into<tonic::codegen::StdError>,
    S::ResponseBody: tonic::transport::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <S::ResponseBody as tonic::transport::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut client = referrals::pb::case_tracking_client::CaseTrackingClient::new(channel);
    let filters = probe_filters();
    let mut latency: Vec<Histogram<u64>> = (0..=filters.len()).map(|_| histogram()).collect();
    let mut all = histogram();
    let mut errors = 0u64;
    let mut empty = Vec::new();
    let time = |histogram: &mut Histogram<u64>, all: &mut Histogram<u64>, began: Instant| {
        let micros = (began.elapsed().as_micros() as u64).max(1);
        let _ = histogram.record(micros);
        let _ = all.record(micros);
    };
    for _ in 0..rounds {
        for (i, (name, request)) in filters.iter().enumerate() {
            let began = Instant::now();
            match client.list_cases(request.clone()).await {
                Ok(page) => {
                    time(&mut latency[i], &mut all, began);
                    if page.get_ref().cases.is_empty() && !empty.contains(name) {
                        empty.push(*name);
                    }
                }
                Err(_) => errors += 1,
            }
        }
        let mut token = String::new();
        for page in 1..=DEEP_PAGE {
            let began = Instant::now();
            match client
                .list_cases(pb::ListCasesRequest {
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
            {
                Ok(answer) => {
                    token = answer.into_inner().next_page_token;
                    if page == DEEP_PAGE {
                        time(&mut latency[filters.len()], &mut all, began);
                    }
                }
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let names = filters
        .iter()
        .map(|(name, _)| *name)
        .chain(std::iter::once("fifth page"));
    let mut lines: Vec<String> = names
        .zip(&latency)
        .map(|(name, h)| {
            format!(
                "{name:<22} p50 {:>7.2} ms  p99 {:>7.2} ms",
                ms(h, 0.5),
                ms(h, 0.99)
            )
        })
        .collect();
    lines.push(format!(
        "{:<22} p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  ({} requests, {errors} errors{})",
        "all",
        ms(&all, 0.5),
        ms(&all, 0.99),
        ms(&all, 0.999),
        all.len(),
        if empty.is_empty() {
            String::new()
        } else {
            format!("; no cases matched: {}", empty.join(", "))
        }
    ));
    lines
}

/// Grows the cases table to `target` rows (see [`LoadConfig::grow_cases_to`]); returns the
/// counts before and after.
async fn grow_cases(url: &str, target: i64) -> Result<(i64, i64), LoadError> {
    use referrals::domain::types::{CaseStatus, Category, Priority};
    use strum::VariantArray;

    // A value from `values` picked by `key`, as SQL.
    fn pick(key: &str, values: &[&str]) -> String {
        let arms: String = values
            .iter()
            .enumerate()
            .map(|(i, value)| format!(" when {i} then '{value}'"))
            .collect();
        format!("case ({key}) % {}{arms} end", values.len())
    }
    let priorities: Vec<&str> = Priority::VARIANTS.iter().map(|p| p.as_str()).collect();
    let statuses: Vec<&str> = CaseStatus::VARIANTS.iter().map(|s| s.as_str()).collect();
    let categories: Vec<&str> = Category::VARIANTS.iter().map(|c| c.as_str()).collect();
    let postgres = url.starts_with("postgres");
    let new_id = if postgres {
        "gen_random_uuid()"
    } else {
        "randomblob(16)"
    };
    // Parameters as integers on both backends.
    let (round, span, places, rows, low) = (
        "cast($1 as bigint)",
        "cast($2 as bigint)",
        "cast($3 as bigint)",
        "cast($4 as bigint)",
        "cast($5 as bigint)",
    );
    // Round `round` copies the originals (the cases from `low` on) `round` spans back in
    // time, into place number (ord * 13 + round * 7) mod `places` of the counties.
    let copy = format!(
        "insert into cases (case_id, reference, line, status, priority, computed_priority, \
         primary_category, province, county, minors_involved, version, created_at, updated_at, \
         details, routing_status, recorded_by) \
         select {new_id}, c.reference || '/' || {round}, c.line, {status}, {priority}, \
             {priority}, {category}, p.province, p.county, c.minors_involved, c.version, \
             c.created_at - {round} * {span}, c.updated_at - {round} * {span}, c.details, \
             c.routing_status, c.recorded_by \
         from (select *, row_number() over (order by case_id) as ord from cases \
               where created_at >= {low}) c \
         join (select province, county, row_number() over (order by province, county) - 1 as i \
               from counties) p on p.i = (c.ord * 13 + {round} * 7) % {places} \
         where c.ord <= {rows}",
        // Multipliers prime to each count, so that every round spreads its copies over all
        // the values rather than giving a round one value.
        status = pick(&format!("c.ord * 7 + {round}"), &statuses),
        priority = pick(&format!("c.ord * 7 + {round} * 3"), &priorities),
        category = pick(&format!("c.ord * 11 + {round}"), &categories),
    );
    let categorise = "insert into case_categories (case_id, category, is_primary) \
         select case_id, primary_category, true from cases \
         where created_at >= $1 and created_at < $2 and reference like '%/%'";
    macro_rules! grow {
        ($pool:expr) => {{
            let pool = $pool;
            let before: i64 = sqlx::query_scalar("select count(*) from cases")
                .fetch_one(&pool)
                .await?;
            let (originals, low, high): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
                "select count(*), min(created_at), max(created_at) from cases \
                 where reference not like '%/%'",
            )
            .fetch_one(&pool)
            .await?;
            let (Some(low), Some(high)) = (low, high) else {
                return Err(LoadError::Setup(
                    "no cases to grow from: run intakes first".into(),
                ));
            };
            let places: i64 = sqlx::query_scalar("select count(*) from counties")
                .fetch_one(&pool)
                .await?;
            if places == 0 {
                return Err(LoadError::Setup("the directory has no counties".into()));
            }
            let span = high - low + 1;
            let mut count = before;
            // Rounds already copied are skipped: their references exist.
            let copied: i64 =
                sqlx::query_scalar("select count(*) from cases where reference like '%/%'")
                    .fetch_one(&pool)
                    .await?;
            // Only the last round can be partial; a new round starts after it.
            let mut round = (copied + originals - 1) / originals.max(1);
            while count < target {
                round += 1;
                let rows = (target - count).min(originals);
                let mut tx = pool.begin().await?;
                // Built from constants: the enums' stored names and fixed SQL.
                sqlx::query(sqlx::AssertSqlSafe(copy.clone()))
                    .bind(round)
                    .bind(span)
                    .bind(places)
                    .bind(rows)
                    .bind(low)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(categorise)
                    .bind(low - round * span)
                    .bind(high + 1 - round * span)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                count += rows;
            }
            if postgres {
                sqlx::query("analyze cases").execute(&pool).await?;
                sqlx::query("analyze case_categories")
                    .execute(&pool)
                    .await?;
            }
            let after: i64 = sqlx::query_scalar("select count(*) from cases")
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            Ok((before, after))
        }};
    }
    // Each round's statement takes seconds; that is expected, not worth a warning each.
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    if postgres {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?.disable_statement_logging();
        grow!(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?
        )
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .busy_timeout(Duration::from_secs(30))
            .disable_statement_logging();
        grow!(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?
        )
    }
}
