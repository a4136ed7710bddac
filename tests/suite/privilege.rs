//! Least privilege: `referrals serve` runs no DDL and refuses a schema that is not its build's,
//! naming the command to run; `referrals migrate --grant-to` gives the service's PostgreSQL role
//! exactly what it needs, and that role cannot alter the trail even once the owner has dropped
//! its triggers. (Every other PostgreSQL test already runs its servers as that role.)

use crate::common::fixtures::emergency;
use crate::common::{Backend, OWNER_ROLE, SERVICE_ROLE, TestDb, TestServer};

backend_tests!(
    serve_refuses_a_schema_behind_its_build_and_migrates_only_when_asked,
    serve_with_migrate_starts_on_an_empty_database,
);

/// The migrations of this build, as the test applies some of them.
fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    }
}

/// Applies this build's migrations up to `version` as the owner.
async fn migrate_to(db: &TestDb, version: i64) {
    use sqlx::Connection;
    let migrator = migrator(db.backend);
    match db.backend {
        Backend::Sqlite => {
            let options: sqlx::sqlite::SqliteConnectOptions = db.owner_url.parse().unwrap();
            let mut conn = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
                .await
                .unwrap();
            migrator.run_to(version, &mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.owner_url).await.unwrap();
            migrator.run_to(version, &mut conn).await.unwrap();
        }
    }
}

fn latest(backend: Backend) -> i64 {
    migrator(backend).iter().map(|m| m.version).max().unwrap()
}

async fn serve_refuses_a_schema_behind_its_build_and_migrates_only_when_asked(backend: Backend) {
    let db = TestDb::unmigrated(backend).await;
    let behind = latest(backend) - 1;
    migrate_to(&db, behind).await;
    if backend == Backend::Postgres {
        // What the grants of the build that migrated it gave.
        db.execute(&format!(
            "grant select on _sqlx_migrations to {SERVICE_ROLE}"
        ))
        .await
        .unwrap();
    }
    let applied = migrations_applied(&db).await;

    // The service's own start: refused, with both versions and the command to run.
    let mut config = crate::common::config(&db.url);
    config.database.data_dir = db.dir.path().to_path_buf();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = referrals::run(config, listener, async {})
        .await
        .expect_err("a schema behind the build is refused");
    let message = refused.report();
    assert!(
        message.contains(&format!(
            "at version {behind} and this build needs {}",
            latest(backend)
        )),
        "{message}"
    );
    assert!(message.contains("run `referrals migrate`"), "{message}");
    assert_eq!(
        migrations_applied(&db).await,
        applied,
        "serve applied no migration"
    );

    // The owner migrates; the service then serves as it is.
    referrals::store::migrate(&db.owner_url).await.unwrap();
    if backend == Backend::Postgres {
        referrals::store::grant(&db.owner_url, SERVICE_ROLE)
            .await
            .unwrap();
    }
    assert_eq!(
        migrations_applied(&db).await,
        migrator(backend).iter().count() as i64
    );
    let server = TestServer::seeded_on(db).await;
    server
        .emergency()
        .report_emergency(emergency("after-migrate"))
        .await
        .expect("serves on the migrated schema");
    server.finish().await;
}

/// The one-command start of the README and the demo: --migrate on a database with no schema.
async fn serve_with_migrate_starts_on_an_empty_database(backend: Backend) {
    let db = TestDb::unmigrated(backend).await;
    // On PostgreSQL, a server that migrates must do so as the tables' owner.
    let owner_url = db.owner_url.clone();
    let server = TestServer::seeded_with(db, |c| {
        c.migrate = true;
        c.database.database_url = Some(owner_url);
    })
    .await;
    server
        .emergency()
        .report_emergency(emergency("fresh"))
        .await
        .expect("serves after migrating");
    server.finish().await;
}

/// How many migrations the database records as applied.
async fn migrations_applied(db: &TestDb) -> i64 {
    db.integers("select count(*) from _sqlx_migrations where success")
        .await[0]
}

