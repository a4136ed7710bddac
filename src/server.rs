//! Assembles the store, the writer and the gRPC services, and serves them until shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;

use crate::grpc::undecodable::AuditUndecodable;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;

use crate::anchor::AnchorKey;
use crate::application::escalation::Escalation;
use crate::application::writer::{RoutingState, Writer, WriterConfig};
use crate::auth::{self, Keys};
use crate::config::{DatabaseConfig, ServeConfig};
use crate::domain::Error;
use crate::domain::sla::SlaTargets;
use crate::grpc::audit::AuditService;
use crate::grpc::auth::Authenticate;
use crate::grpc::case_tracking::CaseTrackingService;
use crate::grpc::crisis::CrisisService;
use crate::grpc::directory::DirectoryService;
use crate::grpc::dispatch::DispatchService;
use crate::grpc::emergency::EmergencyService;
use crate::grpc::hotline::HotlineService;
use crate::grpc::{Guard, Tracking};
use crate::pb;
use crate::pb::audit_trail_server::AuditTrailServer;
use crate::pb::case_tracking_server::CaseTrackingServer;
use crate::pb::crisis_operation_server::CrisisOperationServer;
use crate::pb::directory_server::DirectoryServer;
use crate::pb::dispatch_server::DispatchServer;
use crate::pb::emergency_intake_server::EmergencyIntakeServer;
use crate::pb::hotline_intake_server::HotlineIntakeServer;
use crate::routing::crisis::Crises;
use crate::routing::directory::{Directory, DirectoryData};
use crate::routing::policy::{Policy, SHIPPED_POLICY};
use crate::store::Store;
use crate::store::audit_writer::AuditWriter;
use crate::tracking::feed::{Feed, FeedConfig};
use crate::tracking::watch::WatchConfig;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated, or its schema is not this build's.
    #[error("cannot open the database")]
    Store(#[from] Error),
    /// The database runs with settings that may lose acknowledged intakes.
    #[error(
        "refusing to run with weakened durability: {}; fix the database settings, or pass \
         --allow-weak-durability for a throwaway demo",
        .0.join("; ")
    )]
    WeakDurability(Vec<String>),
    /// The data directory could not be created.
    #[error("cannot create the data directory")]
    DataDir(#[source] std::io::Error),
    /// Server reflection could not be built from the descriptors.
    #[error("cannot build server reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The seed directory or the stored routing state cannot be used.
    #[error("cannot prepare routing: {0}")]
    Routing(String),
    /// The signing key cannot be read or created.
    #[error(transparent)]
    Key(#[from] crate::auth::KeyError),
    /// The field keyring could not be read or created.
    #[error(transparent)]
    FieldKeys(#[from] crate::crypto::KeyringError),
    /// The audit anchor's key or checkpoints cannot be used.
    #[error(transparent)]
    Anchor(#[from] crate::anchor::AnchorError),
    /// A setting does not parse.
    #[error("bad setting: {0}")]
    Config(String),
    /// The transport failed.
    #[error("transport error")]
    Transport(#[from] tonic::transport::Error),
}

impl ServeError {
    /// Describes the error with every cause behind it, for the operator reading the log.
    pub fn report(&self) -> String {
        let mut report = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            report.push_str(": ");
            report.push_str(&error.to_string());
            cause = error.source();
        }
        report
    }
}

/// Opens the configured database, once its schema is found to be this build's; creates the
/// data directory, which holds the field keys.
pub async fn open_store(config: &DatabaseConfig) -> Result<Arc<dyn Store>, ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(ServeError::DataDir)?;
    let cipher = crate::crypto::FieldCipher::load_or_create(&config.data_dir)?;
    Ok(crate::store::open(&config.url(), config.db_max_connections, Arc::new(cipher)).await?)
}

/// Brings the configured database's schema up to this build's (creating the data directory for
/// the default SQLite file), then, when `grant_to` names a role, gives it what the service
/// needs and nothing more.
pub async fn migrate(config: &DatabaseConfig, grant_to: Option<&str>) -> Result<(), ServeError> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(ServeError::DataDir)?;
    }
    let url = config.url();
    crate::store::migrate(&url).await?;
    tracing::info!(backend = config.backend(), "migrations applied");
    if let Some(role) = grant_to {
        crate::store::grant(&url, role).await?;
        tracing::info!(role, "privileges granted");
    }
    Ok(())
}

