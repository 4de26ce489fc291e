//! The TDengine sink over the `taos` crate: WebSocket (`ws://`/`wss://`, taosAdapter) or the
//! native client library loaded at run time (`taos://`). A pool holds one connection per
//! concurrent statement and replaces broken ones. Errors are classified by TDengine's error code
//! (`include/util/taoserror.h`): connection, timeout, busy and leader-change codes are retried
//! for as long as it takes; a code not listed here is retried too, but only `retry_limit` times,
//! so that an error no retry heals cannot hold a job forever.

use std::collections::BTreeMap;

use influx2td_config::check::NetworkFailure;
use influx2td_proto::ColumnType;
use taos::{
    AsyncFetchable, AsyncQueryable, AsyncTBuilder, ColumnView, TaosBuilder, TaosPool, Ty, Value,
};

use crate::convert::Precision;
use crate::mapping::{TIMESTAMP_COLUMN, quote};
use crate::rows::{Cells, Segment, TableRows, rows_in};
use crate::schema::{TableSchema, from_describe};
use crate::sink::{DatabaseInfo, InsertTarget, Sink, SinkError, SinkErrorKind, insert_as_sql};

/// DDL for something that exists already: success for a writer racing another.
const ALREADY_EXISTS: &[i32] = &[0x0360, 0x0369, 0x036B, 0x0381, 0x0603, 0x263C, 0x267F];
/// The schema the writer assumed is out of date.
const STALE: &[i32] = &[
    0x0362, 0x036A, 0x036C, 0x03C6, 0x0618, 0x061B, 0x2602, 0x2603, 0x2653,
];
/// Nothing works until a person acts: credentials, rights, a missing database.
const FATAL: &[i32] = &[
    0x0303, 0x0351, 0x0353, 0x0357, 0x0386, 0x0388, 0x0512, 0x2616, 0x2644,
];
/// The network, a timeout, a busy or restarting server, a leader change, a vnode that moved or
/// closed under a query (0x0503, seen while another database was being dropped): heals by itself.
const TRANSIENT: &[i32] = &[
    0x000B, 0x0013, 0x0015, 0x0018, 0x0019, 0x0020, 0x0021, 0x0022, 0x0023, 0x0024, 0x0025, 0x0026,
    0x0027, 0x0028, 0x0029, 0x002A, 0x0102, 0x0126, 0x0129, 0x012C, 0x0130, 0x0131, 0x0213, 0x022D,
    0x03D3, 0x03D5, 0x03D7, 0x0503, 0x0528, 0x0529, 0x0531, 0x0613, 0x0707, 0x073B, 0x0903, 0x090C,
    0x0911, 0x0914, 0x0916, 0x0917, 0x0918,
];
/// TDengine refuses the rows themselves (bad value, timestamp out of range, too long).
const REJECTED: &[i32] = &[0x0203, 0x060B, 0x061D, 0x263D, 0x263E, 0x263F, 0x2642];

/// The kind of a TDengine error code.
pub fn classify(code: i32) -> SinkErrorKind {
    let code = code & 0xFFFF;
    if ALREADY_EXISTS.contains(&code) {
        SinkErrorKind::AlreadyExists
    } else if STALE.contains(&code) {
        SinkErrorKind::Stale
    } else if FATAL.contains(&code) {
        SinkErrorKind::Fatal
    } else if REJECTED.contains(&code) || (0x2600..0x2700).contains(&code) {
        // The parser's range: what it refuses in a statement it refuses again.
        SinkErrorKind::Rejected
    } else if TRANSIENT.contains(&code) || (0xE000..0xE100).contains(&code) {
        // 0xE0xx: the connector's own connection failures (WebSocket, taosAdapter away).
        SinkErrorKind::Retryable
    } else {
        SinkErrorKind::Unclassified
    }
}

/// How long making a connection (and the first round trip) may take: longer than the native
/// client's own retries against a port where nothing listens (about 21 s), so its own answer
/// comes first. Waiting for a pooled connection that is busy is not bounded by it.
pub const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Which TDengine a connect failure is about.
struct Endpoint<'a> {
    redacted: &'a str,
    /// `taos://`: the native client.
    native: bool,
    /// `wss://`: over TLS.
    secure: bool,
}

