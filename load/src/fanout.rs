//! The fan-out mode: `--streams N` live streams held open while the intakes run, as a
//! province's call centres and every team's device would hold them.
//!
//! Half the streams are `StreamAssignments` for distinct teams, half `WatchCases` for a province
//! each (round the 31), or, with `--stream-kind national`, all are national `WatchCases`. Every
//! stream starts from now and waits for its first heartbeat (its starting point) before the
//! intakes begin. An event's delivery is timed from the moment this program got the
//! acknowledgement of the intake that wrote it: the server commits before it answers, so this
//! understates the commit-to-delivery time by the answer's trip over loopback (well under a
//! millisecond here), and an event that arrives before its acknowledgement counts as 0.
//!
//! When the intakes are done, every stream is read until a heartbeat says it is complete up to
//! the last event in the database, then each is replayed from its starting point (the server's
//! catch-up path, from the database) and the two lists must be equal: complete, in order, with
//! nothing twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use referrals::auth::{self, Keys, Role};
use referrals::grpc::auth::BearerToken;
use referrals::pb;
use referrals::pb::case_tracking_client::CaseTrackingClient;
use referrals::pb::dispatch_client::DispatchClient;

use crate::{LoadConfig, LoadError, histogram};

/// How long the memory figures wait after streams close.
const SETTLE: Duration = Duration::from_secs(12);

/// When each case's intake was acknowledged, by case id.
pub type Acks = Arc<Mutex<HashMap<String, Instant>>>;

/// What the streams watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamKind {
    /// Half assignments for distinct teams, half watches for a province each.
    Mixed,
    /// National watches: every stream reads every event.
    National,
}

/// What one stream asks for.
#[derive(Debug, Clone)]
enum Ask {
    Team(String),
    Province(String),
    National,
}

impl Ask {
    fn label(&self) -> &'static str {
        match self {
            Ask::Team(_) => "assignments (one team)",
            Ask::Province(_) => "watch (one province)",
            Ask::National => "watch (national)",
        }
    }
}

type Authed = InterceptedService<Channel, BearerToken>;

/// One message of either kind of stream, as far as the check needs it.
enum Seen {
    Event { sequence: i64, case_id: String },
    Heartbeat(i64),
}

/// An open stream of either kind.
enum Open {
    Assignments(tonic::Streaming<pb::StreamAssignmentsResponse>),
    Watch(tonic::Streaming<pb::WatchCasesResponse>),
}

impl Open {
    async fn open(channel: Authed, ask: &Ask, after: Option<i64>) -> Result<Self, tonic::Status> {
        match ask {
            Ask::Team(team) => {
                let request = pb::StreamAssignmentsRequest {
                    team_id: team.clone(),
                    after_sequence: after,
                };
                let stream = DispatchClient::new(channel)
                    .stream_assignments(request)
                    .await?;
                Ok(Open::Assignments(stream.into_inner()))
            }
            Ask::Province(_) | Ask::National => {
                let request = pb::WatchCasesRequest {
                    after_sequence: after,
                    ..pb::WatchCasesRequest::default()
                };
                let stream = CaseTrackingClient::new(channel)
                    .watch_cases(request)
                    .await?;
                Ok(Open::Watch(stream.into_inner()))
            }
        }
    }

    async fn next(&mut self) -> Result<Option<Seen>, tonic::Status> {
        use pb::stream_assignments_response::Message as A;
        use pb::watch_cases_response::Message as W;
        let event = |e: Option<pb::CaseEvent>| {
            let e = e.unwrap_or_default();
            Seen::Event {
                sequence: e.sequence,
                case_id: e.case_id,
            }
        };
        Ok(match self {
            Open::Assignments(stream) => stream.message().await?.map(|m| match m.message {
                Some(A::Update(update)) => event(update.event),
                Some(A::Heartbeat(beat)) => Seen::Heartbeat(beat.sequence),
                None => Seen::Heartbeat(-1),
            }),
            Open::Watch(stream) => stream.message().await?.map(|m| match m.message {
                Some(W::Event(e)) => event(Some(e)),
                Some(W::Heartbeat(beat)) => Seen::Heartbeat(beat.sequence),
                None => Seen::Heartbeat(-1),
            }),
        })
    }
}

/// What one stream received.
struct Record {
    sequences: Vec<i64>,
    latency: Histogram<u64>,
    before_ack: u64,
    out_of_order: u64,
    ended: Option<String>,
}

