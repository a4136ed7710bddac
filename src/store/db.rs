//! The two backends behind one set of ordinary functions: a statement is its SQL and its bound
//! values ([`Query`]), run on either backend's pool, connection or transaction ([`Ex`]).
//!
//! The statements both backends share are written once, in the SQL both accept (`$1`
//! placeholders, `returning`, row values); the few places where the backends differ — how a
//! write transaction starts, how a batch of new cases is written, notifications, durability
//! settings — are the [`Backend`] enum's, each arm in its backend's module. sqlx's own
//! generic route (one function generic over the database with every bound spelled at every use)
//! would put the same where-clauses on every function; a value per bound column and one match
//! per way of running a statement keeps the shared code plain.

use std::borrow::Cow;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments, AssertSqlSafe, FromRow, PgConnection, SqliteConnection};
use uuid::Uuid;

use crate::domain::intake::NewIntake;

use super::batch::{IntakeRows, Lookups};
use super::postgres::PostgresBackend;
use super::sqlite::SqliteBackend;

/// A value bound to a placeholder. Each kind keeps its type when null, since PostgreSQL types
/// every parameter.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Uuid(Option<Uuid>),
}

/// A value that can be bound to a placeholder.
pub(super) trait Bind {
    fn arg(self) -> Arg;
}

/// A bindable type's null.
pub(super) trait Nullable: Bind {
    const NULL: Arg;
}

impl<T: Nullable> Bind for Option<T> {
    fn arg(self) -> Arg {
        match self {
            Some(value) => value.arg(),
            None => T::NULL,
        }
    }
}

/// Binds each type as the variant given, through the conversion given.
macro_rules! bindable {
    ($($ty:ty => $variant:ident($convert:expr)),* $(,)?) => {$(
        impl Bind for $ty {
            fn arg(self) -> Arg {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(Some(($convert)(self)))
            }
        }
        impl Nullable for $ty {
            const NULL: Arg = Arg::$variant(None);
        }
    )*};
}

bindable! {
    i64 => Int(|v| v),
    &i64 => Int(|v: &i64| *v),
    f64 => Real(|v| v),
    bool => Bool(|v| v),
    String => Text(|v| v),
    &String => Text(|v: &String| v.clone()),
    &str => Text(|v: &str| v.to_owned()),
    Vec<u8> => Bytes(|v| v),
    &Vec<u8> => Bytes(|v: &Vec<u8>| v.clone()),
    &[u8] => Bytes(|v: &[u8]| v.to_vec()),
    Uuid => Uuid(|v| v),
    &Uuid => Uuid(|v: &Uuid| *v),
}

impl Bind for Arg {
    fn arg(self) -> Arg {
        self
    }
}

impl Bind for &Option<String> {
    fn arg(self) -> Arg {
        Arg::Text(self.clone())
    }
}

impl Bind for &Option<Vec<u8>> {
    fn arg(self) -> Arg {
        Arg::Bytes(self.clone())
    }
}

/// A row type both backends can decode.
pub(super) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

/// One statement: its SQL and the values bound to its placeholders, in order.
#[derive(Debug, Clone)]
pub(super) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// Every placeholder was appended by [`Query::push_bind`], each once and in order, so
    /// SQLite can take them as plain `?` (see [`sqlite_text`]).
    pushed: bool,
}

/// A statement that reads rows of type `R`.
pub(super) struct QueryAs<R> {
    query: Query,
    row: std::marker::PhantomData<fn() -> R>,
}

/// A statement that reads one column of type `T`.
pub(super) struct QueryScalar<T> {
    query: Query,
    column: std::marker::PhantomData<fn() -> T>,
}

/// A statement with fixed text.
pub(super) fn query(sql: &'static str) -> Query {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
        pushed: false,
    }
}

/// A statement with fixed text that reads rows.
pub(super) fn query_as<R: Row>(sql: &'static str) -> QueryAs<R> {
    query(sql).rows()
}