/// Adds a field key when `rotate`, then seals every stored value again under the active key;
/// returns the new key's id (when one was added) and what was sealed, column by column.
pub async fn reseal(
    config: &DatabaseConfig,
    rotate: bool,
) -> Result<
    (
        Option<u32>,
        Vec<(String, crate::store::reseal::ResealCount)>,
    ),
    ServeError,
> {
    // The keyring exists before a key is added to it.
    crate::crypto::FieldCipher::load_or_create(&config.data_dir)?;
    let added = if rotate {
        Some(crate::crypto::add_key(&config.data_dir)?)
    } else {
        None
    };
    let store = open_store(config).await?;
    let counts = store.reseal().await;
    store.close().await;
    Ok((added, counts?))
}

/// Walks the hash chains of the events and the audit trail, then checks them against the
/// checkpoints signed outside the database (`crate::anchor`).
pub async fn verify_chains(
    config: &DatabaseConfig,
) -> Result<Vec<crate::audit::ChainReport>, ServeError> {
    let store = open_store(config).await?;
    let walked = store.verify_chains().await;
    let anchored = crate::anchor::verify(store.as_ref(), &config.data_dir).await;
    store.close().await;
    let mut reports = walked?;
    reports.extend(anchored?);
    Ok(reports)
}

/// Serves the service on `listener` until `shutdown` completes, then lets requests in flight
/// finish (up to the configured grace), commits queued intakes and closes the database.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let targets = SlaTargets::with(&config.sla_targets)
        .map_err(|e| ServeError::Config(format!("--sla-target {e}")))?;
    let (keys, created) = Keys::load_or_create(&config.database.data_dir)?;
    if created {
        tracing::info!(
            key = %auth::key_path(&config.database.data_dir).display(),
            "signing key created; mint an administrator's token with: referrals token issue --role admin --province all --data-dir {}",
            config.database.data_dir.display()
        );
    }
    let authenticate = Authenticate::new(
        Arc::new(keys),
        config.clock.clone(),
        config.rate_limit,
        config.rate_burst,
    );
    if config.migrate {
        migrate(&config.database, None).await?;
    }
    let store = open_store(&config.database).await?;
    let durability = store.durability().await?;
    if !durability.weakened.is_empty() {
        if !config.allow_weak_durability {
            store.close().await;
            return Err(ServeError::WeakDurability(durability.weakened));
        }
        tracing::warn!(settings = ?durability.weakened, "running with weakened durability: acknowledged intakes may be lost");
    }

    let routing = prepare_routing(store.as_ref(), config.seed_directory.as_deref()).await?;
    let (feed, feed_handle) = Feed::start(
        store.clone(),
        FeedConfig {
            poll_interval: config.feed_poll_interval,
            ..FeedConfig::default()
        },
    )
    .await?;
    let (writer, writer_handle) = Writer::spawn(
        store.clone(),
        routing,
        WriterConfig {
            queue_capacity: config.intake_queue,
            max_batch: config.intake_batch,
            queue_timeout: config.intake_queue_timeout,
            targets,
        },
        feed.waker(),
    );
    let sla_handle = Escalation::spawn(
        store.clone(),
        writer.clone(),
        config.clock.clone(),
        config.sla_check_interval,
        config.metrics_listen.is_some(),
    );
    let anchor = crate::anchor::Anchor::spawn(
        store.clone(),
        AnchorKey::load_or_create(&config.database.data_dir)?,
        config.database.data_dir.clone(),
        config.clock.clone(),
        config.anchor_interval,
    );
    // Set at shutdown: open streams end, telling their clients where to resume.
    let (streams_stop, streams_stopping) = watch::channel(false);
    // Reads and refusals are audited in batches of their own (see `AuditWriter`).
    let guard = Guard::new(AuditWriter::spawn(store.clone()), config.clock.clone());
    let tracking = Tracking::new(
        guard.clone(),
        store.clone(),
        writer.clone(),
        feed,
        WatchConfig {
            heartbeat: config.heartbeat_interval,
            max_replay: config.max_replay,
            buffer: config.stream_buffer,
            stall_timeout: config.stream_stall_timeout,
        },
        streams_stopping,
        crate::grpc::ReadLimit::new(config.max_concurrent_reads, config.read_queue_timeout),
    );
    let directory_writer = writer.clone();
    let (health, health_service) = tonic_health::server::health_reporter();
    let (health_stop, health_stopping) = watch::channel(false);
    // The durability check just reached the database: every service starts out SERVING.
    for service in SERVICES {
        health
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }
    let health_task = tokio::spawn(watch_database(
        store.clone(),
        health.clone(),
        config.health_interval,
    ));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let limit = config.max_message_bytes;
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(config.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(config.http2_keepalive_timeout))
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        // A client that gives up on requests the server has not yet taken up (a short deadline
        // under load) resets their streams. h2 closes the whole connection, failing every other
        // request on it, once 20 such streams wait to be taken up; a call centre's client with
        // many requests in flight reaches that on a busy server. As many as a connection may
        // have in flight are allowed, which still bounds what a reset flood can queue.
        .http2_max_pending_accept_reset_streams(Some(config.max_concurrent_streams as usize));
    if let Some(tls) = tls_config(&config)? {
        builder = builder.tls_config(tls)?;
    }
    let router = builder
        // Outermost: the request's id is set before anything else sees the request.
        .layer(crate::grpc::request_id::RequestIdLayer)
        .layer(crate::metrics::RpcMetricsLayer)
        // A refused request is the client's problem, and a stream ended by shutdown is expected:
        // warnings, not errors. Internal errors are logged as errors where they are mapped.
        .layer(
            // A shed request (RESOURCE_EXHAUSTED) is not logged one by one: under a flood that
            // is thousands of lines a second; the read limit and the writer's queue log sums.
            TraceLayer::new(SharedClassifier::new(
                GrpcErrorsAsFailures::new().with_success(GrpcCode::ResourceExhausted),
            ))
            // Every line logged for a request names its method and id.
            .make_span_with(|request: &tonic::codegen::http::Request<_>| {
                let id = request
                    .headers()
                    .get(crate::grpc::request_id::HEADER)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %request.uri().path(), request_id = %id)
            })
            .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        // Health answers anyone (load balancers hold no token); every other service, reflection
        // included, needs a valid bearer token.
        .add_service(crate::grpc::health_watch::EndWatchesOnShutdown::new(
            health_service,
            health_stopping,
        ))
        .add_service(InterceptedService::new(
            reflection().build_v1()?,
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            reflection().build_v1alpha()?,
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditUndecodable::new(
                HotlineIntakeServer::new(HotlineService::new(
                    writer.clone(),
                    config.clock.clone(),
                    guard.clone(),
                ))
                .max_decoding_message_size(limit)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
                guard.clone(),
            ),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditUndecodable::new(
                EmergencyIntakeServer::new(EmergencyService::new(
                    writer,
                    config.clock.clone(),
                    guard.clone(),
                ))
                .max_decoding_message_size(limit)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
                guard.clone(),
            ),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditUndecodable::new(
                CaseTrackingServer::new(CaseTrackingService::new(tracking.clone()))
                    .max_decoding_message_size(limit)
                    .accept_compressed(Gzip)
                    .send_compressed(Gzip),
                guard.clone(),
            ),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditUndecodable::new(
                CrisisOperationServer::new(CrisisService::new(tracking.clone()))
                    .max_decoding_message_size(limit)
                    .accept_compressed(Gzip)
                    .send_compressed(Gzip),
                guard.clone(),
            ),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditUndecodable::new(
                DispatchServer::new(DispatchService::new(tracking))
                    .max_decoding_message_size(limit)
                    .accept_compressed(Gzip)
                    .send_compressed(Gzip),
                guard.clone(),
            ),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditUndecodable::new(
                DirectoryServer::new(DirectoryService::new(directory_writer, guard.clone()))
                    .max_decoding_message_size(limit)
                    .accept_compressed(Gzip)
                    .send_compressed(Gzip),
                guard.clone(),
            ),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditUndecodable::new(
                AuditTrailServer::new(AuditService::new(guard.clone(), store.clone()))
                    .accept_compressed(Gzip)
                    .send_compressed(Gzip),
                guard,
            ),
            authenticate,
        ));

    let metrics_task = match config.metrics_listen {
        Some(addr) => {
            let handle = crate::metrics::recorder().map_err(ServeError::Config)?;
            let metrics_listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServeError::Config(format!("--metrics-listen {addr}: {e}")))?;
            tracing::info!(
                listen = %metrics_listener.local_addr().map_err(ServeError::DataDir)?,
                "serving metrics"
            );
            Some(crate::metrics::serve(metrics_listener, handle))
        }
        None => None,
    };
    tracing::info!(
        listen = %listener.local_addr().map_err(ServeError::DataDir)?,
        backend = config.database.backend(),
        "serving"
    );
    // On the signal, health turns NOT_SERVING first, so load balancers stop sending new work
    // while requests in flight finish.
    let shutdown = async move {
        shutdown.await;
        let _ = streams_stop.send(true);
        health_task.abort();
        for service in SERVICES {
            health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        // Health watches carry the NOT_SERVING, then end like every other stream.
        let _ = health_stop.send(true);
    }
    .shared();
    let grace = config.shutdown_grace;
    // No Nagle: a small response held back for the client's delayed ACK costs 40 ms a call.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let serve = router.serve_with_incoming_shutdown(incoming, shutdown.clone());
    let result = tokio::select! {
        result = serve => result.map_err(ServeError::from),
        () = async { shutdown.await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace = ?grace, "requests still in flight after the shutdown grace; closing");
            Ok(())
        }
    };

    if let Some(task) = metrics_task {
        task.abort();
    }
    // Intakes still queued are committed; any that arrive from here on are refused.
    sla_handle.stop().await;
    writer_handle.stop().await;
    feed_handle.stop().await;
    // A last checkpoint covers everything written before the stop.
    anchor.stop().await;
    store.close().await;
    tracing::info!("stopped");
    result
}

