//! The `referrals` binary as a newcomer runs it: defaults to SQLite under ./data, creates its
//! signing key, serves callers holding a token from `referrals token issue`, and stops cleanly
//! on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::fixtures::hotline;
use referrals::pb::hotline_intake_client::HotlineIntakeClient;

const BINARY: &str = env!("CARGO_BIN_EXE_referrals");

#[tokio::test]
async fn serve_defaults_to_sqlite_under_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BINARY)
        .args([
            "serve",
            "--migrate",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("REFERRALS_DATA_DIR")
        .stderr(Stdio::piped())
        .spawn()
        .expect("referrals starts");

    // The "serving" line names the address the kernel picked.
    let stderr = child.stderr.take().unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["fields"]["message"] == "serving"
            {
                let _ = address_tx.send(event["fields"]["listen"].as_str().unwrap().to_owned());
            }
            lines.push(line);
        }
        lines
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address");

    // The README's way to a token: `referrals token issue`, with the server's key.
    let issued = Command::new(BINARY)
        .args(["token", "issue", "--role", "hotline", "--province", "IR-23"])
        .current_dir(dir.path())
        .env_remove("REFERRALS_DATA_DIR")
        .output()
        .expect("token issue runs");
    assert!(issued.status.success(), "{issued:?}");
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_owned();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = HotlineIntakeClient::with_interceptor(channel, common::Bearer::new(&token));
    let refused = HotlineIntakeClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .submit_referral(hotline("binary-0"))
    .await
    .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::Unauthenticated,
        "no token, no service"
    );
    let receipt = client
        .submit_referral(hotline("binary-1"))
        .await
        .expect("intake accepted")
        .into_inner()
        .receipt
        .unwrap();
    assert!(receipt.reference.starts_with("1480-"));
    assert!(dir.path().join("data/referrals.db").exists());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .expect("wait");
    assert!(status.success(), "exit status {status}");
    let lines = reader.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("shutdown requested")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("\"stopped\"")), "{lines:?}");
    // First start on an empty data directory: the key is made, and the log says how to use it.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("referrals token issue --role admin --province all")),
        "{lines:?}"
    );
    assert!(dir.path().join("data/signing.key").exists());
}

#[test]
fn migrate_applies_the_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let output = Command::new(BINARY)
        .args(["migrate", "--database-url", &url])
        .output()
        .expect("referrals runs");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("migrations applied"));
}

/// Without --migrate, serve changes no schema: on a new data directory it stops at once and
/// says what to run, and creates no database file.
#[test]
fn serve_without_migrate_refuses_a_database_with_no_schema_and_names_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("REFERRALS_DATA_DIR")
        .env_remove("REFERRALS_MIGRATE")
        .output()
        .expect("referrals runs");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("there is no database at"), "{stderr}");
    assert!(stderr.contains("run `referrals migrate`"), "{stderr}");
    assert!(!dir.path().join("data/referrals.db").exists());
}

#[test]
fn an_unknown_database_scheme_is_a_clear_error() {
    let output = Command::new(BINARY)
        .args(["migrate", "--database-url", "mysql://localhost/x"])
        .output()
        .expect("referrals runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsupported database URL scheme"),
        "{stderr}"
    );
}
