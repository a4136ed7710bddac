//! Test harness: the real server on 127.0.0.1:0 with a database of its own, reached through the
//! generated clients. Every suite runs on SQLite and on PostgreSQL (`TEST_DATABASE_URL`).

#![allow(dead_code, unreachable_pub)]

pub mod fixtures;
pub mod rng;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use referrals::config::ServeConfig;
use referrals::pb::case_tracking_client::CaseTrackingClient;
use referrals::pb::directory_client::DirectoryClient;
use referrals::pb::dispatch_client::DispatchClient;
use referrals::pb::emergency_intake_client::EmergencyIntakeClient;
use referrals::pb::hotline_intake_client::HotlineIntakeClient;
use referrals::{ServeError, run};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Stamps each listed `async fn name(backend: Backend)` of the enclosing file into a test per
/// backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of the test's own: a SQLite file in a temporary directory, or a fresh PostgreSQL
/// database created on the server `TEST_DATABASE_URL` names. Either is migrated as the owner
/// would (`referrals migrate`); the servers and stores of a test reach a PostgreSQL database as
/// [`SERVICE_ROLE`], which owns nothing and has only what `--grant-to` gives it.
pub struct TestDb {
    pub backend: Backend,
    /// The URL the service uses: on PostgreSQL, the service role's.
    pub url: String,
    /// The URL of the role that owns the tables (on SQLite, the same file).
    pub owner_url: String,
    pub dir: tempfile::TempDir,
    admin_url: Option<String>,
    name: String,
}

/// The role the PostgreSQL tests' databases are owned and migrated by: not a superuser.
pub const OWNER_ROLE: &str = "referrals_test_owner";
/// The role the servers of the PostgreSQL tests run as, with the grants the service ships.
pub const SERVICE_ROLE: &str = "referrals_test_service";

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_DATABASE_URL is not set. Run the suite with scripts/test, which starts a \
             throwaway PostgreSQL, or point TEST_DATABASE_URL at a PostgreSQL server you may \
             create databases and roles on"
        )
    })
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Replaces the user (and password) of a PostgreSQL URL with a test role, whose password is
/// its name.
pub fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => host,
        None => &rest[..authority_end],
    };
    format!("{scheme}://{role}:{role}@{host}{}", &rest[authority_end..])
}

/// Creates the test roles on the server unless they are there (another test, or an earlier run,
/// may have made them; two creating one at once is no failure).
async fn create_test_roles(admin: &mut sqlx::PgConnection) {
    for (role, rights) in [(OWNER_ROLE, "createdb"), (SERVICE_ROLE, "")] {
        let create = format!(
            "do $$ begin create role {role} login {rights} password '{role}'; \
             exception when duplicate_object or unique_violation then null; end $$"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut *admin)
            .await
            .expect("create a test role");
    }
}

impl TestDb {
    /// A new database, migrated by its owner, with the service role's grants.
    pub async fn new(backend: Backend) -> Self {
        let db = Self::unmigrated(backend).await;
        referrals::store::migrate(&db.owner_url)
            .await
            .expect("migrate the test database");
        if backend == Backend::Postgres {
            referrals::store::grant(&db.owner_url, SERVICE_ROLE)
                .await
                .expect("grant the service role its privileges");
        }
        db
    }