/// A connect failure in plain words, with what to check: which end, the URL, what happened
/// (`connection refused`, an unknown host, no answer, TLS, wrong credentials). The connector's
/// own text is logged at debug level, and shown only when it is none of these. `known`: what
/// happened, when the caller found out itself.
fn connect_failure(
    endpoint: &Endpoint<'_>,
    code: i32,
    text: &str,
    known: Option<NetworkFailure>,
) -> String {
    let Endpoint {
        redacted,
        native,
        secure,
    } = *endpoint;
    tracing::debug!(
        url = redacted,
        code,
        text,
        "the TDengine connector's own words"
    );
    let lower = text.to_lowercase();
    let ports = "ws:// and wss:// go through taosAdapter, port 6041 by default; taos:// connects to taosd natively, port 6030";
    let plain = if code == 0x0357
        || lower.contains("authentication failure")
        || lower.contains("invalid user")
    {
        "wrong user or password — check the user:password in target.dsn (TDengine's own default is root:taosdata)".to_owned()
    } else if native && code == 0x000B && known.is_none() {
        // The native client says no more than this for a refused port or an unreachable host.
        format!(
            "nothing answers there — is taosd running on that host, and is the port right? ({ports})"
        )
    } else {
        match known.or_else(|| NetworkFailure::of(text, secure)) {
            Some(NetworkFailure::Refused) if native => {
                format!("connection refused — is taosd running there, and is the port right? ({ports})")
            }
            Some(NetworkFailure::Refused) => {
                format!("connection refused — is taosAdapter running there? ({ports})")
            }
            Some(NetworkFailure::UnknownHost) => {
                "the host name does not resolve — check the host in target.dsn".to_owned()
            }
            Some(NetworkFailure::NoRoute) => "no route to the host — check the address in target.dsn, and the network or firewall between here and there".to_owned(),
            Some(NetworkFailure::Timeout) => "no answer in time — is the host reachable from here (address, firewall), and is TDengine not overloaded?".to_owned(),
            Some(NetworkFailure::Tls) if lower.contains("server name type wasn't supported") => {
                "the TLS handshake failed — wss:// needs the host name its certificate is for, not an IP address".to_owned()
            }
            Some(NetworkFailure::Tls) if lower.contains("invalid peer certificate") => {
                // The library's short cause (`UnknownIssuer`, `Expired`, `NotValidForName`) says
                // which check failed; keep it.
                let cause = text
                    .find("invalid peer certificate")
                    .map(|at| text[at..].trim_end_matches(['`', ' ']).to_owned())
                    .unwrap_or_default();
                format!("the TLS handshake failed ({cause}) — the server's certificate is not trusted: its CA must be among this machine's roots")
            }
            Some(NetworkFailure::Tls) => format!(
                "the TLS handshake failed ({}) — does the server speak TLS (wss://), or plain ws://?",
                text.trim()
            ),
            Some(NetworkFailure::Closed) => format!(
                "the server closed the connection — is that port taosAdapter's? ({ports})"
            ),
            None => format!("[{code:#06X}] {}", text.trim()),
        }
    };
    format!("cannot connect to TDengine at {redacted}: {plain}")
}

fn sink_error(error: &taos::Error, doing: &str) -> SinkError {
    let code = i32::from(error.code());
    SinkError::new(
        classify(code),
        format!("TDengine error [{code:#06X}] {doing}: {}", error.message()),
    )
}

pub use influx2td_config::InsertMode;

