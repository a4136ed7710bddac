//! The server as operators see it: health, reflection, durability checks, graceful shutdown.

use std::time::Duration;

use crate::common::fixtures::{emergency, hotline};
use crate::common::{Backend, TestDb, TestServer, config, serving_intake_health, wait_for_health};
use referrals::ServeError;
use referrals::pb::GetCaseRequest;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const SERVICES: [&str; 5] = [
    "",
    "referral.v1.HotlineIntake",
    "referral.v1.EmergencyIntake",
    "referral.v1.CaseTracking",
    "referral.v1.Directory",
];

async fn health_reports_serving_for_every_service(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut health = HealthClient::new(server.channel());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    wait_for(&mut watch, ServingStatus::Serving).await;
    for service in SERVICES {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect(service)
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "referral.v1.Nothing".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Shutdown turns health NOT_SERVING before the server goes.
    let mut shutting_down = TestServer::start_on(TestDb::new(backend).await, |_| {}).await;
    let mut watch = HealthClient::new(shutting_down.channel())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    wait_for(&mut watch, ServingStatus::Serving).await;
    shutting_down.signal_shutdown();
    wait_for(&mut watch, ServingStatus::NotServing).await;
    // The watch then ends, as the server's other streams do, and holds nothing up: the server
    // is gone well inside its shutdown grace (3 s in the suite) with the watch still held.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(1), watch.message())
        .await
        .expect("the health watch ends within a second of shutdown");
    let status = ended.expect_err("the watch ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let started = std::time::Instant::now();
    shutting_down.finish().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the server took {:?} to stop with a health watch open",
        started.elapsed()
    );
    drop(watch);
    server.finish().await;
}

/// Reads a health watch stream until it reports `wanted`, for at most 20 seconds.
async fn wait_for(watch: &mut tonic::Streaming<HealthCheckResponse>, wanted: ServingStatus) {
    wait_for_health(watch, wanted, Duration::from_secs(20)).await;
}

/// The PostgreSQL database goes away (connections refused and cut), then comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_health_is_not_serving_while_the_database_is_unreachable() {
    let server = TestServer::start(Backend::Postgres).await;
    let mut watch = serving_intake_health(&server).await;

    let name = server.db.name().to_owned();
    server
        .db
        .admin(format!("alter database {name} allow_connections false"))
        .await;
    server
        .db
        .admin(format!(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'"
        ))
        .await;
    wait_for(&mut watch, ServingStatus::NotServing).await;
    let refused = server
        .emergency()
        .report_emergency(emergency("outage-1"))
        .await;
    assert!(
        refused.is_err(),
        "no intake is acknowledged while the database is away"
    );

    server
        .db
        .admin(format!("alter database {name} allow_connections true"))
        .await;
    wait_for(&mut watch, ServingStatus::Serving).await;
    server
        .emergency()
        .report_emergency(emergency("outage-1"))
        .await
        .expect("intake works again once the database is back");
    server.finish().await;
}

/// The database cuts the server's connections between two intakes (a restart, an idle timeout,
/// an administrator): the next intake is recorded at once, on a new connection, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_intake_after_the_connections_were_cut_is_recorded_at_once() {
    let server = TestServer::start(Backend::Postgres).await;
    server
        .emergency()
        .report_emergency(emergency("before-cut"))
        .await
        .expect("recorded");
    let name = server.db.name().to_owned();
    server
        .db
        .admin(format!(
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where datname = '{name}' and pid <> pg_backend_pid()"
        ))
        .await;
    for n in 0..3 {
        server
            .emergency()
            .report_emergency(emergency(&format!("after-cut-{n}")))
            .await
            .expect("an intake after the connections were cut is recorded");
    }
    assert_eq!(server.db.count("cases").await, 4);
    server.finish().await;
}

/// The database turns read-only (a demoted primary, a proxy switched early during failover):
/// intakes are UNAVAILABLE, never INTERNAL, and health turns NOT_SERVING, since its probe is a
/// commit, not `select 1`; both come back when writes do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_only_database_is_unavailable_and_not_serving() {
    let server = TestServer::start(Backend::Postgres).await;
    let mut watch = serving_intake_health(&server).await;

    let name = server.db.name().to_owned();
    let reconnect =
        format!("select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'");
    server
        .db
        .admin(format!(
            "alter database {name} set default_transaction_read_only = on"
        ))
        .await;
    // The server's connections are made again, read-only now.
    server.db.admin(reconnect.clone()).await;
    wait_for(&mut watch, ServingStatus::NotServing).await;
    for n in 0..10 {
        let refused = server
            .emergency()
            .report_emergency(emergency(&format!("read-only-{n}")))
            .await
            .expect_err("no intake is acknowledged while the database takes no writes");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        use tonic_types::StatusExt;
        let retry = refused.get_error_details().retry_info().cloned();
        assert_eq!(
            retry.and_then(|info| info.retry_delay),
            Some(std::time::Duration::from_secs(1)),
            "{refused:?}"
        );
    }

    server
        .db
        .admin(format!(
            "alter database {name} reset default_transaction_read_only"
        ))
        .await;
    server.db.admin(reconnect).await;
    wait_for(&mut watch, ServingStatus::Serving).await;
    server
        .emergency()
        .report_emergency(emergency("read-only-0"))
        .await
        .expect("intake works again once writes do");
    server.finish().await;
}

