//! Encryption at rest: sentinel values written through the RPCs are found nowhere in the SQLite
//! files or a PostgreSQL dump; a tampered or moved ciphertext fails to open rather than reading
//! as garbage; keys rotate; and repeat calls link by a keyed hash of the number.

use crate::common::fixtures::{self, SENTINELS, plant};
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{self, GetCaseRequest};
use tonic::Code;

/// A position no fixture uses: where the team stood at the scene.
const SCENE: (f64, f64) = (35.7654321, 51.2345678);

/// Records a 123 case with sentinels in every sensitive field, a note, a follow-up and its
/// outcome, and a team's position at the scene; returns the case id.
async fn record_sentinels(server: &TestServer) -> String {
    let mut request = fixtures::child_in_danger("sentinels");
    plant(request.intake.as_mut().unwrap());
    let case_id = server.report(request).await.case_id;
    let mut cases = server.cases();
    cases
        .add_note(pb::AddNoteRequest {
            case_id: case_id.clone(),
            text: SENTINELS[10].into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    let follow_up = cases
        .schedule_follow_up(pb::ScheduleFollowUpRequest {
            case_id: case_id.clone(),
            due_at: None,
            reason: "check".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    cases
        .record_follow_up(pb::RecordFollowUpRequest {
            follow_up_id: follow_up.follow_up_id,
            outcome: SENTINELS[11].into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    let dispatch = read(server, &case_id).await.dispatches[0].clone();
    let mut team = server.team_dispatch(&dispatch.team_id);
    let mut version = dispatch.version;
    for status in [
        pb::DispatchStatus::Acknowledged,
        pb::DispatchStatus::EnRoute,
        pb::DispatchStatus::OnScene,
    ] {
        version = team
            .report_dispatch_status(pb::ReportDispatchStatusRequest {
                dispatch_id: dispatch.dispatch_id.clone(),
                expected_version: version,
                status: status as i32,
                reason: String::new(),
                position: Some(pb::Coordinates {
                    latitude: SCENE.0,
                    longitude: SCENE.1,
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .dispatch_version;
    }
    case_id
}

async fn read(server: &TestServer, case_id: &str) -> pb::Case {
    server.case(case_id).await
}

/// Everything the database holds, as bytes: the SQLite files, or a PostgreSQL dump.
fn everything_stored(db: &TestDb, backend: Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(db.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("referrals.db") {
                    bytes.extend(std::fs::read(&path).unwrap());
                }
            }
            assert!(bytes.len() > 4096, "the database files were read");
            bytes
        }
        Backend::Postgres => {
            let output = std::process::Command::new(pg_dump())
                .args(["--data-only", "--no-owner", "--dbname", &db.owner_url])
                .output()
                .expect("pg_dump runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.stdout.len() > 1000, "the dump holds the data");
            output.stdout
        }
    }
}

/// The `pg_dump` of the installed PostgreSQL.
fn pg_dump() -> std::path::PathBuf {
    if let Ok(output) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        && output.status.success()
    {
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let path = std::path::Path::new(&dir).join("pg_dump");
        if path.exists() {
            return path;
        }
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin/pg_dump"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| "pg_dump".into())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn no_sensitive_value_is_stored_in_clear(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let case_id = record_sentinels(&server).await;
    // They read back whole through the service.
    let case = read(&server, &case_id).await;
    let intake = case.intake.as_ref().unwrap();
    assert_eq!(intake.narrative, SENTINELS[8]);
    assert_eq!(intake.contact.as_ref().unwrap().caller_number, SENTINELS[0]);
    assert_eq!(case.notes[0].text, SENTINELS[10]);
    assert_eq!(case.follow_ups[0].outcome, SENTINELS[11]);
    let on_scene = case.dispatches[0].steps.last().unwrap();
    assert_eq!(on_scene.position.as_ref().unwrap().latitude, SCENE.0);
    assert!(!case.routing.as_ref().unwrap().actions.is_empty());

    let db = server.stop().await;
    let stored = everything_stored(&db, backend);
    for sentinel in SENTINELS {
        assert!(
            !contains(&stored, sentinel),
            "{sentinel} is stored in clear"
        );
    }
    for clear in [
        &SCENE.0.to_string(),
        &SCENE.1.to_string(),
        // JSON of the intake or of a routing decision would name these.
        "suicide_screening",
        "distance_km",
        "bruises",
    ] {
        assert!(!contains(&stored, clear), "{clear} is stored in clear");
    }
    db.drop_database().await;
}

/// Reads one bytea/blob column of one row, straight from the database.
async fn raw(db: &TestDb, backend: Backend, sql: &str) -> Vec<u8> {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// Writes one bytea/blob value, straight to the database.
async fn write_raw(db: &TestDb, backend: Backend, sql: &str, value: Vec<u8>) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql)
                .bind(value)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql)
                .bind(value)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn a_tampered_or_moved_ciphertext_fails_instead_of_reading_garbage(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let first = record_sentinels(&server).await;
    let second = server
        .emergency()
        .report_emergency(fixtures::emergency("second"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .case_id;
    let db = server.stop().await;
    let key = |id: &str| match backend {
        Backend::Sqlite => {
            let bytes = uuid::Uuid::parse_str(id).unwrap().simple().to_string();
            format!("x'{bytes}'")
        }
        Backend::Postgres => format!("'{id}'"),
    };
    let select = |id: &str| format!("select details from cases where case_id = {}", key(id));
    let original = raw(&db, backend, &select(&first)).await;
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let update = format!(
        "update cases set details = $1 where case_id = {}",
        key(&first)
    );
    write_raw(&db, backend, &update, flipped).await;

    let server = TestServer::start_on(db, |_| {}).await;
    let refused = server
        .cases()
        .get_case(GetCaseRequest {
            case_id: first.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Internal, "{refused:?}");
    assert_eq!(
        refused.message(),
        "internal error",
        "nothing of it is shown"
    );
    // The other case still reads; the first's ciphertext moved onto it does not.
    read(&server, &second).await;
    let db = server.stop().await;
    let update = format!(
        "update cases set details = $1 where case_id = {}",
        key(&second)
    );
    write_raw(&db, backend, &update, original).await;
    let server = TestServer::start_on(db, |_| {}).await;
    let moved = server
        .cases()
        .get_case(GetCaseRequest { case_id: second })
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Code::Internal, "{moved:?}");
    server.finish().await;
}

async fn keys_rotate_and_every_value_is_sealed_again(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let case_id = record_sentinels(&server).await;
    let db = server.stop().await;
    let key_id = |bytes: &[u8]| referrals::crypto::FieldCipher::key_id(bytes);
    let sql = "select details from cases";
    assert_eq!(key_id(&raw(&db, backend, sql).await), Some(1));
    // A note from a database older than encryption at rest, held in clear.
    write_raw(
        &db,
        backend,
        "update notes set body = $1",
        b"written before sealing".to_vec(),
    )
    .await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_referrals"))
        .args(["keys", "rotate", "--database-url", &db.url, "--data-dir"])
        .arg(db.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("field key 2 added"), "{stdout}");
    assert!(stdout.contains("cases.details: 1 resealed"), "{stdout}");
    assert!(
        stdout.contains("notes.body: 0 resealed, 1 sealed from clear"),
        "{stdout}"
    );
    assert!(
        stdout.contains("dispatch_steps.position: 3 resealed"),
        "{stdout}"
    );
    assert_eq!(key_id(&raw(&db, backend, sql).await), Some(2));
    assert_eq!(
        key_id(&raw(&db, backend, "select body from notes").await),
        Some(2)
    );

    // Everything reads back, under the new key, on a server started afterwards.
    let server = TestServer::start_on(db, |_| {}).await;
    let case = read(&server, &case_id).await;
    assert_eq!(case.intake.unwrap().narrative, SENTINELS[8]);
    assert_eq!(case.notes[0].text, "written before sealing");
    assert_eq!(case.follow_ups[0].outcome, SENTINELS[11]);
    assert_eq!(
        case.dispatches[0]
            .steps
            .last()
            .unwrap()
            .position
            .as_ref()
            .unwrap()
            .longitude,
        SCENE.1
    );
    server.finish().await;
}

async fn repeat_calls_from_one_number_link_without_the_number(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let call = |id: &str, number: &str| {
        let mut request = fixtures::emergency(id);
        request
            .intake
            .as_mut()
            .unwrap()
            .contact
            .as_mut()
            .unwrap()
            .caller_number = number.into();
        request
    };
    let mut earlier = Vec::new();
    for (id, number) in [
        ("first", "09121112233"),
        ("again", "+989121112233"),
        ("other", "09125556677"),
        ("third", "00989121112233"),
    ] {
        let case_id = server
            .emergency()
            .report_emergency(call(id, number))
            .await
            .unwrap()
            .into_inner()
            .receipt
            .unwrap()
            .case_id;
        let timeline = server
            .cases()
            .get_timeline(pb::GetTimelineRequest { case_id })
            .await
            .unwrap()
            .into_inner()
            .events;
        let data: serde_json::Value = serde_json::from_str(&timeline[0].data_json).unwrap();
        earlier.push(data["earlier_contacts_from_caller"].as_i64().unwrap());
    }
    assert_eq!(earlier, [0, 1, 0, 2]);
    let db = server.stop().await;
    let stored = everything_stored(&db, backend);
    assert!(!contains(&stored, "1112233") && !contains(&stored, "5556677"));
    db.drop_database().await;
}

backend_tests!(
    no_sensitive_value_is_stored_in_clear,
    a_tampered_or_moved_ciphertext_fails_instead_of_reading_garbage,
    keys_rotate_and_every_value_is_sealed_again,
    repeat_calls_from_one_number_link_without_the_number,
);