/// A statement with fixed text that reads one column.
pub(super) fn query_scalar<T>(sql: &'static str) -> QueryScalar<T>
where
    (T,): Row,
{
    query(sql).scalar()
}

/// Runs `$query` on whichever backend `$ex` is, with its text and values in that backend's
/// form, through sqlx's `$make` (`query_with` or `query_as_with`) and `$run` (`execute`,
/// `fetch_all`, …), then `$then()` on what it returns, if given (`?` applied). Each arm names its
/// backend's types, which is why this is a macro and not a function.
macro_rules! run {
    ($query:expr, $ex:expr, $make:path, $run:ident $(, $then:ident)?) => {{
        let Query { sql, args, pushed } = $query;
        match $ex {
            Ex::SqlitePool(pool) => $make(sqlite_text(sql, pushed), sqlite_args(args)?)
                .$run(pool).await? $(.$then())?,
            Ex::Sqlite(conn) => $make(sqlite_text(sql, pushed), sqlite_args(args)?)
                .$run(conn).await? $(.$then())?,
            Ex::PostgresPool(pool) => $make(sql_text(sql), postgres_args(args)?)
                .$run(pool).await? $(.$then())?,
            Ex::Postgres(conn) => $make(sql_text(sql), postgres_args(args)?)
                .$run(conn).await? $(.$then())?,
        }
    }};
}

impl Query {
    /// A statement built at run time from the crate's own text (column and table names, never
    /// a caller's values: those are bound).
    pub(super) fn built(sql: impl Into<String>) -> Self {
        let sql = sql.into();
        Self {
            pushed: !sql.contains('$'),
            sql: Cow::Owned(sql),
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub(super) fn bind(mut self, value: impl Bind) -> Self {
        self.args.push(value.arg());
        self.pushed = false;
        self
    }

    /// Appends text to a statement being built.
    pub(super) fn push(&mut self, sql: &str) -> &mut Self {
        self.pushed &= !sql.contains('$');
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Starts the next statement of a script: several statements sent as one, which SQLite
    /// runs in one call on its connection's thread, binding the values in order.
    pub(super) fn push_next(&mut self) -> &mut Self {
        if !self.sql.is_empty() {
            self.push(";\n");
        }
        self
    }

    /// Appends `sql`, a statement of fixed text with placeholders `$1`, `$2`…, as the next
    /// statement of a script, binding `values[k - 1]` wherever `$k` appears. Each placeholder
    /// is appended as [`Query::push_bind`] appends one, in the order they appear, so the
    /// script's values stay bound once each and in order.
    pub(super) fn push_statement(&mut self, sql: &str, values: &[Arg]) -> &mut Self {
        self.push_next();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            self.push(&rest[..at]);
            match rest[at + 1..at + 1 + digits].parse::<usize>() {
                Ok(k) => self.push_bind(values[k - 1].clone()),
                Err(_) => self.push("$"),
            };
            rest = &rest[at + 1 + digits..];
        }
        self.push(rest)
    }

    /// Appends a placeholder for `value`.
    pub(super) fn push_bind(&mut self, value: impl Bind) -> &mut Self {
        use std::fmt::Write as _;
        self.args.push(value.arg());
        // Writing into a String cannot fail.
        let _ = write!(self.sql.to_mut(), "${}", self.args.len());
        self
    }

    /// Appends `rows` as a `values` list, each row's values bound by `push`.
    pub(super) fn push_values<T>(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        mut push: impl FnMut(&mut Values<'_>, T),
    ) -> &mut Self {
        self.push(" values ");
        for (n, row) in rows.into_iter().enumerate() {
            self.push(if n == 0 { "(" } else { ", (" });
            let mut values = Values {
                query: self,
                first: true,
            };
            push(&mut values, row);
            self.push(")");
        }
        self
    }

    /// Reads rows of type `R`.
    pub(super) fn rows<R: Row>(self) -> QueryAs<R> {
        QueryAs {
            query: self,
            row: std::marker::PhantomData,
        }
    }

    /// Reads one column of type `T`.
    pub(super) fn scalar<T>(self) -> QueryScalar<T>
    where
        (T,): Row,
    {
        QueryScalar {
            query: self,
            column: std::marker::PhantomData,
        }
    }

    /// Runs the statement; returns how many rows it changed.
    pub(super) async fn execute(self, ex: Ex<'_>) -> Result<u64, sqlx::Error> {
        Ok(run!(self, ex, sqlx::query_with, execute, rows_affected))
    }

    async fn fetch_all<R: Row>(self, ex: Ex<'_>) -> Result<Vec<R>, sqlx::Error> {
        Ok(run!(self, ex, sqlx::query_as_with, fetch_all))
    }

    /// Runs a script of several statements (see [`Query::push_next`]) on SQLite in one call;
    /// returns each statement's rows, statement by statement.
    pub(super) async fn fetch_each(
        self,
        conn: &mut SqliteConnection,
        persistent: bool,
    ) -> Result<Vec<Vec<SqliteRow>>, sqlx::Error> {
        use futures::TryStreamExt as _;
        use sqlx::Executor as _;
        let Self { sql, args, pushed } = self;
        let script =
            sqlx::query_with(sqlite_text(sql, pushed), sqlite_args(args)?).persistent(persistent);
        let mut results = conn.fetch_many(script);
        let (mut statements, mut rows) = (Vec::new(), Vec::new());
        while let Some(result) = results.try_next().await? {
            match result {
                // The end of a statement.
                sqlx::Either::Left(_) => statements.push(std::mem::take(&mut rows)),
                sqlx::Either::Right(row) => rows.push(row),
            }
        }
        Ok(statements)
    }

    async fn fetch_optional<R: Row>(self, ex: Ex<'_>) -> Result<Option<R>, sqlx::Error> {
        Ok(run!(self, ex, sqlx::query_as_with, fetch_optional))
    }
}

/// The values of one row in [`Query::push_values`].
pub(super) struct Values<'q> {
    query: &'q mut Query,
    first: bool,
}

impl Values<'_> {
    /// Binds the row's next value.
    pub(super) fn push_bind(&mut self, value: impl Bind) -> &mut Self {
        if !std::mem::take(&mut self.first) {
            self.query.sql.to_mut().push_str(", ");
        }
        self.query.push_bind(value);
        self
    }
}

impl<R: Row> QueryAs<R> {
    pub(super) fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub(super) async fn fetch_all(self, ex: Ex<'_>) -> Result<Vec<R>, sqlx::Error> {
        self.query.fetch_all(ex).await
    }

    pub(super) async fn fetch_optional(self, ex: Ex<'_>) -> Result<Option<R>, sqlx::Error> {
        self.query.fetch_optional(ex).await
    }

    pub(super) async fn fetch_one(self, ex: Ex<'_>) -> Result<R, sqlx::Error> {
        self.query
            .fetch_optional(ex)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

impl<T> QueryScalar<T>
where
    (T,): Row,
{
    pub(super) fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub(super) async fn fetch_all(self, ex: Ex<'_>) -> Result<Vec<T>, sqlx::Error> {
        let rows: Vec<(T,)> = self.query.fetch_all(ex).await?;
        Ok(rows.into_iter().map(|(value,)| value).collect())
    }

    pub(super) async fn fetch_optional(self, ex: Ex<'_>) -> Result<Option<T>, sqlx::Error> {
        let row: Option<(T,)> = self.query.fetch_optional(ex).await?;
        Ok(row.map(|(value,)| value))
    }

    pub(super) async fn fetch_one(self, ex: Ex<'_>) -> Result<T, sqlx::Error> {
        self.fetch_optional(ex)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

fn sql_text(sql: Cow<'static, str>) -> AssertSqlSafe<Cow<'static, str>> {
    // The text is the crate's own: fixed statements, or ones built from fixed pieces with every
    // value bound.
    AssertSqlSafe(sql)
}

/// The text as SQLite runs it. A statement built with [`Query::push_bind`] (a batch's multi-row
/// insert has thousands of placeholders) takes them as plain `?`: SQLite keeps the name of every
/// `$NNN` or `?NNN` in a list it searches linearly, both when it prepares the statement and when
/// each value is bound, which made a 500-row insert quadratic.
fn sqlite_text(sql: Cow<'static, str>, pushed: bool) -> AssertSqlSafe<Cow<'static, str>> {
    if !pushed {
        return sql_text(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
            while chars.next_if(char::is_ascii_digit).is_some() {}
        } else {
            out.push(c);
        }
    }
    sql_text(Cow::Owned(out))
}

fn sqlite_args(args: Vec<Arg>) -> Result<sqlx::sqlite::SqliteArguments, sqlx::Error> {
    arguments::<sqlx::Sqlite>(args)
}

fn postgres_args(args: Vec<Arg>) -> Result<sqlx::postgres::PgArguments, sqlx::Error> {
    arguments::<sqlx::Postgres>(args)
}

/// The values in `DB`'s form, each with its type (a null too).
fn arguments<DB: sqlx::Database>(args: Vec<Arg>) -> Result<DB::Arguments, sqlx::Error>
where
    DB::Arguments: Default,
    Option<i64>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<f64>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<bool>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Vec<u8>>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Uuid>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut out = DB::Arguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => out.add(v),
            Arg::Real(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::Bytes(v) => out.add(v),
            Arg::Uuid(v) => out.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

/// Where a statement runs: a backend's pool (a connection for the one statement) or one
/// connection (a transaction's).
pub(super) enum Ex<'a> {
    SqlitePool(&'a sqlx::SqlitePool),
    Sqlite(&'a mut SqliteConnection),
    PostgresPool(&'a sqlx::PgPool),
    Postgres(&'a mut PgConnection),
}

/// An open transaction on either backend. Dropped without [`Tx::commit`], it rolls back.
pub(super) enum Tx {
    Sqlite(super::sqlite::Transaction),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    /// One on the connection the writes that take the directory's lock keep.
    PostgresKept(super::kept::KeptTx<sqlx::Postgres>),
}

impl Tx {
    /// Runs statements in this transaction.
    pub(super) fn ex(&mut self) -> Ex<'_> {
        match self {
            Self::Sqlite(tx) => Ex::Sqlite(tx.connection()),
            Self::Postgres(tx) => Ex::Postgres(tx),
            Self::PostgresKept(tx) => Ex::Postgres(tx.connection()),
        }
    }

    /// This transaction's connection, when it is on PostgreSQL.
    fn postgres(&mut self) -> Option<&mut PgConnection> {
        match self.ex() {
            Ex::Postgres(conn) => Some(conn),
            _ => None,
        }
    }

    /// Runs one statement in this transaction; returns how many rows it changed.
    pub(super) async fn run(&mut self, query: Query) -> Result<u64, crate::domain::Error> {
        query
            .execute(self.ex())
            .await
            .map_err(super::map_sqlx_error)
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
            Self::PostgresKept(tx) => tx.commit().await,
        }
    }
}

/// The backend a store runs on, with what only it does.
#[derive(Debug, Clone)]
pub(super) enum Backend {
    Sqlite(SqliteBackend),
    Postgres(PostgresBackend),
}

impl Backend {
    /// Runs statements on the pool, each on a connection of its own.
    pub(super) fn ex(&self) -> Ex<'_> {
        match self {
            Self::Sqlite(backend) => Ex::SqlitePool(backend.pool()),
            Self::Postgres(backend) => Ex::PostgresPool(backend.pool()),
        }
    }

    /// The pool's connections now.
    pub(super) fn pool_use(&self) -> super::PoolUse {
        fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> super::PoolUse {
            super::PoolUse {
                open: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: pool.options().get_max_connections(),
            }
        }
        match self {
            Self::Sqlite(backend) => of(backend.pool()),
            Self::Postgres(backend) => of(backend.pool()),
        }
    }

    /// Starts a transaction that only reads, so that what it reads is of one moment.
    pub(super) async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(backend) => Tx::Sqlite(backend.begin_read().await?),
            Self::Postgres(backend) => Tx::Postgres(backend.pool().begin().await?),
        })
    }

    /// Starts a transaction that writes holding the directory counter's lock, which orders
    /// it after any other server's write in flight. On PostgreSQL the `BEGIN` and the lock go
    /// in one round trip ([`BEGIN_LOCKED`]), on the connection such writes keep
    /// ([`super::kept`]). On SQLite, `BEGIN IMMEDIATE` already holds the only write lock there
    /// is.
    ///
    /// [`BEGIN_LOCKED`]: super::postgres::BEGIN_LOCKED
    pub(super) async fn begin_locked_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(backend) => Tx::Sqlite(backend.begin_write().await?),
            Self::Postgres(backend) => {
                Tx::PostgresKept(backend.begin_kept(super::postgres::BEGIN_LOCKED).await?)
            }
        })
    }

    /// [`Self::begin_locked_write`] for a batch of intakes: on PostgreSQL its statements are
    /// planned without sequential scans ([`BEGIN_INTAKE_BATCH`]); on SQLite its `BEGIN` goes
    /// with the batch's lookups ([`SqliteBackend::begin_intake_batch`]).
    ///
    /// [`BEGIN_INTAKE_BATCH`]: super::postgres::BEGIN_INTAKE_BATCH
    pub(super) async fn begin_intake_batch(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(backend) => Tx::Sqlite(backend.begin_intake_batch().await?),
            Self::Postgres(backend) => Tx::PostgresKept(
                backend
                    .begin_kept(super::postgres::BEGIN_INTAKE_BATCH)
                    .await?,
            ),
        })
    }

    /// Starts a transaction that writes.
    pub(super) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(backend) => Tx::Sqlite(backend.begin_write().await?),
            Self::Postgres(backend) => Tx::Postgres(backend.pool().begin().await?),
        })
    }

    /// The statement, run in a transaction that wrote events up to `$1`, that tells other
    /// servers at commit; `None` when the backend cannot tell them (they poll).
    pub(super) fn notify_events(&self) -> Option<&'static str> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(_) => Some(super::postgres::NOTIFY_EVENTS),
        }
    }

    pub(super) async fn close(&self) {
        match self {
            Self::Sqlite(backend) => backend.close().await,
            Self::Postgres(backend) => backend.close().await,
        }
    }

    /// Reads what a batch of intakes needs, in the transaction `tx` (see [`Lookups`]).
    pub(super) async fn lookups(
        &self,
        tx: &mut Tx,
        batch: &[NewIntake],
        hashes: &[&Vec<u8>],
    ) -> Result<Lookups, sqlx::Error> {
        match (self, tx) {
            (Self::Sqlite(backend), Tx::Sqlite(tx)) => backend.lookups(tx, batch, hashes).await,
            (Self::Postgres(backend), tx) => match tx.postgres() {
                Some(conn) => backend.lookups(conn, batch, hashes).await,
                None => Err(mixed()),
            },
            _ => Err(mixed()),
        }
    }

    /// Writes a batch's rows and the waits of the cases that wait for a team in the transaction
    /// `tx`, and commits it; returns the directory's new counter when a team was taken.
    pub(super) async fn write_intake_batch(
        &self,
        tx: Tx,
        rows: &IntakeRows<'_>,
    ) -> Result<Option<i64>, crate::domain::Error> {
        use super::map_sqlx_error as db_error;
        match (self, tx) {
            (Self::Sqlite(backend), Tx::Sqlite(super::sqlite::Transaction::Write(tx))) => {
                backend.write_intake_batch(tx, rows).await
            }
            (Self::Postgres(backend), mut tx) => {
                let conn = tx.postgres().ok_or_else(|| db_error(mixed()))?;
                let directory = backend.write_intake_rows(conn, rows).await?;
                for wait in &rows.waits {
                    super::queue::start_wait(&mut tx, wait).await?;
                }
                tx.commit().await.map_err(db_error)?;
                Ok(directory)
            }
            _ => Err(db_error(mixed())),
        }
    }
}