/// The service's role can read every table, change no event or audit row, delete or truncate
/// nothing, and run no DDL; with the append-only triggers dropped by the owner, it still
/// cannot touch the trail (the owner, who can, is what the audit anchor is for).
#[tokio::test]
async fn the_service_role_cannot_alter_the_trail_even_with_the_triggers_dropped() {
    let server = TestServer::seeded_on(TestDb::new(Backend::Postgres).await).await;
    server
        .emergency()
        .report_emergency(emergency("trail"))
        .await
        .unwrap();
    let db = server.stop().await;

    // What the grants give, table by table, as the catalogue says.
    let privileges = |privilege: &str| {
        format!(
            "select coalesce(string_agg(c.relname, ',' order by c.relname), '') from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' \
             and c.relkind = 'r' and has_table_privilege('{SERVICE_ROLE}', c.oid, '{privilege}')"
        )
    };
    let all_tables = text(
        &db,
        "select string_agg(tablename, ',' order by tablename) from pg_tables \
         where schemaname = 'public'",
    )
    .await;
    assert_eq!(text(&db, &privileges("select")).await, all_tables);
    assert_eq!(text(&db, &privileges("delete")).await, "");
    assert_eq!(text(&db, &privileges("truncate")).await, "");
    let updatable = text(&db, &privileges("update")).await;
    for append_only in [
        "events",
        "audit_log",
        "_sqlx_migrations",
        "idempotency_keys",
    ] {
        assert!(
            !updatable.split(',').any(|t| t == append_only),
            "{append_only} in {updatable}"
        );
    }

    // The owner drops the protection...
    db.execute(
        "drop trigger events_append_only on events; drop trigger events_no_truncate on events; \
         drop trigger audit_log_append_only on audit_log; \
         drop trigger audit_log_no_truncate on audit_log;",
    )
    .await
    .expect("the owner may drop the triggers");
    // ...and the service's credentials still cannot change the trail or the schema.
    for statement in [
        "update events set reason = 'rewritten'",
        "delete from events",
        "truncate events",
        "update audit_log set subject = 'someone else'",
        "delete from audit_log",
        "truncate audit_log",
        "alter table events disable trigger all",
        "drop table audit_log",
        "create table shadow (id bigint)",
        "create trigger again before update on events for each row \
         execute function referrals_append_only()",
    ] {
        let refused = db.execute_as_service(statement).await.expect_err(statement);
        assert!(
            refused.contains("permission denied") || refused.contains("must be owner"),
            "{statement}: {refused}"
        );
    }
    assert_eq!(db.count("events").await, db.event_ids().await.len() as i64);
    assert!(db.count("audit_log").await > 0);
    // Without the triggers the owner can: the refusals above are the role's, not the triggers'.
    db.execute("update audit_log set subject = subject")
        .await
        .expect("the owner, unprotected, may");
    db.drop_database().await;
}

/// `--grant-to` refuses roles for which least privilege would be a fiction, and a role that
/// does not exist, saying why.
#[tokio::test]
async fn grants_refuse_the_owner_a_superuser_and_a_missing_role() {
    let db = TestDb::new(Backend::Postgres).await;
    let refusal = |role: &'static str| {
        let url = db.owner_url.clone();
        async move {
            referrals::store::grant(&url, role)
                .await
                .expect_err(role)
                .to_string()
        }
    };
    assert!(refusal(OWNER_ROLE).await.contains("must not own them"));
    let superuser = text(
        &db,
        "select rolname::text from pg_roles where rolsuper limit 1",
    )
    .await;
    let refused = referrals::store::grant(&db.owner_url, &superuser)
        .await
        .expect_err("a superuser")
        .to_string();
    assert!(refused.contains("is a superuser"), "{refused}");
    assert!(
        refusal("nobody_at_all")
            .await
            .contains("there is no role nobody_at_all")
    );
    let sqlite = TestDb::new(Backend::Sqlite).await;
    let refused = referrals::store::grant(&sqlite.url, SERVICE_ROLE)
        .await
        .expect_err("SQLite has no roles")
        .to_string();
    assert!(refused.contains("SQLite has no roles"), "{refused}");
    // The command runs the same step after migrating.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_referrals"))
        .args([
            "migrate",
            "--database-url",
            &db.owner_url,
            "--grant-to",
            SERVICE_ROLE,
        ])
        .env_remove("DATABASE_URL")
        .output()
        .expect("referrals runs");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("privileges granted"));
    db.drop_database().await;
}

async fn text(db: &TestDb, sql: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.owner_url).await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}