    /// A new database with no schema (on SQLite, no file yet).
    pub async fn unmigrated(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("referrals.db").display());
                Self {
                    backend,
                    owner_url: url.clone(),
                    url,
                    dir,
                    admin_url: None,
                    name: String::new(),
                }
            }
            Backend::Postgres => Self::unmigrated_on(admin_url(), dir).await,
        }
    }

    /// A new database with no schema on the PostgreSQL server `admin` reaches as a superuser.
    async fn unmigrated_on(admin: String, dir: tempfile::TempDir) -> Self {
        let name = format!("referrals_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to TEST_DATABASE_URL");
        create_test_roles(&mut conn).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "create database {name} owner {OWNER_ROLE}"
        )))
        .execute(&mut conn)
        .await
        .expect("create test database");
        let url = with_database(&admin, &name);
        Self {
            backend: Backend::Postgres,
            owner_url: as_role(&url, OWNER_ROLE),
            url: as_role(&url, SERVICE_ROLE),
            dir,
            admin_url: Some(admin),
            name,
        }
    }

    /// A new database on a primary and its streaming standby, `pair` naming both hosts
    /// (libpq style); created through the first host, migrated and granted through whichever
    /// accepts writes, as the service would.
    pub async fn replicated(pair: &str) -> Self {
        let (scheme, rest) = pair.split_once("://").expect("a URL with a scheme");
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (user, hosts) = rest[..authority_end]
            .rsplit_once('@')
            .map_or(("", &rest[..authority_end]), |(u, h)| (u, h));
        let first = hosts.split(',').next().unwrap();
        let admin = format!("{scheme}://{user}@{first}{}", &rest[authority_end..]);
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut db = Self::unmigrated_on(admin, dir).await;
        let url = with_database(pair, &db.name);
        db.owner_url = as_role(&url, OWNER_ROLE);
        db.url = as_role(&url, SERVICE_ROLE);
        referrals::store::migrate(&db.owner_url)
            .await
            .expect("migrate the replicated database");
        referrals::store::grant(&db.owner_url, SERVICE_ROLE)
            .await
            .expect("grant the service role its privileges");
        db
    }

    /// Another handle on the same database, for a second server; dropping the database stays
    /// with the original.
    /// The second server's data directory holds the first's keys, as servers sharing a
    /// database must: the signing key and the field keyring.
    pub fn same_database(&self) -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        referrals::auth::Keys::load_or_create(self.dir.path()).expect("signing key");
        referrals::crypto::FieldCipher::load_or_create(self.dir.path()).expect("field keys");
        for name in ["signing.key", "field.keys"] {
            std::fs::copy(self.dir.path().join(name), dir.path().join(name)).expect("copy a key");
        }
        TestDb {
            backend: self.backend,
            url: self.url.clone(),
            owner_url: self.owner_url.clone(),
            dir,
            admin_url: None,
            name: self.name.clone(),
        }
    }

    /// Opens the database as the service does, with the keys of its data directory.
    pub async fn store(&self, max_connections: u32) -> std::sync::Arc<dyn referrals::store::Store> {
        let cipher = referrals::crypto::FieldCipher::load_or_create(self.dir.path()).expect("keys");
        referrals::store::open(&self.url, max_connections, std::sync::Arc::new(cipher))
            .await
            .expect("open the store")
    }

    /// Runs a statement on the server as administrator (PostgreSQL only).
    pub async fn admin(&self, sql: String) {
        let admin = self.admin_url.as_ref().expect("PostgreSQL test database");
        let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("administrative statement");
    }

    /// The PostgreSQL database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts the rows of `table`, straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        self.integers(&format!("select count(*) from {table}"))
            .await[0]
    }

    /// Returns the event ids in commit order, straight from the database.
    pub async fn event_ids(&self) -> Vec<i64> {
        self.integers("select event_id from events order by event_id")
            .await
    }

    /// Runs statements straight on the database as the tables' owner, on a connection of its
    /// own (as someone with the owner's credentials would); returns the database's error when
    /// it refuses.
    pub async fn execute(&self, sql: &str) -> Result<(), String> {
        Self::execute_at(self.backend, &self.owner_url, sql).await
    }

    /// Runs statements straight on the database with the service's credentials.
    pub async fn execute_as_service(&self, sql: &str) -> Result<(), String> {
        Self::execute_at(self.backend, &self.url, sql).await
    }

    async fn execute_at(backend: Backend, url: &str, sql: &str) -> Result<(), String> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.map(drop)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.map(drop)
            }
        }
        .map_err(|e| e.to_string())
    }

    /// Runs a query returning one integer column, on a connection of its own.
    pub async fn integers(&self, sql: &str) -> Vec<i64> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    /// Drops the PostgreSQL database; the SQLite directory goes with the value.
    pub async fn drop_database(self) {
        if self.admin_url.is_some() {
            self.admin(format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .await;
        }
    }
}