/// Whether this process has loaded TDengine's native client library (see [`native_client_used`]).
static NATIVE_CLIENT_USED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether this process has used TDengine's native client library. Its exit handler joins a
/// heartbeat thread that sleeps 1.5 s between beats, so a process that used it ends up to
/// 1.5 s after its work is done unless it leaves without exit handlers (the binary does).
pub fn native_client_used() -> bool {
    NATIVE_CLIENT_USED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Statements and rows to a TDengine server.
#[derive(Clone)]
pub struct TdengineSink {
    pool: TaosPool,
    redacted: String,
    /// The first host and port of the DSN, to tell a host that does not resolve from one that
    /// does not answer (the native client says the same of both).
    address: Option<(String, u16)>,
    /// `taos://`: the native client, whose binding calls block (they run on blocking threads).
    native: bool,
    /// `wss://`: over TLS.
    secure: bool,
    mode: InsertMode,
}

impl std::fmt::Debug for TdengineSink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TdengineSink")
            .field("dsn", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl TdengineSink {
    /// `dsn` may hold a password; `redacted` is what messages show instead.
    pub async fn connect(dsn: &str, redacted: &str, connections: usize) -> Result<Self, SinkError> {
        let builder = TaosBuilder::from_dsn(dsn).map_err(|e| {
            SinkError::new(
                SinkErrorKind::Fatal,
                format!("invalid TDengine DSN {redacted}: {}", e.message()),
            )
        })?;
        // Making a connection is bounded (a server that accepts and never answers would hold it
        // forever); waiting for a pooled one that is busy is not.
        let pool = builder
            .pool_builder()
            .max_size(connections.max(1))
            .runtime(deadpool::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_PATIENCE))
            .build()
            .map_err(|e| {
                SinkError::new(
                    SinkErrorKind::Fatal,
                    format!("cannot set up connections to {redacted}: {e}"),
                )
            })?;
        let native = !dsn.starts_with("ws");
        let secure = dsn.starts_with("wss");
        if native {
            NATIVE_CLIENT_USED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let address = dsn.parse::<taos::Dsn>().ok().and_then(|parsed| {
            let first = parsed.addresses.first()?;
            let port = first.port.unwrap_or(if native { 6030 } else { 6041 });
            Some((first.host.clone()?, port))
        });
        let sink = Self {
            pool,
            redacted: redacted.to_owned(),
            address,
            native,
            secure,
            mode: InsertMode::default(),
        };
        // One round trip now, so a wrong address or password shows at start, not mid-job.
        let round_trip = async {
            let connection = sink.connection().await?;
            connection.server_version().await.map_err(|e| {
                let code = i32::from(e.code());
                SinkError::new(
                    classify(code),
                    connect_failure(&sink.endpoint(), code, &e.message(), None),
                )
            })?;
            Ok::<_, SinkError>(())
        };
        tokio::time::timeout(CONNECT_PATIENCE, round_trip)
            .await
            .map_err(|_| sink.no_answer())??;
        Ok(sink)
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            redacted: &self.redacted,
            native: self.native,
            secure: self.secure,
        }
    }

    /// A connection that did not come in [`CONNECT_PATIENCE`].
    fn no_answer(&self) -> SinkError {
        SinkError::new(
            SinkErrorKind::Retryable,
            format!(
                "cannot connect to TDengine at {}: no answer in {} s — is the host reachable from here (address, firewall), is the port TDengine's, and is TDengine not overloaded?",
                self.redacted,
                CONNECT_PATIENCE.as_secs()
            ),
        )
    }

    /// Whether the DSN's host name resolves (`None`: no host to try, or no answer in 5 s).
    async fn host_resolves(&self) -> Option<bool> {
        let (host, port) = self.address.clone()?;
        let looked_up = tokio::task::spawn_blocking(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).is_ok()
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), looked_up)
            .await
            .ok()?
            .ok()
    }

    async fn connection(
        &self,
    ) -> Result<deadpool::managed::Object<taos::taos_query::Manager<TaosBuilder>>, SinkError> {
        match self.pool.get().await {
            Ok(connection) => Ok(connection),
            Err(deadpool::managed::PoolError::Timeout(_)) => Err(self.no_answer()),
            // TDengine answered and said no (a wrong password is fatal, a busy server is not).
            Err(deadpool::managed::PoolError::Backend(error)) => {
                let code = i32::from(error.code());
                // The native client says "Unable to establish connection" of a host name that
                // does not resolve too: look it up to tell.
                let unresolved =
                    self.native && code == 0x000B && self.host_resolves().await == Some(false);
                let failure = unresolved.then_some(NetworkFailure::UnknownHost);
                Err(SinkError::new(
                    classify(code),
                    connect_failure(&self.endpoint(), code, &error.message(), failure),
                ))
            }
            Err(other) => Err(SinkError::new(
                SinkErrorKind::Retryable,
                format!("cannot connect to TDengine at {}: {other}", self.redacted),
            )),
        }
    }

    /// Runs a query; every cell as text (for checks, `verify` and the live tests). A query
    /// reads only, so one that fails in a way that heals by itself is asked again, twice.
    pub async fn records(&self, sql: &str) -> Result<Vec<Vec<String>>, SinkError> {
        let mut pause = std::time::Duration::from_millis(200);
        for _ in 0..2 {
            match self.records_once(sql).await {
                Err(error) if error.kind == SinkErrorKind::Retryable => {
                    tracing::debug!(%error, "query failed; asking again");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
                answer => return answer,
            }
        }
        self.records_once(sql).await
    }

    async fn records_once(&self, sql: &str) -> Result<Vec<Vec<String>>, SinkError> {
        let connection = self.connection().await?;
        let mut result = connection
            .query(sql)
            .await
            .map_err(|e| sink_error(&e, sql))?;
        let records = result.to_records().await.map_err(|e| sink_error(&e, sql))?;
        Ok(records
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|value| value.to_string().unwrap_or_default())
                    .collect()
            })
            .collect())
    }

    pub fn redacted_dsn(&self) -> &str {
        &self.redacted
    }

    /// The same sink writing rows the other way.
    pub fn with_mode(mut self, mode: InsertMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn mode(&self) -> InsertMode {
        self.mode
    }

    /// Writes rows by parameter binding: one prepared `INSERT INTO ? USING ...` for the union of
    /// the segments' tags and columns, each child table bound as a batch, executed once.
    async fn bind(
        &self,
        target: &InsertTarget<'_>,
        tables: &[TableRows<'_>],
        segments: &[Segment],
    ) -> Result<(), SinkError> {
        let bound = Bound::new(target, tables, segments);
        let doing = format!(
            "binding {} rows of {} child tables of {}.{}",
            bound.rows,
            bound.tables.len(),
            quote(target.database),
            quote(target.super_table)
        );
        let connection = self.connection().await?;
        let outcome = if self.native {
            // The native client's statement calls block: off the async threads.
            tokio::task::spawn_blocking(move || {
                use taos::sync::Bindable;
                let mut statement = taos::Stmt::init(&connection)?;
                statement.prepare(&bound.sql)?;
                for (table, tags, columns) in &bound.tables {
                    statement.set_tbname_tags(table, tags)?;
                    statement.bind(columns)?;
                    statement.add_batch()?;
                }
                statement.execute()
            })
            .await
            .map_err(|error| {
                SinkError::new(
                    SinkErrorKind::Retryable,
                    format!("binding rows for TDengine stopped: {error}"),
                )
            })?
        } else {
            use taos::AsyncBindable;
            async {
                let mut statement =
                    <taos::Stmt as AsyncBindable<taos::Taos>>::init(&connection).await?;
                statement.prepare(&bound.sql).await?;
                for (table, tags, columns) in &bound.tables {
                    statement.set_tbname_tags(table, tags).await?;
                    statement.bind(columns).await?;
                    statement.add_batch().await?;
                }
                statement.execute().await
            }
            .await
        };
        outcome
            .map(|_| ())
            .map_err(|error| sink_error(&error, &doing))
    }
}

/// Rows ready to bind: the statement, and per child table its name, tags and columns.
struct Bound {
    sql: String,
    tables: Vec<(String, Vec<Value>, Vec<ColumnView>)>,
    rows: usize,
}

impl Bound {
    fn new(target: &InsertTarget<'_>, tables: &[TableRows<'_>], segments: &[Segment]) -> Self {
        // The union of the segments' tags and columns, in the order they first appear: a table
        // lacking one binds NULL there.
        let mut tag_names: Vec<&str> = Vec::new();
        let mut columns: Vec<(&str, ColumnType)> = Vec::new();
        for (table, _) in segments {
            for (name, _) in &tables[*table].tags {
                if !tag_names.contains(&name.as_str()) {
                    tag_names.push(name);
                }
            }
            for column in &tables[*table].columns {
                if !columns.iter().any(|(name, _)| *name == column.name) {
                    columns.push((&column.name, column.cells.column_type()));
                }
            }
        }
        let placeholders = |count: usize| vec!["?"; count].join(",");
        let sql = format!(
            "INSERT INTO ? USING {}.{} ({}) TAGS ({}) ({}) VALUES ({})",
            quote(target.database),
            quote(target.super_table),
            tag_names
                .iter()
                .map(|name| quote(name))
                .collect::<Vec<_>>()
                .join(","),
            placeholders(tag_names.len()),
            std::iter::once(quote(TIMESTAMP_COLUMN))
                .chain(columns.iter().map(|(name, _)| quote(name)))
                .collect::<Vec<_>>()
                .join(","),
            placeholders(columns.len() + 1),
        );
        let bound = segments
            .iter()
            .map(|(index, range)| {
                let table = &tables[*index];
                let held: BTreeMap<&str, &Cells<'_>> = table
                    .columns
                    .iter()
                    .map(|column| (column.name.as_str(), &column.cells))
                    .collect();
                let tags = tag_names
                    .iter()
                    .map(
                        |name| match table.tags.iter().find(|(tag, _)| tag == name) {
                            Some((_, Some(value))) => Value::NChar(value.clone()),
                            _ => Value::Null(Ty::NChar),
                        },
                    )
                    .collect();
                let timestamps = table.timestamps[range.clone()].to_vec();
                let mut views = vec![match target.precision {
                    Precision::Nanoseconds => ColumnView::from_nanos_timestamp(timestamps),
                    Precision::Microseconds => ColumnView::from_micros_timestamp(timestamps),
                    Precision::Milliseconds => ColumnView::from_millis_timestamp(timestamps),
                }];
                views.extend(columns.iter().map(|(name, column_type)| {
                    column_view(held.get(name).copied(), *column_type, range.clone())
                }));
                (
                    format!("{}.{}", target.database, table.child_table),
                    tags,
                    views,
                )
            })
            .collect();
        Self {
            sql,
            tables: bound,
            rows: rows_in(segments),
        }
    }
}

