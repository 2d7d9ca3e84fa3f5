//! The PostgreSQL side: the default table, the mapped tables (see
//! [`super::mapping`]), the dead-letter table, their statements, and writing
//! one batch as one transaction.
//!
//! Nothing a client sends becomes SQL text: table names come from the
//! configuration, column names from the catalog, and both are quoted as
//! identifiers; keys and values are always bound parameters (arrays
//! unnested by PostgreSQL).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use super::mapping::{self, Mapping, TableInfo};

/// One change as it goes to PostgreSQL.
#[derive(Debug, Clone)]
pub struct Row {
    pub db: i32,
    pub key: Vec<u8>,
    /// The version the row gets; a row is only ever replaced or deleted by a
    /// change with a greater one.
    pub version: i64,
    pub change: RowChange,
}

impl Row {
    /// About how many bytes the row takes in a batch's message.
    pub fn size(&self) -> usize {
        let change = match &self.change {
            RowChange::Upsert { value, .. } | RowChange::Rejected { value, .. } => value.len(),
            RowChange::Delete => 0,
            RowChange::MapUpsert { doc, .. } | RowChange::MapDelete { doc, .. } => doc.len(),
        };
        self.key.len() + change + 32
    }
}

#[derive(Debug, Clone)]
pub enum RowChange {
    Upsert {
        type_name: &'static str,
        value: Vec<u8>,
        expires_at: Option<SystemTime>,
    },
    Delete,
    /// A row of mapping `map`: its JSON document (key column and columns,
    /// every value a JSON string). `string`: from a string value (only the
    /// key column and the mapping's `column=`).
    MapUpsert {
        map: usize,
        doc: String,
        string: bool,
    },
    /// Deletes the row of mapping `map` the document's key column names.
    MapDelete {
        map: usize,
        doc: String,
    },
    /// Refused before PostgreSQL saw it (a value no column can take as it
    /// is): goes to the dead-letter table with `reason`.
    Rejected {
        map: usize,
        type_name: &'static str,
        value: Vec<u8>,
        reason: String,
    },
}

/// Why an attempt failed. `data`: PostgreSQL refused a row's data (SQLSTATE
/// class 21, 22, 23 or 54000), so retrying the same rows cannot help, but
/// the connection and the other rows are fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub sqlstate: Option<String>,
    pub data: bool,
}

impl Failure {
    /// A failure that is not PostgreSQL refusing a row (unavailable,
    /// misconfigured...): retried.
    pub fn other(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            sqlstate: None,
            data: false,
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        match error.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let data = ["21", "22", "23"]
                    .iter()
                    .any(|class| code.starts_with(class))
                    || code == "54000";
                let mut message = format!("{code}: {}", db.message());
                if let Some(detail) = db.detail() {
                    message.push_str(" (");
                    message.push_str(detail);
                    message.push(')');
                }
                Failure {
                    message,
                    sqlstate: Some(code.to_string()),
                    data,
                }
            }
            None => {
                // tokio-postgres's text leaves the cause out ("error
                // performing TLS handshake"): the operator needs it.
                let mut message = error.to_string();
                let mut cause = std::error::Error::source(&error);
                while let Some(inner) = cause {
                    message.push_str(": ");
                    message.push_str(&inner.to_string());
                    cause = inner.source();
                }
                Failure::other(message)
            }
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `"name"` or `"schema"."name"`, with embedded quotes doubled.
pub fn quote_table(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Sink {
    config: tokio_postgres::Config,
    /// TLS to PostgreSQL (`sslmode`); `None`: plain.
    tls: Option<super::pg_tls::Connector>,
    table: String,
    table_name: String,
    dead_letter: String,
    maps: Arc<Vec<Mapping>>,
    /// What the catalog said about each mapping's table (same order), read
    /// by [`Sink::prepare`]; empty before.
    catalog: Arc<RwLock<Arc<Vec<TableInfo>>>>,
}

/// One mapping's prepared statements.
struct MapStatements {
    upsert_hash: Statement,
    upsert_string: Option<Statement>,
    delete: Statement,
}

/// One open connection with its prepared statements.
pub struct Conn {
    client: Client,
    upsert: Statement,
    delete: Statement,
    flush: Statement,
    maps: Vec<MapStatements>,
    dead_letter: Statement,
    /// Target table names for dead letters: the default table, then each
    /// mapping's.
    table_name: String,
    map_tables: Vec<String>,
}

impl Sink {
    pub fn new(url: &str, table: &str) -> Result<Sink, String> {
        Sink::with_mappings(url, table, "larder_dead_letter", Vec::new())
    }

    /// A sink that also writes `maps` to their tables and poison rows to
    /// `dead_letter`.
    pub fn with_mappings(
        url: &str,
        table: &str,
        dead_letter: &str,
        maps: Vec<Mapping>,
    ) -> Result<Sink, String> {
        let (url, tls_options) = crate::config::pg_tls::split_tls_options(url)
            .map_err(|e| format!("write-behind-url: {e}"))?;
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("write-behind-url: {e}"))?;
        let tls = super::pg_tls::connector(&tls_options)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("larder-write-behind");
        }
        Ok(Sink {
            config,
            tls,
            table: quote_table(table),
            table_name: table.to_string(),
            dead_letter: quote_table(dead_letter),
            maps: Arc::new(maps),
            catalog: Arc::new(RwLock::new(Arc::new(Vec::new()))),
        })
    }