/// A stream held open in the background.
struct Held {
    ask: Ask,
    channel: Authed,
    /// Its starting point (the first heartbeat), then its latest heartbeat; -1 before.
    start: Arc<AtomicI64>,
    cursor: Arc<AtomicI64>,
    task: JoinHandle<Record>,
}

/// The streams of a run.
pub struct Fanout {
    held: Vec<Held>,
    stop: watch::Sender<bool>,
    /// The intakes' acknowledgements, filled by the intake tasks.
    pub acks: Acks,
    server: Option<Process>,
    rss_idle: Option<u64>,
    rss_open: Option<u64>,
    cpu_start: Option<f64>,
    client_cpu_start: Option<f64>,
    started: Instant,
}

/// Opens `config.streams` streams and waits until each has its starting point.
pub async fn open(config: &LoadConfig) -> Result<Fanout, LoadError> {
    let server = config.server_pid.map(Process);
    let rss_idle = server.as_ref().and_then(Process::rss);
    let keys = Keys::load(&config.data_dir)
        .map_err(|e| LoadError::Setup(e.to_string()))?
        .ok_or_else(|| {
            LoadError::Setup("no signing key: point --data-dir at the server's".into())
        })?;
    let connections = config
        .streams
        .div_ceil(config.streams_per_connection.max(1));
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(
            Endpoint::from_shared(config.target.clone())
                .map_err(|e| LoadError::Setup(e.to_string()))?
                .connect()
                .await
                .map_err(|e| LoadError::Setup(format!("cannot connect: {e}")))?,
        );
    }
    let acks: Acks = Arc::default();
    let (stop, stopping) = watch::channel(false);
    let mut held = Vec::new();
    for n in 0..config.streams {
        let ask = match config.stream_kind {
            StreamKind::National => Ask::National,
            StreamKind::Mixed if n % 2 == 0 => Ask::Team(format!("load-team-{n}")),
            StreamKind::Mixed => Ask::Province(format!("IR-{:02}", (n / 2) % 31)),
        };
        let claims = match &ask {
            Ask::Team(team) => auth::claims(
                team,
                Role::Team,
                "IR-23",
                None,
                Some(team.clone()),
                chrono::Utc::now(),
                Duration::from_secs(24 * 3600),
            ),
            Ask::Province(_) | Ask::National => auth::claims(
                &format!("load-watch-{n}"),
                Role::Supervisor,
                match &ask {
                    Ask::Province(province) => province,
                    _ => auth::ALL_PROVINCES,
                },
                None,
                None,
                chrono::Utc::now(),
                Duration::from_secs(24 * 3600),
            ),
        };
        let token = keys
            .issue(&claims)
            .map_err(|e| LoadError::Setup(e.to_string()))?;
        let bearer = BearerToken::new(&token)
            .ok_or_else(|| LoadError::Setup("the token is not a header value".into()))?;
        let channel = InterceptedService::new(channels[n % channels.len()].clone(), bearer);
        let stream = Open::open(channel.clone(), &ask, None)
            .await
            .map_err(|s| LoadError::Setup(format!("cannot open stream {n}: {s}")))?;
        let start = Arc::new(AtomicI64::new(-1));
        let cursor = Arc::new(AtomicI64::new(-1));
        let task = tokio::spawn(follow(
            stream,
            start.clone(),
            cursor.clone(),
            acks.clone(),
            stopping.clone(),
        ));
        held.push(Held {
            ask,
            channel,
            start,
            cursor,
            task,
        });
    }
    let waited = Instant::now();
    while held.iter().any(|h| h.start.load(Ordering::Acquire) < 0) {
        if waited.elapsed() > Duration::from_secs(120) {
            return Err(LoadError::Setup(
                "streams had no heartbeat within 2 minutes (start the server with a short --heartbeat-interval)".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_open = server.as_ref().and_then(Process::rss);
    if let (Some(every), Some(pid)) = (config.memory_every, config.server_pid) {
        tokio::spawn(sample_memory(Process(pid), every, stop.subscribe()));
    }
    println!(
        "streams: {} open over {} connection(s) ({}), each at its first heartbeat after {:.1} s",
        held.len(),
        connections,
        kinds(&held),
        waited.elapsed().as_secs_f64()
    );
    Ok(Fanout {
        held,
        stop,
        acks,
        rss_idle,
        rss_open,
        cpu_start: server.as_ref().and_then(Process::cpu_seconds),
        client_cpu_start: Process::own().cpu_seconds(),
        server,
        started: Instant::now(),
    })
}

fn kinds(held: &[Held]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for h in held {
        match counts.iter_mut().find(|(label, _)| *label == h.ask.label()) {
            Some((_, n)) => *n += 1,
            None => counts.push((h.ask.label(), 1)),
        }
    }
    counts
        .iter()
        .map(|(label, n)| format!("{n} {label}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn follow(
    mut stream: Open,
    start: Arc<AtomicI64>,
    cursor: Arc<AtomicI64>,
    acks: Acks,
    mut stop: watch::Receiver<bool>,
) -> Record {
    let mut record = Record {
        sequences: Vec::new(),
        latency: histogram(),
        before_ack: 0,
        out_of_order: 0,
        ended: None,
    };
    loop {
        let seen = tokio::select! {
            seen = stream.next() => seen,
            _ = stop.changed() => return record,
        };
        match seen {
            Ok(Some(Seen::Event { sequence, case_id })) => {
                let now = Instant::now();
                if record
                    .sequences
                    .last()
                    .is_some_and(|&last| sequence <= last)
                {
                    record.out_of_order += 1;
                }
                record.sequences.push(sequence);
                let acked = acks
                    .lock()
                    .ok()
                    .and_then(|acks| acks.get(&case_id).copied());
                match acked {
                    Some(at) => {
                        let _ = record
                            .latency
                            .record((now.saturating_duration_since(at).as_micros() as u64).max(1));
                    }
                    None => {
                        record.before_ack += 1;
                        let _ = record.latency.record(1);
                    }
                }
            }
            Ok(Some(Seen::Heartbeat(sequence))) => {
                if start.load(Ordering::Acquire) < 0 {
                    start.store(sequence, Ordering::Release);
                }
                cursor.store(sequence, Ordering::Release);
            }
            Ok(None) => {
                record.ended = Some("the server ended the stream".into());
                return record;
            }
            Err(status) => {
                record.ended = Some(format!("{:?}: {}", status.code(), status.message()));
                return record;
            }
        }
    }
}

impl Fanout {
    /// After the intakes: waits for every stream to reach the last event, checks each against a
    /// replay, closes them and prints what was measured.
    pub async fn finish(self, url: &str, replay: bool) -> Result<(), LoadError> {
        let elapsed = self.started.elapsed();
        let cpu_during = self
            .server
            .as_ref()
            .and_then(Process::cpu_seconds)
            .zip(self.cpu_start)
            .map(|(now, then)| (now - then) / elapsed.as_secs_f64());
        let client_cpu = Process::own()
            .cpu_seconds()
            .zip(self.client_cpu_start)
            .map(|(now, then)| (now - then) / elapsed.as_secs_f64());
        let rss_load = self.server.as_ref().and_then(Process::rss);
        let last = last_event(url).await?;
        let waited = Instant::now();
        while self
            .held
            .iter()
            .any(|h| h.cursor.load(Ordering::Acquire) < last && !h.task.is_finished())
        {
            if waited.elapsed() > Duration::from_secs(300) {
                return Err(LoadError::Setup(format!(
                    "streams did not reach event {last} within 5 minutes"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caught_up = waited.elapsed();
        let _ = self.stop.send(true);
        let mut records = Vec::new();
        for held in self.held {
            let record = held
                .task
                .await
                .map_err(|e| LoadError::Setup(e.to_string()))?;
            records.push((
                held.ask,
                held.channel,
                held.start.load(Ordering::Acquire),
                record,
            ));
        }
        // The streams are closed now; the server's allocator returns what they held within
        // about ten seconds.
        tokio::time::sleep(SETTLE).await;
        let rss_closed = self.server.as_ref().and_then(Process::rss);
        // Without the replay there is nothing to settle from a second time.
        let (complete, rss_checked) = if replay {
            let complete = check(&records, last).await;
            tokio::time::sleep(SETTLE).await;
            (complete, self.server.as_ref().and_then(Process::rss))
        } else {
            println!("streams: not replayed (--no-replay)");
            (Ok(()), rss_closed)
        };

        let mut latency = histogram();
        let (mut delivered, mut before_ack, mut out_of_order) = (0u64, 0u64, 0u64);
        let mut ended = Vec::new();
        for (ask, _, _, record) in &records {
            delivered += record.sequences.len() as u64;
            before_ack += record.before_ack;
            out_of_order += record.out_of_order;
            let _ = latency.add(&record.latency);
            if let Some(why) = &record.ended {
                ended.push(format!("{}: {why}", ask.label()));
            }
        }
        let n = records.len();
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "streams: {delivered} events delivered to {n} streams; commit-to-delivery (from the acknowledgement) p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {before_ack} arrived before their acknowledgement; all at event {last} {:.1} s after the intakes",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            latency.max() as f64 / 1000.0,
            caught_up.as_secs_f64(),
        );
        println!(
            "streams: {} of {n} {} from the database; {out_of_order} out of order; {} ended by the server{}",
            complete.as_ref().map_or(0, |_| n),
            if replay {
                "complete and in order against a replay"
            } else {
                "at the last event"
            },
            ended.len(),
            ended
                .first()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        if let Some(share) = cpu_during {
            println!(
                "server: CPU {:.0} % of one core while the intakes ran; this load program {} ({} cores here, shared with the database)",
                share * 100.0,
                client_cpu.map_or("?".to_owned(), |c| format!("{:.0} %", c * 100.0)),
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
        }
        let mib = |b: Option<u64>| {
            b.map_or("?".to_owned(), |b| {
                format!("{:.1} MiB", b as f64 / 1048576.0)
            })
        };
        println!(
            "server: RSS {} before the streams, {} with them open, {} at the end of the intakes, {} {} s after they closed, {} {} s after the check{}",
            mib(self.rss_idle),
            mib(self.rss_open),
            mib(rss_load),
            mib(rss_closed),
            SETTLE.as_secs(),
            mib(rss_checked),
            SETTLE.as_secs(),
            match (self.rss_idle, self.rss_open) {
                (Some(idle), Some(open)) if n > 0 => format!(
                    "; {:.1} KiB per open stream",
                    open.saturating_sub(idle) as f64 / 1024.0 / n as f64
                ),
                _ => String::new(),
            }
        );
        match complete {
            Ok(()) if ended.is_empty() && out_of_order == 0 => Ok(()),
            Ok(()) => Err(LoadError::Setup(format!(
                "stream check FAILED: {} ended by the server, {out_of_order} out of order",
                ended.len()
            ))),
            Err(why) => Err(LoadError::Setup(format!("stream check FAILED: {why}"))),
        }
    }
}

/// Replays every stream from its starting point up to `last` and compares, 100 at a time.
async fn check(records: &[(Ask, Authed, i64, Record)], last: i64) -> Result<(), String> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    for (index, (ask, channel, start, record)) in records.iter().enumerate() {
        let (ask, channel, start) = (ask.clone(), channel.clone(), *start);
        let live = record.sequences.clone();
        let semaphore = semaphore.clone();
        tasks.push(tokio::spawn(async move {
            let _turn = semaphore.acquire().await;
            let mut stream = Open::open(channel, &ask, Some(start))
                .await
                .map_err(|s| format!("stream {index}: the replay did not open: {s}"))?;
            let mut replayed = Vec::new();
            loop {
                match stream.next().await {
                    Ok(Some(Seen::Event { sequence, .. })) => replayed.push(sequence),
                    Ok(Some(Seen::Heartbeat(sequence))) if sequence >= last => break,
                    Ok(Some(Seen::Heartbeat(_))) => {}
                    Ok(None) => return Err(format!("stream {index}: the replay ended")),
                    Err(s) => return Err(format!("stream {index}: the replay failed: {s}")),
                }
            }
            if replayed == live {
                Ok(())
            } else {
                Err(format!(
                    "stream {index} ({}): {} events live, {} in the replay",
                    ask.label(),
                    live.len(),
                    replayed.len()
                ))
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn last_event(url: &str) -> Result<i64, LoadError> {
    crate::scalar(url, "select coalesce(max(event_id), 0) from events").await
}

/// Prints the server's resident memory every `every` until `stop`, with its growth since the
/// first sample.
async fn sample_memory(server: Process, every: Duration, mut stop: watch::Receiver<bool>) {
    let started = Instant::now();
    let mut first = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let Some(rss) = server.rss() else { return };
        let first = *first.get_or_insert(rss);
        println!(
            "memory: {:>5.0} s: server RSS {:.1} MiB ({:+.1} MiB since the first sample)",
            started.elapsed().as_secs_f64(),
            rss as f64 / 1048576.0,
            (rss as f64 - first as f64) / 1048576.0
        );
    }
}

/// A process, read from `/proc`: the server's, or this program's own.
struct Process(u32);

impl Process {
    fn own() -> Self {
        Process(std::process::id())
    }

    /// Resident memory in bytes.
    fn rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// User and system CPU time so far, in seconds.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }
}