async fn reflection_lists_every_service_in_both_versions(backend: Backend) {
    use tonic_reflection::pb::{v1, v1alpha};
    let server = TestServer::start(backend).await;
    let expected = [
        "grpc.health.v1.Health",
        "referral.v1.CaseTracking",
        "referral.v1.Directory",
        "referral.v1.EmergencyIntake",
        "referral.v1.HotlineIntake",
    ];

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(server.authed());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection")
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in expected {
        assert!(
            names.iter().any(|n| n == service),
            "v1 lists {service}: {names:?}"
        );
    }

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.authed());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "referral.v1.HotlineIntake".into(),
            ),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let response = answers.next().await.unwrap().unwrap().message_response;
    assert!(
        matches!(
            response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f))
                if !f.file_descriptor_proto.is_empty()
        ),
        "v1alpha describes the intake service: {response:?}"
    );
    server.finish().await;
}

/// Runs the server on `url` and returns how it ended, stopping it at once if it did start.
async fn start_and_stop(url: &str, allow_weak: bool) -> Result<(), ServeError> {
    let mut config = config(url);
    config.allow_weak_durability = allow_weak;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    referrals::run(config, listener, async {}).await
}

#[tokio::test]
async fn sqlite_in_memory_is_refused_unless_explicitly_allowed() {
    let refused = start_and_stop("sqlite::memory:", false)
        .await
        .expect_err("refused");
    let message = refused.report();
    assert!(message.contains("journal_mode is memory"), "{message}");
    assert!(message.contains("--allow-weak-durability"), "{message}");
    start_and_stop("sqlite::memory:", true)
        .await
        .expect("allowed with the flag");
}

#[tokio::test]
async fn sqlite_runs_with_wal_and_full_synchronous() {
    let db = TestDb::new(Backend::Sqlite).await;
    start_and_stop(&db.url, false)
        .await
        .expect("durable settings");
    // WAL mode is a property of the file itself; it persists after the server is gone.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let journal: String = sqlx::query_scalar("pragma journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
}

#[tokio::test]
async fn postgres_with_synchronous_commit_off_is_refused_unless_explicitly_allowed() {
    let db = TestDb::new(Backend::Postgres).await;
    db.admin(format!(
        "alter database {} set synchronous_commit = off",
        db.name()
    ))
    .await;
    let refused = start_and_stop(&db.url, false).await.expect_err("refused");
    assert!(
        refused.to_string().contains("synchronous_commit is off"),
        "{refused}"
    );
    start_and_stop(&db.url, true)
        .await
        .expect("allowed with the flag");
    db.drop_database().await;
}

