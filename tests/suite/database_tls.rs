//! TLS between the service and PostgreSQL. With `sslmode=verify-full` and the authority that
//! signed the database's certificate, the service connects and PostgreSQL sees every one of its
//! connections encrypted; with another authority it refuses to start; and when the URL asks for
//! TLS of a database that does not offer it, it does not talk in the clear.
//!
//! The first two need the throwaway cluster `scripts/test` starts (TLS on, under an authority it
//! makes, named by `TEST_PG_CA` and `TEST_PG_WRONG_CA`); against a server of your own they are
//! skipped with a note.

use crate::common::fixtures::emergency;
use crate::common::{Backend, TestDb, TestServer};
use referrals::config::DatabaseConfig;
use sqlx::Connection;

fn authority(variable: &str) -> Option<String> {
    let path = std::env::var(variable).ok().filter(|p| !p.is_empty());
    if path.is_none() {
        eprintln!("skipped: {variable} is not set (scripts/test sets it for its own cluster)");
    }
    path
}

/// `url` asking for TLS verified against `ca`.
fn verified(url: &str, ca: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}sslmode=verify-full&sslrootcert={ca}")
}

fn database(url: String, dir: &std::path::Path) -> DatabaseConfig {
    DatabaseConfig {
        data_dir: dir.to_path_buf(),
        database_url: Some(url),
        db_max_connections: 2,
    }
}

#[tokio::test]
async fn the_service_reaches_postgresql_over_tls_verified_against_its_authority() {
    let Some(ca) = authority("TEST_PG_CA") else {
        return;
    };
    let mut db = TestDb::new(Backend::Postgres).await;
    let name = db.url.rsplit('/').next().unwrap_or_default().to_owned();
    db.url = verified(&db.url, &ca);
    let server = TestServer::seeded_on(db).await;
    server
        .emergency()
        .report_emergency(emergency("over-tls"))
        .await
        .expect("an intake over a TLS connection to the database");

    let admin = std::env::var("TEST_DATABASE_URL").unwrap();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    let (encrypted, clear): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where s.ssl), count(*) filter (where not s.ssl) \
         from pg_stat_ssl s join pg_stat_activity a using (pid) where a.datname = $1",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(encrypted >= 1, "no encrypted connection to {name}");
    assert_eq!(clear, 0, "the service opened a connection in the clear");
    server.finish().await;
}

#[tokio::test]
async fn a_database_certificate_from_another_authority_is_refused() {
    let Some(wrong) = authority("TEST_PG_WRONG_CA") else {
        return;
    };
    let db = TestDb::new(Backend::Postgres).await;
    let refused = referrals::open_store(&database(verified(&db.url, &wrong), db.dir.path())).await;
    let Err(error) = refused else {
        panic!("the service connected to a database whose certificate it cannot verify");
    };
    // What the service logs when it stops: the error and its causes.
    let message = error.report();
    assert!(
        message.to_lowercase().contains("certificate") || message.contains("UnknownIssuer"),
        "the refusal says why: {message}"
    );
}

/// A peer that answers PostgreSQL's request for TLS with "no", as a server without TLS does,
/// and notes whether the client then went on in the clear.
async fn no_tls_offered() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clear = std::sync::Arc::new(AtomicBool::new(false));
    let seen = clear.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if socket.read_exact(&mut request).await.is_err() {
                    return;
                }
                // Length 8, then the SSLRequest code 80877103; anything else is a startup
                // message sent in the clear.
                if request != [0, 0, 0, 8, 4, 210, 22, 47] {
                    seen.store(true, Ordering::SeqCst);
                    return;
                }
                let _ = socket.write_all(b"N").await;
                let mut next = [0u8; 1];
                if matches!(socket.read(&mut next).await, Ok(n) if n > 0) {
                    seen.store(true, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, clear)
}

#[tokio::test]
async fn a_url_that_asks_for_tls_is_never_served_in_the_clear() {
    let (addr, clear) = no_tls_offered().await;
    let dir = tempfile::tempdir().unwrap();
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!("postgres://referrals@{addr}/referrals?sslmode={mode}");
        let refused = referrals::open_store(&database(url, dir.path())).await;
        assert!(
            refused.is_err(),
            "sslmode={mode}: the service went on without TLS"
        );
    }
    assert!(
        !clear.load(std::sync::atomic::Ordering::SeqCst),
        "the client sent something in the clear"
    );
}
