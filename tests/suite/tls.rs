//! Transport security: with a certificate the server speaks only TLS; with a client CA it also
//! requires each client to present a certificate that CA signed (mutual TLS). The certificates
//! are generated for the test: a CA, a server certificate for localhost, a client certificate.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{Backend, Bearer, TestDb, TestServer};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use referrals::pb::{self, case_tracking_client::CaseTrackingClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

struct Pki {
    ca: String,
    files: tempfile::TempDir,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn generate() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &*ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["call-centre-1".to_owned()])
            .unwrap()
            .signed_by(&client_key, &*ca)
            .unwrap();
        let files = tempfile::tempdir().unwrap();
        std::fs::write(files.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(files.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(files.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Self {
            ca: ca.pem(),
            files,
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }
}

async fn channel(server: &TestServer, tls: Option<ClientTlsConfig>) -> Result<Channel, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", server.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

/// Lists cases through `channel` with the harness's token; true when the call succeeded.
async fn lists(server: &TestServer, channel: Result<Channel, String>) -> bool {
    let Ok(channel) = channel else { return false };
    let token = common::token(
        server.db.dir.path(),
        referrals::auth::Role::Supervisor,
        "all",
        None,
    );
    CaseTrackingClient::with_interceptor(channel, Bearer::new(&token))
        .list_cases(pb::ListCasesRequest::default())
        .await
        .is_ok()
}

fn trusting(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(&pki.ca))
}

async fn with_a_certificate_the_server_speaks_only_tls(backend: Backend) {
    let pki = Pki::generate();
    let server = TestServer::start_on(TestDb::new(backend).await, |c| {
        c.tls_cert = Some(pki.path("server.pem"));
        c.tls_key = Some(pki.path("server.key"));
    })
    .await;
    assert!(lists(&server, channel(&server, Some(trusting(&pki))).await).await);
    assert!(
        !lists(&server, channel(&server, None).await).await,
        "plaintext is refused"
    );
    let stranger = ClientTlsConfig::new().domain_name("localhost");
    assert!(
        !lists(&server, channel(&server, Some(stranger)).await).await,
        "a client that does not trust the CA does not talk to the server"
    );
    server.finish().await;
}

async fn with_a_client_ca_only_clients_holding_its_certificates_are_served(backend: Backend) {
    let pki = Pki::generate();
    let server = TestServer::start_on(TestDb::new(backend).await, |c| {
        c.tls_cert = Some(pki.path("server.pem"));
        c.tls_key = Some(pki.path("server.key"));
        c.tls_client_ca = Some(pki.path("ca.pem"));
    })
    .await;
    assert!(
        !lists(&server, channel(&server, Some(trusting(&pki))).await).await,
        "a client without a certificate is refused"
    );
    let with_certificate =
        trusting(&pki).identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    assert!(lists(&server, channel(&server, Some(with_certificate)).await).await);
    server.finish().await;
}

backend_tests!(
    with_a_certificate_the_server_speaks_only_tls,
    with_a_client_ca_only_clients_holding_its_certificates_are_served,
);