async fn shutdown_loses_no_acknowledged_intake(backend: Backend) {
    let server = TestServer::start(backend).await;
    // Make sure the server is up, then race 30 intakes against the shutdown signal.
    server
        .hotline()
        .submit_referral(hotline("warm-up"))
        .await
        .unwrap();
    let submissions: Vec<_> = (0..30)
        .map(|i| {
            let mut client = server.emergency();
            tokio::spawn(async move {
                client
                    .report_emergency(emergency(&format!("race-{i}")))
                    .await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    let db = server.stop().await;
    let acknowledged: Vec<String> = futures::future::join_all(submissions)
        .await
        .into_iter()
        .filter_map(|r| r.expect("task").ok())
        .map(|r| r.into_inner().receipt.unwrap().case_id)
        .collect();

    let server = TestServer::start_on(db, |_| {}).await;
    for case_id in &acknowledged {
        server
            .cases()
            .get_case(GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged case {case_id} lost: {e}"));
    }
    assert_eq!(
        server.db.count("cases").await,
        acknowledged.len() as i64 + 1
    );
    server.finish().await;
}

/// Holds the database's write lock from outside the service, as a stalled commit does (on
/// PostgreSQL the only synchronous standby gone; here a lock on the tables every write takes):
/// writes wait, and nothing fails.
enum Stall {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Stall {
    async fn begin(db: &TestDb) -> Self {
        use sqlx::Connection;
        match db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query("begin immediate")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Self::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.owner_url).await.unwrap();
                sqlx::query("begin").execute(&mut conn).await.unwrap();
                sqlx::query("lock table sequences, health_probe in exclusive mode")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Self::Postgres(conn)
            }
        }
    }

    async fn end(self) {
        match self {
            Self::Sqlite(mut conn) => {
                sqlx::query("rollback").execute(&mut conn).await.unwrap();
            }
            Self::Postgres(mut conn) => {
                sqlx::query("rollback").execute(&mut conn).await.unwrap();
            }
        }
    }
}

/// Commits stall: the intake in flight is answered UNAVAILABLE within the stated bound (2 s),
/// health turns NOT_SERVING within about a second, and from then on every request is refused
/// at once, with RetryInfo, its refusal audited once the database is back. When the stall
/// ends, health is SERVING again within about a second, the intake that was waiting stands,
/// and its retry gets the original receipt.
async fn a_stalled_database_is_refused_fast_and_health_follows(backend: Backend) {
    use std::time::Instant;
    use tonic_types::StatusExt;
    let server = TestServer::start(backend).await;
    let mut watch = serving_intake_health(&server).await;
    let recorded = server.report(emergency("before-the-stall")).await;

    let stall = Stall::begin(&server.db).await;
    let started = Instant::now();
    let waited = server
        .emergency()
        .report_emergency(emergency("during-the-stall"))
        .await
        .expect_err("a commit that does not complete is not acknowledged");
    let bound = started.elapsed();
    assert_eq!(waited.code(), tonic::Code::Unavailable, "{waited:?}");
    assert!(
        bound < Duration::from_millis(2900),
        "answered after {bound:?}"
    );
    assert!(
        bound >= Duration::from_millis(900),
        "answered after {bound:?}"
    );
    tokio::time::timeout(
        Duration::from_secs(2),
        wait_for(&mut watch, ServingStatus::NotServing),
    )
    .await
    .expect("NOT_SERVING within about a second of the stall");

    // Known unreachable: refused at once, intakes and reads alike.
    for n in 0..5 {
        let started = Instant::now();
        let refused = server
            .emergency()
            .report_emergency(emergency(&format!("refused-{n}")))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(refused.get_error_details().retry_info().is_some());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let read = server
        .cases()
        .get_case(referrals::pb::GetCaseRequest {
            case_id: recorded.case_id.clone(),
        })
        .await
        .expect_err("no read while the database cannot store its audit entry");
    assert_eq!(read.code(), tonic::Code::Unavailable, "{read:?}");
    assert!(started.elapsed() < Duration::from_millis(500));

    stall.end().await;
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(2),
        wait_for(&mut watch, ServingStatus::Serving),
    )
    .await
    .expect("SERVING within about a second of the stall's end");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The intake that waited was committed when the lock went: its retry is a replay.
    let retried = server.report(emergency("during-the-stall")).await;
    assert!(retried.replayed, "{retried:?}");
    // The refusals were audited once the database was back.
    let mut audited = 0;
    for _ in 0..50 {
        audited = server
            .db
            .count("audit_log where outcome = 'unavailable'")
            .await;
        if audited >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(audited >= 6, "{audited} refusals audited");
    server.finish().await;
}

backend_tests!(
    a_stalled_database_is_refused_fast_and_health_follows,
    health_reports_serving_for_every_service,
    reflection_lists_every_service_in_both_versions,
    shutdown_loses_no_acknowledged_intake,
);

/// SQLite goes on writing to a database file deleted while open, and loses it all at the next
/// start: a missing file is an unreachable database, and no intake is acknowledged into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_health_is_not_serving_when_the_database_file_is_gone() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut watch = HealthClient::new(server.channel())
        .watch(HealthCheckRequest {
            service: "referral.v1.HotlineIntake".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    wait_for(&mut watch, ServingStatus::Serving).await;
    server
        .hotline()
        .submit_referral(hotline("before"))
        .await
        .unwrap();

    let file = server.db.dir.path().join("referrals.db");
    let moved = server.db.dir.path().join("referrals.db.moved");
    std::fs::rename(&file, &moved).unwrap();
    wait_for(&mut watch, ServingStatus::NotServing).await;
    let refused = server
        .hotline()
        .submit_referral(hotline("while-gone"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);

    std::fs::rename(&moved, &file).unwrap();
    wait_for(&mut watch, ServingStatus::Serving).await;
    server
        .hotline()
        .submit_referral(hotline("while-gone"))
        .await
        .expect("accepted once the file is back");
    drop(watch);
    server.finish().await;
}

/// Two servers started together with --migrate on a new SQLite file both come up: the one that
/// loses the race to migrate finds the migrations applied and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_starting_together_on_a_new_sqlite_file_both_serve() {
    let db = TestDb::unmigrated(Backend::Sqlite).await;
    let other = db.same_database();
    let (first, second) = tokio::join!(
        TestServer::start_on(db, |c| c.migrate = true),
        TestServer::start_on(other, |c| c.migrate = true),
    );
    let (mut to_first, mut to_second) = (first.hotline(), second.hotline());
    let (a, b) = tokio::join!(
        to_first.submit_referral(hotline("together-1")),
        to_second.submit_referral(hotline("together-2")),
    );
    a.expect("first server serves");
    b.expect("second server serves");
    assert_eq!(first.db.count("cases").await, 2);
    second.stop().await;
    first.finish().await;
}