/// The TLS settings, when a certificate is configured: the server's identity and, for mutual
/// TLS, the CA whose certificates clients must present.
fn tls_config(config: &ServeConfig) -> Result<Option<ServerTlsConfig>, ServeError> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &config.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(tls))
}

/// Loads the seed directory when one is given, puts the shipped policy in force on a database
/// that has none, and reads the routing state the writer starts with.
async fn prepare_routing(
    store: &dyn Store,
    seed: Option<&Path>,
) -> Result<RoutingState, ServeError> {
    let seed = match seed {
        Some(path) => {
            let cannot =
                |why: String| ServeError::Routing(format!("seed {}: {why}", path.display()));
            let text = std::fs::read_to_string(path).map_err(|e| cannot(e.to_string()))?;
            let data: DirectoryData = toml::from_str(&text).map_err(|e| cannot(e.to_string()))?;
            Some((path, data))
        }
        None => None,
    };
    // Another server starting on the same database may write its seed or the geography first;
    // each write checks that the directory did not move since it was read, so a start that
    // loses the race reads the directory again and writes what is still missing.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match write_seed_and_geography(store, seed.as_ref()).await {
            Err(ServeError::Store(Error::DirectoryMoved)) if attempts < 5 => {
                tracing::info!(attempts, "the directory moved while it was seeded; again");
            }
            other => break other?,
        }
    }
    let stored = store.load_routing().await?;
    let (version, document) = match stored.policy {
        Some(policy) => policy,
        None => {
            let shipped = Policy::parse(SHIPPED_POLICY, 0)
                .map_err(|e| ServeError::Routing(format!("shipped policy: {e}")))?
                .document();
            // Only where no version exists yet: a server starting at the same moment on the
            // same database may have put it in force first, and then its version stands.
            match store.store_policy(&shipped, Some(0)).await {
                Ok(version) => {
                    tracing::info!(
                        policy_version = version,
                        "shipped routing policy put in force"
                    );
                    (version, shipped)
                }
                Err(error) => store.load_routing().await?.policy.ok_or(error)?,
            }
        }
    };
    let policy = Policy::new(document, version)
        .map_err(|e| ServeError::Routing(format!("stored policy {version}: {e}")))?;
    let directory = Directory::new(stored.directory)
        .map_err(|e| ServeError::Routing(format!("stored directory: {e}")))?;
    if directory.data().service_points.is_empty() && directory.data().teams.is_empty() {
        tracing::warn!(
            "the directory has no service points and no teams: every case will be unrouted; \
             add them through the Directory service or load a seed with --seed-directory"
        );
    }
    Ok(RoutingState {
        policy: Arc::new(policy),
        directory,
        crises: Crises::new(stored.crises),
    })
}