/// A transaction of one backend handed to the other: a bug, not a fault of the database.
fn mixed() -> sqlx::Error {
    sqlx::Error::Protocol("a transaction of one backend used with the other".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(query: Query) -> String {
        sqlite_text(query.sql, query.pushed).0.into_owned()
    }

    #[test]
    fn pushed_placeholders_reach_sqlite_as_plain_question_marks() {
        let mut insert = Query::built("insert into t (a, b)");
        insert.push_values(0..11, |row, n| {
            row.push_bind(n as i64).push_bind("x");
        });
        let text = sqlite(insert);
        assert_eq!(text.matches('?').count(), 22);
        assert!(!text.contains('$') && !text.contains("?1"));

        // Numbered placeholders written in the text keep their numbers: they may repeat or
        // come out of order.
        let written = Query::built("update t set a = $2 where b = $1")
            .bind(1_i64)
            .bind(2_i64);
        assert_eq!(sqlite(written), "update t set a = $2 where b = $1");
        let mut mixed = Query::built("select 1 from t where a = $1");
        mixed.push(" and b = ").push_bind(3_i64);
        assert!(!mixed.pushed);
    }

    #[test]
    fn a_script_binds_each_statements_values_in_the_order_they_appear() {
        let mut script = Query::built(String::new());
        script.push_statement(
            "update t set a = $2 where b = $1",
            &[1_i64.arg(), 2_i64.arg()],
        );
        script
            .push_next()
            .push("insert into u (c)")
            .push_values(["x", "y"], |row, value| {
                row.push_bind(value);
            });
        script.push_statement("update v set d = d + 1 returning d", &[]);
        let values: Vec<String> = script.args.iter().map(|arg| format!("{arg:?}")).collect();
        assert_eq!(
            values,
            [
                "Int(Some(2))",
                "Int(Some(1))",
                "Text(Some(\"x\"))",
                "Text(Some(\"y\"))"
            ]
        );
        assert_eq!(
            sqlite(script),
            "update t set a = ? where b = ?;\ninsert into u (c) values (?), (?);\n\
             update v set d = d + 1 returning d"
        );
    }
}