#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    serve: ServeConfig,
}

/// A server configuration for `url` with the defaults of the command line.
pub fn config(url: &str) -> ServeConfig {
    let mut config = TestCli::parse_from(["referrals", "--database-url", url]).serve;
    config.health_interval = Duration::from_millis(100);
    config.shutdown_grace = Duration::from_secs(3);
    config.feed_poll_interval = Duration::from_millis(200);
    config
}

/// Tests are quiet; `TEST_LOG=1` sends the servers' logs to stderr.
/// Waits until the server started on `channel` answers (or its task ended, for a test that
/// expects it to fail), so that a test never talks to a server still migrating or seeding
/// its database, nor starts a second server on the same database while the first one seeds.
async fn wait_until_serving(channel: &Channel, handle: &JoinHandle<Result<(), ServeError>>) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut health = HealthClient::new(channel.clone());
    while !handle.is_finished() {
        if health.check(HealthCheckRequest::default()).await.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not start within a minute"
        );
        // The readiness poll's pause, not a wait for something to happen.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn show_logs_if_asked() {
    if std::env::var_os("TEST_LOG").is_some() {
        let config = referrals::config::LogConfig {
            log_format: referrals::config::LogFormat::Pretty,
            log: std::env::var("REFERRALS_LOG").unwrap_or_else(|_| "info".into()),
        };
        // Another test of this binary may have installed it already.
        let _ = referrals::telemetry::init(&config);
    }
}