/// Rows `range` of a column as a view to bind; all NULL where the table has no such column.
fn column_view(
    cells: Option<&Cells<'_>>,
    column_type: ColumnType,
    range: std::ops::Range<usize>,
) -> ColumnView {
    let rows = range.len();
    match (cells, column_type) {
        (Some(Cells::Double(values)), _) => ColumnView::from_doubles(values[range].to_vec()),
        (Some(Cells::BigInt(values)), _) => ColumnView::from_big_ints(values[range].to_vec()),
        (Some(Cells::UBigInt(values)), _) => {
            ColumnView::from_unsigned_big_ints(values[range].to_vec())
        }
        (Some(Cells::Bool(values)), _) => ColumnView::from_bools(values[range].to_vec()),
        (Some(Cells::VarChar(values)), _) => ColumnView::from_varchar::<&str, _, _, _>(
            values[range].iter().map(|value| value.as_deref()),
        ),
        (None, ColumnType::Double) => ColumnView::from_doubles(vec![None::<f64>; rows]),
        (None, ColumnType::Int64) => ColumnView::from_big_ints(vec![None::<i64>; rows]),
        (None, ColumnType::Uint64) => ColumnView::from_unsigned_big_ints(vec![None::<u64>; rows]),
        (None, ColumnType::Bool) => ColumnView::from_bools(vec![None::<bool>; rows]),
        (None, ColumnType::String) => {
            ColumnView::from_varchar::<&str, _, _, _>(vec![None::<&str>; rows])
        }
    }
}

