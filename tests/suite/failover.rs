//! Replicated PostgreSQL: a primary and its synchronous streaming standby (two throwaway
//! clusters that scripts/test starts), the service given both hosts in one URL.
//!
//! - `synchronous_commit=local` there is refused at start as weak durability.
//! - The standby goes away, so the primary's commits wait for it: the intake in flight is
//!   answered UNAVAILABLE within 2 s, health turns NOT_SERVING, and all is well again when the
//!   standby is back (the intake that waited stands).
//! - With intakes flowing, the primary is killed and the standby promoted: the service finds
//!   the new primary by itself and serves again within the stated bound, clients see only
//!   UNAVAILABLE meanwhile, and every intake it acknowledged is on the promoted node.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::common::fixtures::emergency;
use crate::common::{TestDb, TestServer, wait_for_health};

/// How soon after the promotion the service serves again: its health check runs every 500 ms
/// and, on a failure, probes every host for 1 s at most.
const BACK_WITHIN: Duration = Duration::from_secs(3);

/// Waits, on a new watch, until health reports `wanted`; returns how long it took.
async fn wait_for(server: &TestServer, wanted: ServingStatus, within: Duration) -> Duration {
    let mut watch = HealthClient::new(server.channel())
        .watch(HealthCheckRequest {
            service: "referral.v1.EmergencyIntake".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    wait_for_health(&mut watch, wanted, within).await
}

fn ctl(what: &str) {
    let script = std::env::var("TEST_PG_PAIR_CTL").unwrap();
    let status = std::process::Command::new(&script)
        .arg(what)
        .status()
        .expect("run the pair's control script");
    assert!(status.success(), "{script} {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_postgres_refuses_local_commits_rides_out_a_lost_standby_and_fails_over() {
    let Ok(pair) = std::env::var("TEST_PG_PAIR_URL") else {
        eprintln!(
            "skipped: TEST_PG_PAIR_URL is not set (scripts/test starts a primary and a \
             synchronous standby for this test)"
        );
        return;
    };
    let db = TestDb::replicated(&pair).await;
    let standby = {
        let (scheme, rest) = db.owner_url.split_once("://").unwrap();
        let (user, rest) = rest.split_once('@').unwrap();
        let (hosts, path) = rest.split_at(rest.find('/').unwrap());
        let second = hosts.split(',').nth(1).unwrap();
        format!("{scheme}://{user}@{second}{path}")
    };

    // A local commit is acknowledged before the standby has it: refused at start.
    db.admin(format!(
        "alter database {} set synchronous_commit = local",
        db.name()
    ))
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = referrals::run(crate::common::config(&db.url), listener, async {})
        .await
        .expect_err("weak durability is refused");
    assert!(
        refused
            .to_string()
            .contains("synchronous_commit is local while synchronous standbys are configured"),
        "{refused}"
    );
    db.admin(format!(
        "alter database {} reset synchronous_commit",
        db.name()
    ))
    .await;

    let server = TestServer::start_on(db, |_| {}).await;
    wait_for(&server, ServingStatus::Serving, Duration::from_secs(5)).await;

    // The only synchronous standby goes away: commits wait for it.
    ctl("stop-standby");
    let started = Instant::now();
    let waited = server
        .emergency()
        .report_emergency(emergency("stalled"))
        .await
        .expect_err("not acknowledged while its commit waits");
    assert_eq!(waited.code(), tonic::Code::Unavailable, "{waited:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
    wait_for(&server, ServingStatus::NotServing, Duration::from_secs(2)).await;
    ctl("start-standby");
    wait_for(&server, ServingStatus::Serving, Duration::from_secs(10)).await;
    let retried = server.report(emergency("stalled")).await;
    assert!(
        retried.replayed,
        "the intake that waited was committed: {retried:?}"
    );

    // Four clients send intakes without pause (a refused one backs off 50 ms, as a client's
    // retry policy would), each noting what was acknowledged and what was refused; `seen`
    // counts both across the clients.
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, mut counts) = tokio::sync::watch::channel((0usize, 0usize));
    let seen = Arc::new(seen);
    let mut clients = Vec::new();
    for client in 0..4 {
        let (stop, seen) = (stop.clone(), seen.clone());
        let mut intake = server.emergency();
        clients.push(tokio::spawn(async move {
            let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("failover-{client}-{n}");
                n += 1;
                match intake.report_emergency(emergency(&id)).await {
                    Ok(_) => {
                        acknowledged.push(id);
                        seen.send_modify(|(ok, _)| *ok += 1);
                    }
                    Err(status) => {
                        refused.push(status.code());
                        seen.send_modify(|(_, no)| *no += 1);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acknowledged, refused)
        }));
    }
    // Waits until the clients' counts satisfy `done`.
    let mut until = async |what: &str, done: &dyn Fn(usize, usize) -> bool| {
        tokio::time::timeout(
            Duration::from_secs(10),
            counts.wait_for(|(ok, no)| done(*ok, *no)),
        )
        .await
        .unwrap_or_else(|_| panic!("never {what}"))
        .unwrap();
    };
    until("acknowledged 50 intakes", &|ok, _| ok >= 50).await;
    ctl("kill-primary");
    wait_for(&server, ServingStatus::NotServing, Duration::from_secs(3)).await;
    until("saw a refusal", &|_, no| no >= 1).await;
    ctl("promote-standby");
    let back = wait_for(&server, ServingStatus::Serving, BACK_WITHIN).await;
    let before = seen.borrow().0;
    until(
        "acknowledged 50 intakes on the new primary",
        &move |ok, _| ok >= before + 50,
    )
    .await;
    stop.store(true, Ordering::Relaxed);

    let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
    for client in clients {
        let (a, r) = client.await.unwrap();
        acknowledged.extend(a);
        refused.extend(r);
    }
    // Meanwhile clients saw only UNAVAILABLE, which they retry.
    assert!(
        refused.iter().all(|code| *code == tonic::Code::Unavailable),
        "{refused:?}"
    );
    assert!(!refused.is_empty(), "the outage was seen");
    // Every acknowledged intake is on the promoted node.
    use sqlx::Connection;
    let mut promoted = sqlx::PgConnection::connect(&standby).await.unwrap();
    let stored: HashSet<String> = sqlx::query_scalar("select request_id from idempotency_keys")
        .fetch_all(&mut promoted)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // And intake works on it.
    let after = server.report(emergency("failover-after")).await;
    assert!(!after.replayed);
    println!(
        "failover: {} intakes acknowledged, {} refused with UNAVAILABLE, serving again {:?} \
         after the promotion",
        acknowledged.len(),
        refused.len(),
        back
    );
    // The old primary is gone with its cluster: the database is not dropped.
    let _ = server.stop().await;
}