/// Sends a bearer token with every request.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// Sends `token`.
    pub fn new(token: &str) -> Self {
        Self(format!("Bearer {token}").parse().expect("ascii token"))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel whose requests carry a token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Mints a token with the key in `data_dir` (creating it, as the server would).
pub fn token(
    data_dir: &std::path::Path,
    role: referrals::auth::Role,
    province: &str,
    team: Option<&str>,
) -> String {
    token_for(data_dir, "test", role, province, team)
}

/// Mints a token for `subject` with the key in `data_dir`.
pub fn token_for(
    data_dir: &std::path::Path,
    subject: &str,
    role: referrals::auth::Role,
    province: &str,
    team: Option<&str>,
) -> String {
    let (keys, _) = referrals::auth::Keys::load_or_create(data_dir).expect("signing key");
    keys.issue(&referrals::auth::claims(
        subject,
        role,
        province,
        None,
        team.map(str::to_owned),
        chrono::Utc::now(),
        // Longer than any clock a test moves forward.
        Duration::from_secs(365 * 24 * 3600),
    ))
    .expect("token")
}

/// The real server, serving on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db: TestDb,
    /// The server's clock, when the test set one.
    pub time: Option<referrals::clock::ManualTime>,
    channel: Channel,
    bearer: Bearer,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    /// Starts a server with the default configuration on a new database.
    pub async fn start(backend: Backend) -> Self {
        Self::start_on(TestDb::new(backend).await, |_| {}).await
    }

    /// Starts a server on `db` with the seed directory loaded and the clock stopped at
    /// [`fixtures::SUNDAY_MORNING`], so routing sees the same open hours on every run.
    pub async fn seeded_on(db: TestDb) -> Self {
        Self::seeded_with(db, |_| {}).await
    }

    /// Like [`Self::seeded_on`], with a configuration `configure` may change further.
    pub async fn seeded_with(db: TestDb, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let time = referrals::clock::ManualTime::new(fixtures::sunday_morning());
        let clock = referrals::clock::Clock::manual(&time);
        let mut server = Self::start_on(db, |c| {
            c.seed_directory =
                Some(concat!(env!("CARGO_MANIFEST_DIR"), "/seed/directory.toml").into());
            c.clock = clock;
            configure(c);
        })
        .await;
        server.time = Some(time);
        server
    }

    /// Starts a server on `db` with a configuration `configure` may change.
    pub async fn start_on(db: TestDb, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        show_logs_if_asked();
        let mut config = config(&db.url);
        config.database.data_dir = db.dir.path().to_path_buf();
        configure(&mut config);
        // A national supervisor's token: the harness's clients read and change every case.
        let bearer = Bearer::new(&token_for(
            &config.database.data_dir,
            "supervisor-national",
            referrals::auth::Role::Supervisor,
            "all",
            None,
        ));
        let tls = config.tls_cert.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (shutdown, signal) = oneshot::channel::<()>();
        let handle = tokio::spawn(run(config, listener, async {
            let _ = signal.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(10))
            .connect_lazy();
        // A TLS server's test makes its own channels and waits for it with them.
        if !tls {
            wait_until_serving(&channel, &handle).await;
        }
        Self {
            addr,
            db,
            time: None,
            channel,
            bearer,
            shutdown: Some(shutdown),
            handle,
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The channel with the harness's token on every request.
    pub fn authed(&self) -> Authed {
        InterceptedService::new(self.channel(), self.bearer.clone())
    }

    /// The channel with `token` on every request.
    pub fn with_token(&self, token: &str) -> Authed {
        InterceptedService::new(self.channel(), Bearer::new(token))
    }

    /// The channel with a token of `role` for `subject` in `province` (a team's names `team`).
    pub fn as_who(
        &self,
        subject: &str,
        role: referrals::auth::Role,
        province: &str,
        team: Option<&str>,
    ) -> Authed {
        self.with_token(&token_for(
            self.db.dir.path(),
            subject,
            role,
            province,
            team,
        ))
    }

    /// A mobile team's app.
    pub fn as_team(&self, team: &str) -> Authed {
        self.as_who(team, referrals::auth::Role::Team, "IR-23", Some(team))
    }

    /// A receiving centre (its token's subject is its service point id).
    pub fn as_centre(&self, service_point: &str) -> Authed {
        self.as_who(service_point, referrals::auth::Role::Centre, "IR-23", None)
    }

    /// The Tehran 123 centre's software, where the fixtures' calls come from.
    pub fn as_operator(&self) -> Authed {
        self.as_who("123-tehran", referrals::auth::Role::Operator, "IR-23", None)
    }

    /// A team's dispatch client.
    pub fn team_dispatch(&self, team: &str) -> DispatchClient<Authed> {
        DispatchClient::new(self.as_team(team))
    }

    /// A centre's case client.
    pub fn centre_cases(&self, service_point: &str) -> CaseTrackingClient<Authed> {
        CaseTrackingClient::new(self.as_centre(service_point))
    }

    /// The Tehran 123 operator's case client.
    pub fn operator_cases(&self) -> CaseTrackingClient<Authed> {
        CaseTrackingClient::new(self.as_operator())
    }

    /// An administrator.
    pub fn as_admin(&self) -> Authed {
        self.as_who("admin", referrals::auth::Role::Admin, "all", None)
    }

    pub fn hotline(&self) -> HotlineIntakeClient<Authed> {
        HotlineIntakeClient::new(self.authed())
    }

    pub fn emergency(&self) -> EmergencyIntakeClient<Authed> {
        EmergencyIntakeClient::new(self.authed())
    }

    pub fn cases(&self) -> CaseTrackingClient<Authed> {
        CaseTrackingClient::new(self.authed())
    }

    /// Records a 123 intake and returns its receipt (the call must succeed, retried as
    /// [`confirmed`] does).
    pub async fn report(
        &self,
        request: referrals::pb::ReportEmergencyRequest,
    ) -> referrals::pb::IntakeReceipt {
        report_confirmed(&self.emergency(), &self.channel(), request).await
    }

    /// Records a 1480 intake and returns its receipt (the call must succeed, retried as
    /// [`confirmed`] does).
    pub async fn submit(
        &self,
        request: referrals::pb::SubmitReferralRequest,
    ) -> referrals::pb::IntakeReceipt {
        let client = self.hotline();
        confirmed(&self.channel(), || {
            let (mut client, request) = (client.clone(), request.clone());
            async move { client.submit_referral(request).await }
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
    }

    /// The kinds of a case's events, oldest first.
    pub async fn event_kinds(&self, case_id: &str) -> Vec<String> {
        self.cases()
            .get_timeline(referrals::pb::GetTimelineRequest {
                case_id: case_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .events
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// The case as a national supervisor reads it.
    pub async fn case(&self, case_id: &str) -> referrals::pb::Case {
        self.cases()
            .get_case(referrals::pb::GetCaseRequest {
                case_id: case_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    pub fn dispatch(&self) -> DispatchClient<Authed> {
        DispatchClient::new(self.authed())
    }

    /// The directory, as an administrator manages it.
    pub fn directory(&self) -> DirectoryClient<Authed> {
        DirectoryClient::new(self.as_admin())
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Signals shutdown and waits for the server to stop; returns its database.
    pub async fn stop(mut self) -> TestDb {
        self.signal_shutdown();
        self.handle
            .await
            .expect("server task")
            .expect("server stopped cleanly");
        self.db
    }

    /// Stops the server and drops its database.
    pub async fn finish(self) {
        self.stop().await.drop_database().await;
    }
}

/// Sends a request as a call centre's software does: again, with the same request id, while
/// the service answers UNAVAILABLE (a commit it could not confirm within its 2-second bound,
/// which a machine loaded by the other tests can exceed), each time once the server's health
/// (on `channel`) says it serves intakes, for up to 30 seconds. Any other answer is returned as
/// it is.
pub async fn confirmed<T, F, Fut>(channel: &Channel, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && tokio::time::Instant::now() < deadline =>
            {
                serving_health_on(channel.clone()).await;
            }
            answer => return answer,
        }
    }
}

/// Records a 123 intake through `client`, retried as [`confirmed`] does, and returns its
/// receipt (the call must succeed).
pub async fn report_confirmed(
    client: &EmergencyIntakeClient<Authed>,
    channel: &Channel,
    request: referrals::pb::ReportEmergencyRequest,
) -> referrals::pb::IntakeReceipt {
    confirmed(channel, || {
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.report_emergency(request).await }
    })
    .await
    .unwrap()
    .into_inner()
    .receipt
    .unwrap()
}

/// A health watch of the intake service, once it reports SERVING.
pub async fn serving_intake_health(
    server: &TestServer,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    serving_health_on(server.channel()).await
}

/// A health watch of the intake service on `channel`, once it reports SERVING.
async fn serving_health_on(
    channel: Channel,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    let mut watch = tonic_health::pb::health_client::HealthClient::new(channel)
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "referral.v1.EmergencyIntake".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    wait_for_health(
        &mut watch,
        tonic_health::pb::health_check_response::ServingStatus::Serving,
        Duration::from_secs(20),
    )
    .await;
    watch
}

/// Reads a health watch until it reports `wanted`, for at most `within`; returns how long it
/// took.
pub async fn wait_for_health(
    watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    wanted: tonic_health::pb::health_check_response::ServingStatus,
    within: Duration,
) -> Duration {
    use tokio_stream::StreamExt;
    let started = std::time::Instant::now();
    tokio::time::timeout(within, async {
        while let Some(update) = watch.next().await {
            if update.expect("health update").status() == wanted {
                return;
            }
        }
        panic!("health stream ended before {wanted:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("health never reported {wanted:?} within {within:?}"));
    started.elapsed()
}