/// Writes the seed (checked against the directory with the geography and made canonical) and
/// whatever part of the built-in geography the directory lacks.
async fn write_seed_and_geography(
    store: &dyn Store,
    seed: Option<&(&Path, DirectoryData)>,
) -> Result<(), ServeError> {
    let stored = store.load_routing().await?.directory;
    let mut write = DirectoryData::default();
    if let Some((path, data)) = seed {
        let cannot = |why: String| ServeError::Routing(format!("seed {}: {why}", path.display()));
        let mut data = data.clone();
        // The seed may place its entries in any county of the country, in any spelling.
        let mut known = stored.clone();
        known.merge(DirectoryData {
            provinces: data.provinces.clone(),
            counties: data.counties.clone(),
            ..DirectoryData::default()
        });
        known.merge(crate::routing::geography::missing_from(&known));
        canonical_counties(&mut data, &known).map_err(|e| cannot(e.to_string()))?;
        known.merge(data.clone());
        Directory::new(known).map_err(|e| cannot(e.to_string()))?;
        tracing::info!(
            counties = data.counties.len(),
            service_points = data.service_points.len(),
            teams = data.teams.len(),
            "seed directory loaded"
        );
        write = data;
    }
    // Every county of the country, whether or not a seed or an administrator added it.
    let mut after = stored;
    after.merge(write.clone());
    let geography = crate::routing::geography::missing_from(&after);
    if !geography.counties.is_empty() || !geography.provinces.is_empty() {
        tracing::info!(
            counties = geography.counties.len(),
            provinces = geography.provinces.len(),
            "built-in geography added to the directory"
        );
        write.merge(geography);
    }
    if write != DirectoryData::default() {
        store.upsert_directory(&write).await?;
    }
    Ok(())
}