    /// The table, quoted.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Opens a connection, its I/O driven by a task of its own.
    pub async fn connect_plain(&self) -> Result<Client, tokio_postgres::Error> {
        // As libpq: no TLS over a Unix socket, whatever sslmode says (the
        // TLS connector would fail at once, there being no host name).
        let over_unix_socket = self.config.get_hosts().iter().all(|host| match host {
            tokio_postgres::config::Host::Tcp(_) => false,
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => true,
        });
        let tls = self.tls.as_ref().filter(|_| !over_unix_socket);
        let Some(tls) = tls else {
            let (client, connection) = self.config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "write-behind connection closed");
                }
            });
            return Ok(client);
        };
        let (client, connection) = self.config.connect(tls.0.clone()).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "write-behind connection closed");
            }
        });
        Ok(client)
    }

    /// The mappings, in the order they are tried.
    pub fn maps(&self) -> &[Mapping] {
        &self.maps
    }

    /// The catalog snapshot of the mapped tables (empty before
    /// [`Sink::prepare`] succeeded).
    pub fn catalog(&self) -> Arc<Vec<TableInfo>> {
        self.catalog.read().clone()
    }

    /// Everything [`Sink::prepare_table`] does, plus: creates the
    /// dead-letter table if missing, and reads and checks every mapped
    /// table's columns and key (see [`super::mapping`]). Returns the
    /// default table's greatest version.
    pub async fn prepare(&self) -> Result<i64, Failure> {
        let max = self.prepare_table().await?;
        let client = self.connect_plain().await?;
        let dl = &self.dead_letter;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {dl} (\
                   id bigserial PRIMARY KEY, \
                   db integer NOT NULL, \
                   key bytea NOT NULL, \
                   target_table text NOT NULL, \
                   operation text NOT NULL, \
                   type text, \
                   value bytea, \
                   fields jsonb, \
                   error text NOT NULL, \
                   sqlstate text, \
                   version bigint NOT NULL, \
                   failed_at timestamptz NOT NULL DEFAULT now())"
            ))
            .await?;
        let infos = self.read_catalog(&client).await?;
        *self.catalog.write() = Arc::new(infos);
        Ok(max)
    }

    /// Reads and checks every mapped table's columns and key.
    async fn read_catalog(&self, client: &Client) -> Result<Vec<TableInfo>, Failure> {
        let mut infos = Vec::with_capacity(self.maps.len());
        for map in self.maps.iter() {
            let name = quote_table(&map.table);
            let exists: bool = client
                .query_one(mapping::TABLE_EXISTS, &[&name])
                .await?
                .try_get(0)?;
            if !exists {
                return Err(Failure::other(format!(
                    "write-behind-map {map}: table {} does not exist",
                    map.table
                )));
            }
            let columns: Vec<String> = client
                .query(mapping::COLUMNS, &[&name])
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            let info = TableInfo::new(map, &columns).map_err(Failure::other)?;
            let unique: bool = client
                .query_one(mapping::KEY_IS_UNIQUE, &[&name, &map.key_column])
                .await?
                .try_get(0)?;
            if !unique {
                return Err(Failure::other(format!(
                    "write-behind-map {map}: column \"{}\" of {} is neither its primary key nor UNIQUE (ON CONFLICT needs one)",
                    map.key_column, map.table
                )));
            }
            infos.push(info);
        }
        Ok(infos)
    }

    /// Opens a connection (its I/O driven by a task of its own) and
    /// prepares the statements, the mapped tables' from the catalog as
    /// [`Sink::prepare`] last read it. The table must exist.
    pub async fn connect(&self) -> Result<Conn, tokio_postgres::Error> {
        let client = self.connect_plain().await?;
        let catalog = self.catalog();
        self.statements(client, &catalog).await
    }

    /// Like [`Sink::connect`], but reads the mapped tables from the catalog
    /// again first (a table changed while Larder runs is picked up at the
    /// next connection: every failure other than a data error starts one).
    pub async fn open(&self) -> Result<Conn, Failure> {
        let client = self.connect_plain().await?;
        let catalog = if self.maps.is_empty() {
            self.catalog()
        } else {
            let infos = Arc::new(self.read_catalog(&client).await?);
            *self.catalog.write() = infos.clone();
            infos
        };
        Ok(self.statements(client, &catalog).await?)
    }

    async fn statements(
        &self,
        client: Client,
        catalog: &[TableInfo],
    ) -> Result<Conn, tokio_postgres::Error> {
        let t = &self.table;
        let upsert = client
            .prepare(&format!(
                "INSERT INTO {t} AS t (db, key, type, value, expires_at, version, updated_at) \
                 SELECT u.db, u.key, u.type, u.value, u.expires_at, u.version, now() \
                 FROM unnest($1::int[], $2::bytea[], $3::text[], $4::bytea[], $5::timestamptz[], $6::bigint[]) \
                   AS u(db, key, type, value, expires_at, version) \
                 ON CONFLICT (db, key) DO UPDATE SET type = excluded.type, value = excluded.value, \
                   expires_at = excluded.expires_at, version = excluded.version, updated_at = excluded.updated_at \
                 WHERE t.version < excluded.version"
            ))
            .await?;
        let delete = client
            .prepare(&format!(
                "DELETE FROM {t} AS t USING unnest($1::int[], $2::bytea[], $3::bigint[]) AS d(db, key, version) \
                 WHERE t.db = d.db AND t.key = d.key AND t.version < d.version"
            ))
            .await?;
        let flush = client
            .prepare(&format!(
                "DELETE FROM {t} AS t USING unnest($1::int[], $2::bigint[]) AS f(db, version) \
                 WHERE t.db = f.db AND t.version < f.version"
            ))
            .await?;
        let mut maps = Vec::new();
        for info in catalog {
            let upsert_string = match &info.upsert_string {
                Some(sql) => Some(client.prepare(sql).await?),
                None => None,
            };
            maps.push(MapStatements {
                upsert_hash: client.prepare(&info.upsert_hash).await?,
                upsert_string,
                delete: client.prepare(&info.delete).await?,
            });
        }
        let dead_letter = client
            .prepare(&format!(
                "INSERT INTO {} (db, key, target_table, operation, type, value, fields, error, sqlstate, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10)",
                self.dead_letter
            ))
            .await?;
        Ok(Conn {
            client,
            upsert,
            delete,
            flush,
            maps,
            dead_letter,
            table_name: self.table_name.clone(),
            map_tables: self.maps.iter().map(|m| m.table.clone()).collect(),
        })
    }

    /// Creates the table if it is missing; returns the greatest version it
    /// holds (0 if none), so that this process's versions start above it.
    pub async fn prepare_table(&self) -> Result<i64, tokio_postgres::Error> {
        let client = self.connect_plain().await?;
        let t = &self.table;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                   db integer NOT NULL, \
                   key bytea NOT NULL, \
                   type text NOT NULL, \
                   value bytea NOT NULL, \
                   expires_at timestamptz, \
                   version bigint NOT NULL, \
                   updated_at timestamptz NOT NULL DEFAULT now(), \
                   PRIMARY KEY (db, key))"
            ))
            .await?;
        let row = client
            .query_one(&format!("SELECT coalesce(max(version), 0) FROM {t}"), &[])
            .await?;
        row.try_get(0)
    }
}

