//! The PostgreSQL side: the default table, its statements, and writing one
//! batch as one transaction.
//!
//! Nothing a client sends becomes SQL text: the table name comes from the
//! configuration and is quoted as an identifier; keys and values are always
//! bound parameters (arrays unnested by PostgreSQL).

use std::time::{Duration, SystemTime};

use tokio_postgres::{Client, NoTls, Statement};

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

#[derive(Debug, Clone)]
pub enum RowChange {
    Upsert {
        type_name: &'static str,
        value: Vec<u8>,
        expires_at: Option<SystemTime>,
    },
    Delete,
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
    table: String,
}

/// One open connection with its prepared statements.
pub struct Conn {
    client: Client,
    upsert: Statement,
    delete: Statement,
    flush: Statement,
}

impl Sink {
    pub fn new(url: &str, table: &str) -> Result<Sink, String> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("write-behind-url: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("larder-write-behind");
        }
        Ok(Sink {
            config,
            table: quote_table(table),
        })
    }

    /// The table, quoted.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Opens a connection, its I/O driven by a task of its own.
    pub async fn connect_plain(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "write-behind connection closed");
            }
        });
        Ok(client)
    }

    /// Opens a connection (its I/O driven by a task of its own) and
    /// prepares the statements. The table must exist.
    pub async fn connect(&self) -> Result<Conn, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "write-behind connection closed");
            }
        });
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
        Ok(Conn {
            client,
            upsert,
            delete,
            flush,
        })
    }

    /// Creates the table if it is missing; returns the greatest version it
    /// holds (0 if none), so that this process's versions start above it.
    pub async fn prepare_table(&self) -> Result<i64, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
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

    /// Writes one batch (distinct keys) in one transaction: its deletes as
    /// one statement, its upserts as another. Returns (rows written, rows
    /// deleted) as PostgreSQL counted them (rows a newer version already
    /// covers are not counted).
    pub async fn write(&mut self, rows: &[Row]) -> Result<(u64, u64), tokio_postgres::Error> {
        let mut up_db = Vec::new();
        let mut up_key: Vec<&[u8]> = Vec::new();
        let mut up_type = Vec::new();
        let mut up_value: Vec<&[u8]> = Vec::new();
        let mut up_expires = Vec::new();
        let mut up_version = Vec::new();
        let mut del_db = Vec::new();
        let mut del_key: Vec<&[u8]> = Vec::new();
        let mut del_version = Vec::new();
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
            }
        }
        let transaction = self.client.transaction().await?;
        let mut deleted = 0;
        if !del_db.is_empty() {
            deleted = transaction
                .execute(&self.delete, &[&del_db, &del_key, &del_version])
                .await?;
        }
        let mut written = 0;
        if !up_db.is_empty() {
            written = transaction
                .execute(
                    &self.upsert,
                    &[
                        &up_db,
                        &up_key,
                        &up_type,
                        &up_value,
                        &up_expires,
                        &up_version,
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok((written, deleted))
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