impl Sink for TdengineSink {
    async fn insert(
        &self,
        target: &InsertTarget<'_>,
        tables: &[TableRows<'_>],
        segments: &[Segment],
    ) -> Result<(), SinkError> {
        match self.mode {
            InsertMode::Bind => self.bind(target, tables, segments).await,
            InsertMode::Sql => insert_as_sql(self, target, tables, segments).await,
        }
    }

    async fn execute(&self, sql: &str) -> Result<(), SinkError> {
        let connection = self.connection().await?;
        connection.exec(sql).await.map(|_| ()).map_err(|e| {
            let shown: String = sql.chars().take(200).collect();
            sink_error(&e, &format!("running {shown}"))
        })
    }

    async fn describe(
        &self,
        database: &str,
        super_table: &str,
    ) -> Result<Option<TableSchema>, SinkError> {
        let sql = format!("DESCRIBE {}.{}", quote(database), quote(super_table));
        let rows = match self.records(&sql).await {
            Ok(rows) => rows,
            Err(error) if error.kind == SinkErrorKind::Stale => return Ok(None),
            Err(error) => return Err(error),
        };
        let described: Vec<(String, String, u32, String)> = rows
            .into_iter()
            .map(|row| {
                let cell = |index: usize| row.get(index).cloned().unwrap_or_default();
                (cell(0), cell(1), cell(2).parse().unwrap_or(0), cell(3))
            })
            .collect();
        Ok((!described.is_empty()).then(|| from_describe(&described)))
    }

    async fn database(&self, database: &str) -> Result<Option<DatabaseInfo>, SinkError> {
        let literal = crate::sql::escape_string(database).unwrap_or_default();
        let rows = self
            .records(&format!(
                "SELECT `precision` FROM information_schema.ins_databases WHERE name = {literal}"
            ))
            .await?;
        let Some(precision) = rows.first().and_then(|row| row.first()) else {
            return Ok(None);
        };
        let precision = Precision::parse(precision).ok_or_else(|| {
            SinkError::new(
                SinkErrorKind::Fatal,
                format!("database {database:?} has precision {precision:?}"),
            )
        })?;
        let count = |sql: String| async move {
            let rows = self.records(&sql).await?;
            Ok::<u64, SinkError>(
                rows.first()
                    .and_then(|row| row.first())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )
        };
        let tables = count(format!(
            "SELECT COUNT(*) FROM information_schema.ins_tables WHERE db_name = {literal}"
        ))
        .await?
            + count(format!(
                "SELECT COUNT(*) FROM information_schema.ins_stables WHERE db_name = {literal}"
            ))
            .await?;
        Ok(Some(DatabaseInfo { precision, tables }))
    }

    /// TDengine acknowledges an INSERT once it is in its write-ahead log.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified_by_what_retrying_can_do() {
        // Seen on a real TDengine 3.3.6 while its first child tables were being created by
        // concurrent inserts, and while it restarted: both succeeded on retry.
        assert_eq!(
            classify(0x0216),
            SinkErrorKind::Unclassified,
            "syntax error ... bounded cols is expected for supertable insertion (a creation race, heals in a try or two)"
        );
        assert_eq!(
            classify(0x0130),
            SinkErrorKind::Retryable,
            "server restarting"
        );
        assert_eq!(
            classify(0x036B),
            SinkErrorKind::AlreadyExists,
            "column already exists"
        );
        assert_eq!(
            classify(0x036C),
            SinkErrorKind::Stale,
            "column does not exist"
        );
        assert_eq!(
            classify(0x2653),
            SinkErrorKind::Stale,
            "value too long: widen and retry"
        );
        assert_eq!(
            classify(0x0357),
            SinkErrorKind::Fatal,
            "authentication failure"
        );
        assert_eq!(
            classify(0x0388),
            SinkErrorKind::Fatal,
            "database does not exist"
        );
        assert_eq!(
            classify(0x060B),
            SinkErrorKind::Rejected,
            "timestamp out of range"
        );
        assert_eq!(classify(0x2600), SinkErrorKind::Rejected, "syntax error");
        assert_eq!(classify(0x090C), SinkErrorKind::Retryable, "not the leader");
        assert_eq!(
            classify(0x0503),
            SinkErrorKind::Retryable,
            "vnode closed or removed under a query"
        );
        assert_eq!(
            classify(0x000B),
            SinkErrorKind::Retryable,
            "network unavailable"
        );
        assert_eq!(
            classify(0x7FFF),
            SinkErrorKind::Unclassified,
            "unknown codes are retried, a bounded number of times"
        );
        assert_eq!(classify(0x0019), SinkErrorKind::Retryable, "RPC timeout");
        assert_eq!(
            classify(0x0914),
            SinkErrorKind::Retryable,
            "vnode restoring"
        );
        assert_eq!(
            classify(0xE001),
            SinkErrorKind::Retryable,
            "WebSocket connection failed"
        );
        assert_eq!(
            classify(0x8000_036Bu32 as i32),
            SinkErrorKind::AlreadyExists,
            "the high bit TDengine sets is ignored"
        );
    }
}