/// Names the counties a seed's service points, teams and covers stand in as `known` (the
/// directory with the seed's own counties and the geography) spells them, whatever spelling the
/// seed uses.
fn canonical_counties(
    data: &mut DirectoryData,
    known: &DirectoryData,
) -> Result<(), crate::routing::directory::DirectoryError> {
    let lookup = Directory::new(DirectoryData {
        provinces: Vec::new(),
        counties: known.counties.clone(),
        ..DirectoryData::default()
    })?;
    let canonical = |province: &str, name: &mut String| {
        if let Some(county) = lookup.county(province, name) {
            name.clone_from(&county.name_en);
        }
    };
    for county in &mut data.counties {
        if let Some(cover) = county.covered_by.as_mut() {
            canonical(&county.province, cover);
        }
    }
    for point in &mut data.service_points {
        canonical(&point.province, &mut point.county);
    }
    for team in &mut data.teams {
        canonical(&team.province, &mut team.base_county);
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

/// The services whose health follows the database's.
const SERVICES: [&str; 7] = [
    "",
    <HotlineIntakeServer<HotlineService> as NamedService>::NAME,
    <EmergencyIntakeServer<EmergencyService> as NamedService>::NAME,
    <CaseTrackingServer<CaseTrackingService> as NamedService>::NAME,
    <DirectoryServer<DirectoryService> as NamedService>::NAME,
    <DispatchServer<DispatchService> as NamedService>::NAME,
    <AuditTrailServer<AuditService> as NamedService>::NAME,
];

/// How long the health check's write may take before the database counts as unreachable.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// Keeps the health service in step with the database: NOT_SERVING while it does not answer.
async fn watch_database(store: Arc<dyn Store>, health: HealthReporter, interval: Duration) {
    let mut serving = true;
    loop {
        tokio::time::sleep(interval).await;
        // A write that must commit, within a second: a stalled or read-only database is as
        // unreachable as one that is down.
        let answers = tokio::time::timeout(PROBE_WAIT, store.ping())
            .await
            .is_ok_and(|ping| ping.is_ok());
        store.mark_reachable(answers);
        if serving != answers {
            let status = if answers {
                tracing::info!("database reachable; serving");
                ServingStatus::Serving
            } else {
                tracing::warn!("database unreachable; reporting NOT_SERVING");
                ServingStatus::NotServing
            };
            for service in SERVICES {
                health.set_service_status(service, status).await;
            }
            serving = answers;
        }
    }
}
