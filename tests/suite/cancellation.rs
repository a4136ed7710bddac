//! A request the client gives up on never leaves a transaction open or loses a write: the real
//! binary is hammered with reads, changes and intakes whose deadlines run out after a few hundred
//! microseconds to a few milliseconds — thousands of requests dropped at every point of their
//! way through the server — interleaved with requests that must all succeed. Then the server's
//! log and PostgreSQL's hold no "transaction in progress" notice, no connection is left idle in
//! a transaction, every acknowledged intake and note is there, the audit trail holds one entry
//! for every answered request and none twice, and the hash chains verify.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use referrals::pb::case_tracking_client::CaseTrackingClient;
use referrals::pb::emergency_intake_client::EmergencyIntakeClient;
use referrals::pb::{AddNoteRequest, GetCaseRequest, GetTimelineRequest, ListCasesRequest};
use sqlx::Connection;
use tonic::Code;

use crate::common::fixtures::emergency;
use crate::common::rng::Rng;
use crate::common::{Authed, Backend, Bearer, TestDb};

const BINARY: &str = env!("CARGO_BIN_EXE_referrals");

/// Requests sent with a deadline that may run out, per backend.
const CANCELLED_REQUESTS: usize = 3_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// The notices PostgreSQL sends (and sqlx logs) when a connection comes back to the pool inside
/// a transaction, or when a rollback meant for one lands outside it.
const TRANSACTION_NOTICES: [&str; 2] = [
    "there is already a transaction in progress",
    "there is no transaction in progress",
];

/// The real binary, serving on an ephemeral port, its log kept for the test to read.
struct Served {
    /// Taken when the test stops it; a test that fails first kills it on drop.
    child: Option<Child>,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Served {
    fn start(db: &TestDb) -> Self {
        let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/seed/directory.toml");
        let mut child = Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--log", "info"])
            .args(["--database-url", &db.url, "--seed-directory", seed])
            .arg("--data-dir")
            .arg(db.dir.path())
            // One caller sends everything here; its rate limit is not what is tested.
            .args(["--rate-limit", "1000000", "--rate-burst", "1000000"])
            .env_remove("DATABASE_URL")
            .env_remove("REFERRALS_DATA_DIR")
            .stderr(Stdio::piped())
            .spawn()
            .expect("referrals starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && event["fields"]["message"] == "serving"
                {
                    let listen = event["fields"]["listen"].as_str().unwrap_or_default();
                    let _ = address_tx.send(listen.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {:?}", log.lock().unwrap()));
        Self {
            child: Some(child),
            address,
            log,
            reader: Some(reader),
        }
    }

    async fn channel(&self, token: &str) -> Authed {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .expect("connect");
        tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(token))
    }

    /// Stops the server with SIGTERM and returns its log.
    async fn stop(mut self) -> Vec<String> {
        let mut child = self.child.take().expect("running");
        let reader = self.reader.take().expect("log reader");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = tokio::task::spawn_blocking(move || {
            let status = child.wait();
            reader.join().expect("log reader");
            status
        })
        .await
        .unwrap()
        .expect("wait");
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "exit status {status}; log: {log:#?}");
        log
    }
}

/// What one request was and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    GetCase,
    GetTimeline,
    ListCases,
    AddNote,
    Intake,
}

#[derive(Debug)]
enum Outcome {
    /// The server answered OK.
    Answered(Answer),
    /// The server answered with this code.
    Refused(Code),
    /// The client gave up before any answer came.
    GaveUp,
}

#[derive(Debug)]
enum Answer {
    Read,
    Note { case_id: String, note_id: String },
    Intake { request_id: String, case_id: String },
}

struct Client {
    cases: CaseTrackingClient<Authed>,
    intake: EmergencyIntakeClient<Authed>,
}

fn request<T>(message: T, request_id: &str, deadline: Option<Duration>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    request
}

impl Client {
    /// Sends one request of `kind`; with a deadline, the client also drops the call itself when
    /// it runs out, so the server sees the stream reset wherever the request then is.
    async fn send(
        &mut self,
        kind: Kind,
        request_id: &str,
        case_id: &str,
        deadline: Option<Duration>,
    ) -> Outcome {
        let call = async {
            match kind {
                Kind::GetCase => self
                    .cases
                    .get_case(request(
                        GetCaseRequest {
                            case_id: case_id.into(),
                        },
                        request_id,
                        deadline,
                    ))
                    .await
                    .map(|_| Answer::Read),
                Kind::GetTimeline => self
                    .cases
                    .get_timeline(request(
                        GetTimelineRequest {
                            case_id: case_id.into(),
                        },
                        request_id,
                        deadline,
                    ))
                    .await
                    .map(|_| Answer::Read),
                Kind::ListCases => self
                    .cases
                    .list_cases(request(
                        ListCasesRequest {
                            page_size: 20,
                            ..Default::default()
                        },
                        request_id,
                        deadline,
                    ))
                    .await
                    .map(|_| Answer::Read),
                Kind::AddNote => self
                    .cases
                    .add_note(request(
                        AddNoteRequest {
                            case_id: case_id.into(),
                            text: format!("note {request_id}"),
                            expected_version: 0,
                            ..Default::default()
                        },
                        request_id,
                        deadline,
                    ))
                    .await
                    .map(|response| Answer::Note {
                        case_id: case_id.into(),
                        note_id: response.into_inner().note_id,
                    }),
                Kind::Intake => self
                    .intake
                    .report_emergency(request(emergency(request_id), request_id, deadline))
                    .await
                    .map(|response| Answer::Intake {
                        request_id: request_id.into(),
                        case_id: response.into_inner().receipt.unwrap().case_id,
                    }),
            }
        };
        let answered = match deadline {
            Some(deadline) => match tokio::time::timeout(deadline, call).await {
                Ok(answered) => answered,
                Err(_) => return Outcome::GaveUp,
            },
            None => call.await,
        };
        match answered {
            Ok(answer) => Outcome::Answered(answer),
            Err(status) => Outcome::Refused(status.code()),
        }
    }
}

/// Reads one text column of every row a query returns, on a connection of the test's own.
async fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
        }
    }
}