impl Conn {
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes one batch (distinct keys) in one transaction: the default
    /// table's deletes as one statement and its upserts as another, then
    /// for each mapped table its deletes, hash upserts and string upserts
    /// (one statement each; a lone statement is its own transaction). Returns (rows written, rows deleted) as
    /// PostgreSQL counted them (rows a newer version already covers are not
    /// counted). `Rejected` rows are skipped (they are dead-lettered).
    pub async fn write(&mut self, rows: &[Row]) -> Result<(u64, u64), Failure> {
        let mut up_db = Vec::new();
        let mut up_key: Vec<&[u8]> = Vec::new();
        let mut up_type = Vec::new();
        let mut up_value: Vec<&[u8]> = Vec::new();
        let mut up_expires = Vec::new();
        let mut up_version = Vec::new();
        let mut del_db = Vec::new();
        let mut del_key: Vec<&[u8]> = Vec::new();
        let mut del_version = Vec::new();
        // Per mapping: deletes, hash upserts, string upserts.
        let mut mapped: Vec<[Vec<&str>; 3]> = vec![Default::default(); self.maps.len()];
        for row in rows {
            match &row.change {
                RowChange::Upsert {
                    type_name,
                    value,
                    expires_at,
                } => {
                    up_db.push(row.db);
                    up_key.push(&row.key);
                    up_type.push(*type_name);
                    up_value.push(value);
                    up_expires.push(*expires_at);
                    up_version.push(row.version);
                }
                RowChange::Delete => {
                    del_db.push(row.db);
                    del_key.push(&row.key);
                    del_version.push(row.version);
                }
                RowChange::MapUpsert { map, doc, string } => {
                    let docs = mapped
                        .get_mut(*map)
                        .ok_or_else(|| Failure::other("mapped table not prepared"))?;
                    docs[if *string { 2 } else { 1 }].push(doc);
                }
                RowChange::MapDelete { map, doc } => {
                    let docs = mapped
                        .get_mut(*map)
                        .ok_or_else(|| Failure::other("mapped table not prepared"))?;
                    docs[0].push(doc);
                }
                RowChange::Rejected { .. } => {}
            }
        }
        // The statements to run, each counting rows written or deleted.
        type Params<'p> = Vec<&'p (dyn ToSql + Sync)>;
        let mut jobs: Vec<(&Statement, Params<'_>, bool)> = Vec::new();
        if !del_db.is_empty() {
            jobs.push((&self.delete, vec![&del_db, &del_key, &del_version], false));
        }
        if !up_db.is_empty() {
            jobs.push((
                &self.upsert,
                vec![
                    &up_db,
                    &up_key,
                    &up_type,
                    &up_value,
                    &up_expires,
                    &up_version,
                ],
                true,
            ));
        }
        for (statements, [deletes, hashes, strings]) in self.maps.iter().zip(&mapped) {
            if !deletes.is_empty() {
                jobs.push((&statements.delete, vec![deletes], false));
            }
            if !hashes.is_empty() {
                jobs.push((&statements.upsert_hash, vec![hashes], true));
            }
            if !strings.is_empty() {
                let statement = statements
                    .upsert_string
                    .as_ref()
                    .ok_or_else(|| Failure::other("mapping has no string column"))?;
                jobs.push((statement, vec![strings], true));
            }
        }
        let (mut written, mut deleted) = (0, 0);
        let mut count = |rows: u64, writes: bool| {
            if writes {
                written += rows;
            } else {
                deleted += rows;
            }
        };
        if let [(statement, params, writes)] = jobs.as_slice() {
            // One statement is a transaction of its own: no BEGIN and
            // COMMIT round trips.
            count(self.client.execute(*statement, params).await?, *writes);
        } else if !jobs.is_empty() {
            let transaction = self.client.transaction().await?;
            for (statement, params, writes) in &jobs {
                count(transaction.execute(*statement, params).await?, *writes);
            }
            transaction.commit().await?;
        }
        Ok((written, deleted))
    }

    /// Writes poison rows, each with its failure, to the dead-letter table
    /// (one transaction).
    pub async fn dead_letter(&mut self, rows: &[(Row, Failure)]) -> Result<(), Failure> {
        let transaction = self.client.transaction().await?;
        for (row, failure) in rows {
            let (target, operation, type_name, value, fields): (
                &str,
                &str,
                Option<&str>,
                Option<&[u8]>,
                Option<&str>,
            ) = match &row.change {
                RowChange::Upsert {
                    type_name, value, ..
                } => (
                    &self.table_name,
                    "upsert",
                    Some(type_name),
                    Some(value),
                    None,
                ),
                RowChange::Delete => (&self.table_name, "delete", None, None, None),
                RowChange::MapUpsert { map, doc, string } => (
                    map_table(&self.map_tables, *map),
                    "upsert",
                    Some(if *string { "string" } else { "hash" }),
                    None,
                    Some(doc.as_str()),
                ),
                RowChange::MapDelete { map, doc } => (
                    map_table(&self.map_tables, *map),
                    "delete",
                    None,
                    None,
                    Some(doc.as_str()),
                ),
                RowChange::Rejected {
                    map,
                    type_name,
                    value,
                    ..
                } => (
                    map_table(&self.map_tables, *map),
                    "upsert",
                    Some(type_name),
                    Some(value),
                    None,
                ),
            };
            // jsonb cannot hold \u0000: such a document is kept as bytes.
            let (value, fields) = match fields {
                Some(doc) if doc.contains("\\u0000") => (Some(doc.as_bytes()), None),
                _ => (value, fields),
            };
            let error = failure.message.replace('\0', "");
            transaction
                .execute(
                    &self.dead_letter,
                    &[
                        &row.db,
                        &row.key,
                        &target,
                        &operation,
                        &type_name,
                        &value,
                        &fields,
                        &error,
                        &failure.sqlstate,
                        &row.version,
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Deletes every row of each flushed database older than its flush.
    pub async fn flush_dbs(
        &mut self,
        flushes: &[(i32, i64)],
    ) -> Result<u64, tokio_postgres::Error> {
        let dbs: Vec<i32> = flushes.iter().map(|f| f.0).collect();
        let versions: Vec<i64> = flushes.iter().map(|f| f.1).collect();
        self.client.execute(&self.flush, &[&dbs, &versions]).await
    }
}

fn map_table(tables: &[String], map: usize) -> &str {
    tables.get(map).map_or("?", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_quoted() {
        assert_eq!(quote_table("larder_kv"), "\"larder_kv\"");
        assert_eq!(quote_table("app.kv"), "\"app\".\"kv\"");
        assert_eq!(quote_table("a\"; DROP"), "\"a\"\"; DROP\"");
    }
}
