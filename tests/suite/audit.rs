//! The audit trail: who read or changed which case, refusals included; append-only in the
//! database itself; hash-chained with the events, so `referrals audit verify` finds an edited or
//! deleted row and says which.

use crate::common::fixtures::child_in_danger;
use crate::common::{Backend, TestDb, TestServer};
use referrals::auth::Role;
use referrals::pb::{
    self, audit_trail_client::AuditTrailClient, case_tracking_client::CaseTrackingClient,
    emergency_intake_client::EmergencyIntakeClient,
};
use sqlx::Connection;
use tonic::Code;

async fn trail(server: &TestServer, request: pb::ListAuditEntriesRequest) -> Vec<pb::AuditEntry> {
    AuditTrailClient::new(server.as_who("auditor-1", Role::Auditor, "all", None))
        .list_audit_entries(request)
        .await
        .unwrap()
        .into_inner()
        .entries
}

/// A request carrying the client's request id.
fn with_id<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

async fn reads_changes_and_refusals_are_on_the_trail(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let case_id = EmergencyIntakeClient::new(server.as_operator())
        .report_emergency(with_id(child_in_danger("audited"), "req-intake"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .case_id;
    let mut operator = server.operator_cases();
    let case = operator
        .get_case(with_id(
            pb::GetCaseRequest {
                case_id: case_id.clone(),
            },
            "req-read",
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    operator
        .add_note(with_id(
            pb::AddNoteRequest {
                case_id: case_id.clone(),
                text: "she is with her aunt now".into(),
                expected_version: 0,
                ..Default::default()
            },
            "req-note",
        ))
        .await
        .unwrap();
    // Refused: another province's operator (not found, as if it did not exist), and a team
    // acting on a dispatch that is not its own (it cannot see the case at all).
    let fars = server.as_who("123-fars", Role::Operator, "IR-07", None);
    let probe = CaseTrackingClient::new(fars)
        .get_case(with_id(
            pb::GetCaseRequest {
                case_id: case_id.clone(),
            },
            "req-probe",
        ))
        .await
        .unwrap_err();
    assert_eq!(probe.code(), Code::NotFound);
    let stale = operator
        .close_case(with_id(
            pb::CloseCaseRequest {
                case_id: case_id.clone(),
                expected_version: 1,
                outcome: pb::CaseOutcome::ResolvedByPhone as i32,
                reason: String::new(),
                ..Default::default()
            },
            "req-close",
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let dispatch = &case.dispatches[0];
    let wrong_team = pb::dispatch_client::DispatchClient::new(server.as_team("thr-t2"))
        .report_dispatch_status(pb::ReportDispatchStatusRequest {
            dispatch_id: dispatch.dispatch_id.clone(),
            expected_version: 1,
            status: pb::DispatchStatus::Acknowledged as i32,
            reason: String::new(),
            position: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(wrong_team.code(), Code::NotFound);

    let entries = trail(
        &server,
        pb::ListAuditEntriesRequest {
            case_id: case_id.clone(),
            ..Default::default()
        },
    )
    .await;
    let rows: Vec<(&str, &str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.subject.as_str(),
                e.role.as_str(),
                e.action.as_str(),
                e.outcome.as_str(),
                e.request_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "123-tehran",
                "operator",
                "submit_emergency_intake",
                "ok",
                "req-intake"
            ),
            ("123-tehran", "operator", "read_case", "ok", "req-read"),
            ("123-tehran", "operator", "add_note", "ok", "req-note"),
            (
                "123-fars",
                "operator",
                "read_case",
                "not_found",
                "req-probe"
            ),
            (
                "123-tehran",
                "operator",
                "manage_case",
                "aborted",
                "req-close"
            ),
        ]
    );
    assert!(entries.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert!(entries.iter().all(|e| e.at.is_some()));
    // The team's refusal named a dispatch, not the case; it is on the trail under the team.
    let team = trail(
        &server,
        pb::ListAuditEntriesRequest {
            subject: "thr-t2".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(team.len(), 1);
    assert_eq!(
        (team[0].action.as_str(), team[0].outcome.as_str()),
        ("transition_dispatch", "not_found")
    );
    assert!(!team[0].request_id.is_empty(), "the server makes one up");

    // Pages: one entry a page walks the case's trail in order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = AuditTrailClient::new(server.as_who("auditor-1", Role::Auditor, "all", None))
            .list_audit_entries(pb::ListAuditEntriesRequest {
                case_id: case_id.clone(),
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, entries);
    // Reading the trail is on the trail.
    let audit_reads = trail(
        &server,
        pb::ListAuditEntriesRequest {
            action: "read_audit".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(audit_reads.len() > paged.len());
    assert!(audit_reads.iter().all(|e| e.subject == "auditor-1"));
    let reads = trail(
        &server,
        pb::ListAuditEntriesRequest {
            action: "read_case".into(),
            outcome: "ok".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        reads
            .iter()
            .all(|e| e.action == "read_case" && e.outcome == "ok")
    );
    assert_eq!(reads.len(), 1, "the operator's read");
    // Nothing of the note's text is on the trail.
    let all = trail(&server, pb::ListAuditEntriesRequest::default()).await;
    assert!(!format!("{all:?}").contains("aunt"));
    server.finish().await;
}

/// Runs `referrals audit verify` on the test's database and data directory: whether it found
/// everything intact, and what it printed.
fn verify_command(db: &TestDb) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_referrals"))
        .args(["audit", "verify", "--database-url", &db.url, "--data-dir"])
        .arg(db.dir.path())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// A server that recorded three intakes and stopped (writing its last checkpoint): its database.
async fn three_intakes_then_stopped(backend: Backend, prefix: &str) -> TestDb {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    for n in 0..3 {
        EmergencyIntakeClient::new(server.as_operator())
            .report_emergency(child_in_danger(&format!("{prefix}-{n}")))
            .await
            .unwrap();
    }
    server.stop().await
}

async fn the_trail_and_the_events_cannot_be_changed_and_tampering_is_found(backend: Backend) {
    let db = three_intakes_then_stopped(backend, "chain").await;
    let store = db.store(1).await;
    let intact = store.verify_chains().await.unwrap();
    assert_eq!(intact.len(), 2);
    for report in &intact {
        assert_eq!(report.problem, None, "{report:?}");
        assert!(report.rows >= 3, "{report:?}");
    }

    // The database refuses edits and deletions from anyone on the service's connection.
    for sql in [
        "update audit_log set subject = 'nobody' where audit_id = 1",
        "delete from audit_log where audit_id = 1",
        "update events set actor = 'nobody' where event_id = 1",
        "delete from events where event_id = 1",
    ] {
        let refused = db.execute(sql).await.unwrap_err();
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    // Someone who can drop the protection (the database's owner, a stolen disk) is caught.
    let unprotect = match backend {
        Backend::Sqlite => {
            "drop trigger audit_log_no_update; drop trigger audit_log_no_delete; \
             drop trigger events_no_update; drop trigger events_no_delete;"
        }
        Backend::Postgres => {
            "alter table audit_log disable trigger user; alter table events disable trigger user;"
        }
    };
    db.execute(unprotect).await.unwrap();
    let problem = |reports: Vec<referrals::audit::ChainReport>, chain: &str| {
        reports
            .into_iter()
            .find(|r| r.chain == chain)
            .unwrap()
            .problem
            .unwrap_or_default()
    };

    db.execute("update events set reason = 'edited' where event_id = 2")
        .await
        .unwrap();
    let found = problem(store.verify_chains().await.unwrap(), "event");
    assert!(found.starts_with("event 2: does not match"), "{found}");
    db.execute("update events set reason = null where event_id = 2")
        .await
        .unwrap();
    assert_eq!(problem(store.verify_chains().await.unwrap(), "event"), "");

    db.execute("update audit_log set subject = 'someone else' where audit_id = 2")
        .await
        .unwrap();
    let found = problem(store.verify_chains().await.unwrap(), "audit");
    assert!(found.starts_with("audit 2: does not match"), "{found}");
    db.execute("update audit_log set subject = '123-tehran' where audit_id = 2")
        .await
        .unwrap();

    db.execute("delete from audit_log where audit_id = 2")
        .await
        .unwrap();
    let found = problem(store.verify_chains().await.unwrap(), "audit");
    assert!(found.starts_with("audit 2: missing"), "{found}");

    let last = db.event_ids().await.last().copied().unwrap();
    db.execute(&format!("delete from events where event_id = {last}"))
        .await
        .unwrap();
    let found = problem(store.verify_chains().await.unwrap(), "event");
    assert!(
        found.starts_with(&format!("event {last}: missing")),
        "{found}"
    );
    assert!(found.contains("last rows were deleted"), "{found}");
    store.close().await;

    // The command says so and fails.
    let (verified, stdout) = verify_command(&db);
    assert!(!verified, "{stdout}");
    assert!(stdout.contains("event chain BROKEN"), "{stdout}");
    assert!(
        stdout.contains("audit chain BROKEN: audit 2: missing"),
        "{stdout}"
    );
    db.drop_database().await;
}

async fn the_verify_command_passes_an_intact_database(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    EmergencyIntakeClient::new(server.as_operator())
        .report_emergency(child_in_danger("intact"))
        .await
        .unwrap();
    let db = server.stop().await;
    let (verified, stdout) = verify_command(&db);
    assert!(verified, "{stdout}");
    assert!(stdout.contains("event chain intact"), "{stdout}");
    assert!(stdout.contains("audit chain intact"), "{stdout}");
    // The server signed the heads when it stopped, and they hold.
    assert!(stdout.contains("audit checkpoints hold"), "{stdout}");
    db.drop_database().await;
}

/// An audit row as stored, with every column its hash covers.
type AuditRow = (
    i64,
    i64,
    String,
    String,
    String,
    Option<uuid::Uuid>,
    String,
    String,
    Vec<u8>,
);

async fn audit_rows(db: &TestDb) -> Vec<AuditRow> {
    const SQL: &str = "select audit_id, at, subject, role, action, case_id, outcome, request_id, \
         hash from audit_log order by audit_id";
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
        }
    }
}

/// The database's owner does what the chain alone cannot catch: with the protection off, an
/// audit row is changed and every hash after it recomputed, the chain's head included, so the
/// walk finds a chain that holds. The checkpoint the server signed when it stopped, with a key
/// the database never saw, no longer matches, and `referrals audit verify` says so; a
/// checkpoint edited to match is not signed.
async fn an_owner_who_recomputes_every_hash_is_caught_by_the_signed_checkpoints(backend: Backend) {
    use referrals::audit::ChainHasher;

    let db = three_intakes_then_stopped(backend, "anchor").await;
    let anchors = db.dir.path().join(referrals::anchor::CHECKPOINTS_FILE);
    let signed = std::fs::read_to_string(&anchors).expect("checkpoints written at the stop");
    assert!(signed.contains(r#""chain":"audit""#), "{signed}");
    assert!(signed.contains(r#""chain":"event""#), "{signed}");
    let store = db.store(1).await;
    for report in referrals::anchor::verify(store.as_ref(), db.dir.path())
        .await
        .unwrap()
    {
        assert_eq!(report.problem, None, "{report:?}");
    }

    let unprotect = match backend {
        Backend::Sqlite => "drop trigger audit_log_no_update; drop trigger audit_log_no_delete;",
        Backend::Postgres => "alter table audit_log disable trigger user;",
    };
    db.execute(unprotect).await.unwrap();
    let blob = |bytes: &[u8]| match backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres => format!("decode('{}', 'hex')", hex::encode(bytes)),
    };
    let rows = audit_rows(&db).await;
    assert!(rows.len() >= 3);
    let mut previous = rows[0].8.clone();
    let mut rewrite = String::new();
    for (i, row) in rows.iter().enumerate().skip(1) {
        let (id, at, subject, role, action, case_id, outcome, request_id, _) = row;
        let subject = if i == 1 {
            "someone else"
        } else {
            subject.as_str()
        };
        let hash = ChainHasher::new(Some(&previous))
            .number(*id)
            .number(*at)
            .text(subject)
            .text(role)
            .text(action)
            .optional(case_id.as_ref().map(|id| &id.as_bytes()[..]))
            .text(outcome)
            .text(request_id)
            .finish();
        rewrite.push_str(&format!(
            "update audit_log set subject = '{subject}', hash = {} where audit_id = {id};",
            blob(&hash)
        ));
        previous = hash;
    }
    rewrite.push_str(&format!(
        "update sequences set hash = {} where name = 'audit';",
        blob(&previous)
    ));
    db.execute(&rewrite).await.unwrap();

    // The chain alone now holds: the rewrite is consistent.
    let walked = store.verify_chains().await.unwrap();
    let audit = walked.iter().find(|r| r.chain == "audit").unwrap();
    assert_eq!(audit.problem, None, "the rewrite recomputed every hash");
    // The signed checkpoint does not.
    let anchored = referrals::anchor::verify(store.as_ref(), db.dir.path())
        .await
        .unwrap();
    let found = anchored
        .iter()
        .find(|r| r.chain == "audit checkpoints")
        .and_then(|r| r.problem.clone())
        .unwrap_or_default();
    assert!(found.contains("was rewritten"), "{found}");
    store.close().await;

    let (verified, stdout) = verify_command(&db);
    assert!(!verified, "{stdout}");
    assert!(stdout.contains("audit chain intact"), "{stdout}");
    assert!(stdout.contains("audit checkpoints BROKEN"), "{stdout}");

    // Nor can the checkpoint be edited to match: it is signed with a key the owner lacks.
    let forged: String = signed
        .lines()
        .map(|line| {
            if line.contains(r#""chain":"audit""#) {
                let mut checkpoint: serde_json::Value = serde_json::from_str(line).unwrap();
                checkpoint["hash"] = hex::encode(&previous).into();
                format!("{checkpoint}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write(&anchors, forged).unwrap();
    let store = db.store(1).await;
    let anchored = referrals::anchor::verify(store.as_ref(), db.dir.path())
        .await
        .unwrap();
    store.close().await;
    let found = anchored
        .iter()
        .find(|r| r.chain == "audit checkpoints")
        .and_then(|r| r.problem.clone())
        .unwrap_or_default();
    assert!(found.contains("not signed"), "{found}");
    db.drop_database().await;
}

/// Intake batches take the chains' numbers after the directory's lock, and the audit trail's
/// writer takes its numbers for reads without it: both at once, on two servers, leave each
/// chain whole, gapless and with its counter at its last row.
async fn intakes_and_audited_reads_on_two_servers_leave_both_chains_whole(backend: Backend) {
    let first = TestServer::start(backend).await;
    let known = first.report(child_in_danger("chains-known")).await;
    let second = TestServer::start_on(first.db.same_database(), |_| {}).await;
    let mut tasks = Vec::new();
    for (n, server) in [&first, &second].into_iter().enumerate() {
        for task in 0..3 {
            let (client, channel) = (server.emergency(), server.channel());
            tasks.push(tokio::spawn(async move {
                for i in 0..8 {
                    let request = child_in_danger(&format!("chains-{n}-{task}-{i}"));
                    crate::common::report_confirmed(&client, &channel, request).await;
                }
            }));
            let (mut reader, case_id) = (server.cases(), known.case_id.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..12 {
                    let request = pb::GetCaseRequest {
                        case_id: case_id.clone(),
                    };
                    reader.get_case(request).await.expect("read");
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("task");
    }
    second.stop().await;
    let db = first.stop().await;
    assert_eq!(db.count("cases").await, 1 + 2 * 3 * 8);
    for (table, id, chain) in [
        ("events", "event_id", "event"),
        ("audit_log", "audit_id", "audit"),
    ] {
        let numbers = db
            .integers(&format!(
                "select count(*) from {table} union all select min({id}) from {table} \
                 union all select max({id}) from {table} \
                 union all select last_value from sequences where name = '{chain}'"
            ))
            .await;
        let (count, min, max, counter) = (numbers[0], numbers[1], numbers[2], numbers[3]);
        assert_eq!(
            (min, max, counter),
            (1, count, count),
            "{table}: {numbers:?}"
        );
    }
    // Reads were audited while intakes were written: 2 × 3 × 12 of them, at least.
    assert!(db.count("audit_log").await >= 1 + 2 * 3 * 8 + 2 * 3 * 12);
    let store = db.store(1).await;
    for report in store.verify_chains().await.unwrap() {
        assert_eq!(report.problem, None, "{report:?}");
    }
    drop(store);
    db.drop_database().await;
}

backend_tests!(
    an_owner_who_recomputes_every_hash_is_caught_by_the_signed_checkpoints,
    intakes_and_audited_reads_on_two_servers_leave_both_chains_whole,
    reads_changes_and_refusals_are_on_the_trail,
    the_trail_and_the_events_cannot_be_changed_and_tampering_is_found,
    the_verify_command_passes_an_intact_database,
);