async fn cancelled_requests_leave_no_transaction_open_and_lose_no_write(backend: Backend) {
    let db = TestDb::new(backend).await;
    let token = crate::common::token_for(
        db.dir.path(),
        "supervisor-national",
        referrals::auth::Role::Supervisor,
        "all",
        None,
    );
    let served = Served::start(&db);
    let channel = served.channel(&token).await;
    let mut client = Client {
        cases: CaseTrackingClient::new(channel.clone()),
        intake: EmergencyIntakeClient::new(channel.clone()),
    };

    // Cases to read and write notes on.
    let mut cases = Vec::new();
    for n in 0..8 {
        match client
            .send(Kind::Intake, &format!("seed-{n}"), "", None)
            .await
        {
            Outcome::Answered(Answer::Intake { case_id, .. }) => cases.push(case_id),
            other => panic!("a seed intake failed: {other:?}"),
        }
    }
    let cases = Arc::new(cases);

    let seed: u64 = std::env::var("CANCELLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1480_0123);
    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let mut client = Client {
            cases: CaseTrackingClient::new(channel.clone()),
            intake: EmergencyIntakeClient::new(channel.clone()),
        };
        let cases = cases.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ (worker as u64).wrapping_mul(0x1000_0001));
            let mut sent = Vec::new();
            for i in 0..CANCELLED_REQUESTS / CONCURRENCY {
                let kind = match rng.below(10) {
                    0..=2 => Kind::GetCase,
                    3..=4 => Kind::GetTimeline,
                    5..=6 => Kind::ListCases,
                    7..=8 => Kind::AddNote,
                    _ => Kind::Intake,
                };
                // One request in five is an ordinary one that must succeed; the rest give up
                // after 200 µs to 5 ms.
                let deadline = (rng.below(5) != 0)
                    .then(|| Duration::from_micros(200 + rng.below(4_800) as u64));
                let case_id = &cases[rng.below(cases.len())];
                let request_id = format!("c-{worker}-{i}");
                let outcome = client.send(kind, &request_id, case_id, deadline).await;
                sent.push((request_id, kind, deadline, outcome));
            }
            sent
        }));
    }
    let mut sent = Vec::new();
    for worker in workers {
        sent.extend(worker.await.expect("worker"));
    }

    let mut tally: BTreeMap<(Kind, String), usize> = BTreeMap::new();
    let mut answered_ids = HashSet::new();
    let mut acknowledged_intakes = HashMap::new();
    let mut acknowledged_notes: HashMap<String, Vec<String>> = HashMap::new();
    let mut intakes_sent = Vec::new();
    for (request_id, kind, deadline, outcome) in &sent {
        if *kind == Kind::Intake {
            intakes_sent.push(request_id.clone());
        }
        let label = match outcome {
            Outcome::Answered(_) => "ok".to_owned(),
            Outcome::Refused(code) => format!("{code:?}"),
            Outcome::GaveUp => "gave up".to_owned(),
        };
        *tally.entry((*kind, label)).or_default() += 1;
        match outcome {
            Outcome::Answered(answer) => {
                // A list is audited only when refused; a read of a case, a change and an
                // intake always.
                if *kind != Kind::ListCases {
                    answered_ids.insert(request_id.clone());
                }
                match answer {
                    Answer::Read => {}
                    Answer::Note { case_id, note_id } => acknowledged_notes
                        .entry(case_id.clone())
                        .or_default()
                        .push(note_id.clone()),
                    Answer::Intake {
                        request_id,
                        case_id,
                    } => {
                        acknowledged_intakes.insert(request_id.clone(), case_id.clone());
                    }
                }
            }
            // A deadline that ran out, on either side, is what this test sends; anything
            // else (INTERNAL above all) is a fault.
            Outcome::Refused(Code::DeadlineExceeded | Code::Cancelled) if deadline.is_some() => {}
            Outcome::Refused(code) => {
                panic!("{kind:?} {request_id} (deadline {deadline:?}) was refused with {code:?}")
            }
            Outcome::GaveUp => assert!(deadline.is_some()),
        }
    }
    eprintln!("{backend:?}: outcomes by kind: {tally:?}");
    let gave_up = sent
        .iter()
        .filter(|(_, _, _, outcome)| !matches!(outcome, Outcome::Answered(_)))
        .count();
    assert!(
        gave_up >= CANCELLED_REQUESTS / 2,
        "too few requests were cut short ({gave_up}) for the test to mean anything"
    );

    // After the storm, ordinary requests of every kind still succeed: no connection of the pool
    // is stuck inside someone else's transaction.
    for (n, kind) in [
        Kind::GetCase,
        Kind::GetTimeline,
        Kind::ListCases,
        Kind::AddNote,
        Kind::Intake,
    ]
    .into_iter()
    .cycle()
    .take(100)
    .enumerate()
    {
        let request_id = format!("after-{n}");
        match client
            .send(kind, &request_id, &cases[n % cases.len()], None)
            .await
        {
            Outcome::Answered(answer) => {
                if kind != Kind::ListCases {
                    answered_ids.insert(request_id);
                }
                if let Answer::Note { case_id, note_id } = answer {
                    acknowledged_notes.entry(case_id).or_default().push(note_id);
                }
            }
            other => panic!("{kind:?} after the cancellations: {other:?}"),
        }
    }

    // Every acknowledged intake is there: retried without a deadline, each request id comes
    // back with the case it was acknowledged with (the others are recorded now, once).
    for request_id in &intakes_sent {
        let retried = client
            .intake
            .report_emergency(request(
                emergency(request_id),
                &format!("retry-{request_id}"),
                None,
            ))
            .await
            .unwrap_or_else(|status| panic!("retry of {request_id}: {status:?}"))
            .into_inner()
            .receipt
            .unwrap()
            .case_id;
        if let Some(acknowledged) = acknowledged_intakes.get(request_id) {
            assert_eq!(
                &retried, acknowledged,
                "{request_id} came back as another case"
            );
        }
    }
    // Every acknowledged note is on its case.
    for (case_id, notes) in &acknowledged_notes {
        let case = client
            .cases
            .get_case(GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await
            .expect("read a case")
            .into_inner()
            .case
            .unwrap();
        let stored: HashSet<_> = case.notes.iter().map(|n| n.note_id.clone()).collect();
        for note in notes {
            assert!(stored.contains(note), "acknowledged note {note} is missing");
        }
    }

    // The audit trail: one entry for every answered read of a case, change and intake, none
    // twice, none made up. (A request cut short after its entry was written has one too: its
    // work was done.)
    let trail = texts(
        &db,
        "select request_id from audit_log where request_id like 'c-%' or request_id like 'after-%'",
    )
    .await;
    let mut seen = HashSet::new();
    for request_id in &trail {
        assert!(
            seen.insert(request_id),
            "{request_id} is on the trail twice"
        );
    }
    let sent_ids: HashSet<_> = sent.iter().map(|(id, ..)| id.clone()).collect();
    for request_id in &answered_ids {
        assert!(
            seen.contains(request_id),
            "answered {request_id} is not on the audit trail"
        );
    }
    for request_id in &seen {
        assert!(
            sent_ids.contains(*request_id) || request_id.starts_with("after-"),
            "{request_id} on the trail was never sent"
        );
    }

    if backend == Backend::Postgres {
        // The pool is back to its normal state: no connection idle inside a transaction, and no
        // more connections than the pool may hold (16) plus the event listener.
        let query = format!(
            "select state from pg_stat_activity where datname = '{}' and pid <> pg_backend_pid()",
            db.name()
        );
        let states = texts(&db, &query).await;
        assert!(
            !states.iter().any(|s| s.starts_with("idle in transaction")),
            "connections left inside a transaction: {states:?}"
        );
        assert!(states.len() <= 17, "the pool grew: {states:?}");
    }

    let log = served.stop().await;
    for notice in TRANSACTION_NOTICES {
        let found: Vec<_> = log.iter().filter(|l| l.contains(notice)).collect();
        assert!(found.is_empty(), "the server logged {notice:?}: {found:#?}");
    }
    assert!(
        !log.iter().any(|l| l.contains("panicked")),
        "the server panicked: {log:#?}"
    );
    // PostgreSQL's own log, when the test script says where it is (its lines name the database).
    if backend == Backend::Postgres
        && let Ok(path) = std::env::var("TEST_PG_LOG")
    {
        let text = std::fs::read_to_string(&path).expect("PostgreSQL's log");
        let found: Vec<_> = text
            .lines()
            .filter(|l| l.contains(db.name()) && TRANSACTION_NOTICES.iter().any(|n| l.contains(n)))
            .collect();
        assert!(found.is_empty(), "PostgreSQL logged: {found:#?}");
    }

    let verified = Command::new(BINARY)
        .args(["audit", "verify", "--database-url", &db.url])
        .arg("--data-dir")
        .arg(db.dir.path())
        .output()
        .expect("audit verify runs");
    assert!(verified.status.success(), "{verified:?}");
    db.drop_database().await;
}

backend_tests!(cancelled_requests_leave_no_transaction_open_and_lose_no_write);
