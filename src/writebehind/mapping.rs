//! Table mappings: keys matching a pattern such as `user:{id}` written to
//! the rows of an existing table (`users`, keyed by its column `id`) instead
//! of the default key/value table.
//!
//! # Syntax (`write-behind-map`)
//!
//! ```text
//! write-behind-map "<pattern> <table> [column=<col>] [db=<n>]"
//! ```
//!
//! - `<pattern>`: the key with exactly one `{<key column>}` placeholder, e.g.
//!   `user:{id}`. The placeholder captures the (non-empty) part of the key
//!   between the literal prefix and suffix; it becomes the value of the key
//!   column (sent as text, cast by PostgreSQL to the column's type).
//! - `<table>`: `name` or `schema.name` of an existing table, names as the
//!   catalog spells them (they are always quoted, so case matters).
//! - `column=<col>`: the column a *string* value is written to (without it,
//!   string values on mapped keys are rejected to the dead-letter table).
//! - `db=<n>`: the database whose keys are mapped (default 0; a mapped table
//!   has no db column).
//!
//! Several mappings: repeat the directive (config file, or `--set` several
//! times), or separate them with `;` in one value. The first mapping that
//! matches a key wins. An empty value clears the list. Mapped keys are
//! written behind whatever `write-behind-match` says.
//!
//! # What is written
//!
//! At the first connection the table's columns are read from the catalog
//! (`pg_attribute`, by `to_regclass` of the quoted name); generated and
//! `GENERATED ALWAYS` identity columns are never written. The key column
//! must exist and carry a unique, non-partial, single-column index (its
//! primary key or a UNIQUE constraint): `ON CONFLICT` needs one. Otherwise
//! the flusher reports the error (log, `last_error`) and keeps retrying, so
//! fixing the table recovers without a restart. Every new connection (and
//! every failure other than a data error starts one) reads the catalog
//! again, so a column dropped or renamed while Larder runs is picked up; a
//! column added is picked up at the next reconnect or restart.
//!
//! - A **hash** is the whole row: every writable column other than the key
//!   column is set from the hash's field of the same name, or to NULL if the
//!   hash has no such field. So HDEL of a field sets its column to NULL, and
//!   a column the hash never had is NULL too (on insert as on update: the
//!   column default does not apply; a NOT NULL column the hash lacks makes the
//!   row a poison row, dead-lettered). Fields without a column are not
//!   written: they are counted (`unmapped_fields`), logged once per field
//!   name and shown (`last_unmapped_field`). A field named like the key
//!   column is ignored if it equals the key's captured part, and reported
//!   otherwise (the key column comes from the key).
//! - A **string** sets only its `column=` column (and the key column): the
//!   other columns keep their values, and get their defaults on insert.
//! - **DEL** (any removal) deletes the row. Expiry and eviction do not
//!   (as for the default table), and FLUSHDB/FLUSHALL leave mapped tables
//!   alone: they are the application's tables, not a copy of the cache.
//! - Lists, sets and sorted sets on a mapped key, values that are not UTF-8
//!   and keys whose captured part is not UTF-8 are not guessed at: they go to
//!   the dead-letter table with the reason.
//!
//! Values reach PostgreSQL as one JSON document per row (`{"id": "7",
//! "name": "Ada"}`, every value a JSON string), in a bound `text[]`
//! parameter; `jsonb_populate_record(NULL::<table>, doc)` casts each to its
//! column's type, so a value the type rejects is a data error of that row
//! (see the flusher's dead-lettering).
//!
//! # Ordering without a version column
//!
//! Mapped tables have no version column, so unlike the default table the
//! statements cannot refuse an older change. They do not need to: the
//! flusher has at most one wave of batches in flight, a key is in at most
//! one batch of a wave, a key drained again waits for the wave holding it,
//! and a failed batch is retried (or its poison rows dead-lettered) before
//! the next wave starts. Each key's changes therefore reach PostgreSQL one
//! after the other in version order, and what is sent is always the key's
//! latest state. (Two Larder processes writing the same table would need a
//! version column; that is not supported.)

pub use crate::config::writebehind::{parse_mappings, Mapping};

/// `"name"` or `"schema"."name"`, embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the catalog says about a mapped table, and the statements built
/// from it (only catalog names, quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Writable columns other than the key column, in table order.
    pub columns: Vec<String>,
    pub key_column: String,
    pub string_column: Option<String>,
    /// Upsert of hash rows (every writable column).
    pub upsert_hash: String,
    /// Upsert of string rows (key column and `column=`).
    pub upsert_string: Option<String>,
    pub delete: String,
}

impl TableInfo {
    /// Builds the statements for `mapping` given the table's writable
    /// columns (catalog names, table order). Checks the key and string
    /// columns are among them.
    pub fn new(mapping: &Mapping, writable: &[String]) -> Result<TableInfo, String> {
        let t = super::sink::quote_table(&mapping.table);
        let key = &mapping.key_column;
        if !writable.iter().any(|c| c == key) {
            return Err(format!(
                "write-behind-map {mapping}: table {} has no writable column \"{key}\"",
                mapping.table
            ));
        }
        if let Some(column) = &mapping.string_column {
            if column == key || !writable.iter().any(|c| c == column) {
                return Err(format!(
                    "write-behind-map {mapping}: table {} has no writable column \"{column}\" (other than the key column)",
                    mapping.table
                ));
            }
        }
        let columns: Vec<String> = writable.iter().filter(|c| *c != key).cloned().collect();
        let k = quote_ident(key);
        let upsert = |cols: &[String]| {
            let mut names = vec![k.clone()];
            names.extend(cols.iter().map(|c| quote_ident(c)));
            let selected: Vec<String> = names.iter().map(|c| format!("r.{c}")).collect();
            let action = if cols.is_empty() {
                "DO NOTHING".to_string()
            } else {
                let sets: Vec<String> = cols
                    .iter()
                    .map(|c| {
                        let c = quote_ident(c);
                        format!("{c} = excluded.{c}")
                    })
                    .collect();
                format!("DO UPDATE SET {}", sets.join(", "))
            };
            format!(
                "INSERT INTO {t} AS t ({}) SELECT {} \
                 FROM unnest($1::text[]) AS u(doc), jsonb_populate_record(NULL::{t}, u.doc::jsonb) AS r \
                 ON CONFLICT ({k}) {action}",
                names.join(", "),
                selected.join(", ")
            )
        };
        Ok(TableInfo {
            upsert_hash: upsert(&columns),
            upsert_string: mapping
                .string_column
                .as_ref()
                .map(|column| upsert(std::slice::from_ref(column))),
            delete: format!(
                "DELETE FROM {t} AS t \
                 USING unnest($1::text[]) AS u(doc), jsonb_populate_record(NULL::{t}, u.doc::jsonb) AS r \
                 WHERE t.{k} = r.{k}"
            ),
            columns,
            key_column: key.clone(),
            string_column: mapping.string_column.clone(),
        })
    }
}

/// The catalog queries (parameters: `$1` the quoted table name, `$2` the
/// key column).
pub const TABLE_EXISTS: &str = "SELECT to_regclass($1) IS NOT NULL";
pub const COLUMNS: &str = "SELECT a.attname::text FROM pg_attribute a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
       AND a.attgenerated = '' AND a.attidentity <> 'a' \
     ORDER BY a.attnum";
pub const KEY_IS_UNIQUE: &str = "SELECT EXISTS (SELECT 1 FROM pg_index i \
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
     WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 \
       AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2)";

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Settings come from files and flags: parsing never panics, and a
        /// mapping that parses captures only keys of its shape.
        #[test]
        fn arbitrary_settings_parse_without_panicking(text in "\\PC{0,60}", key in "\\PC{0,20}") {
            if let Ok(maps) = parse_mappings(&text) {
                for map in maps {
                    if let Some(captured) = map.capture(map.db, key.as_bytes()) {
                        proptest::prop_assert!(!captured.is_empty());
                        proptest::prop_assert!(key.as_bytes().starts_with(&map.prefix));
                    }
                }
            }
        }
    }

    #[test]
    fn parse_and_display() {
        let maps =
            parse_mappings("user:{id} users column=name;  ;order:{order_id}:v shop.orders db=3")
                .unwrap();
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[0].prefix, b"user:");
        assert_eq!(maps[0].suffix, b"");
        assert_eq!(maps[0].string_column.as_deref(), Some("name"));
        assert_eq!(maps[1].suffix, b":v");
        assert_eq!(maps[1].db, 3);
        assert_eq!(maps[0].to_string(), "user:{id} users column=name");
        assert_eq!(maps[1].capture(3, b"order:17:v"), Some(&b"17"[..]));
        assert_eq!(maps[1].capture(3, b"order::v"), None);
        assert_eq!(maps[1].capture(3, b"order:17:w"), None);
        for bad in [
            "users",
            "user:id users",
            "user:{} users",
            "user:{id}{x} users",
            "user:}{id users",
            "user:{id} a.b.c",
            "user:{id} users colour=x",
            "user:{id} users db=x",
        ] {
            assert!(parse_mappings(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_mappings("").unwrap(), vec![]);
    }

    #[test]
    fn statements_use_only_quoted_catalog_names() {
        let maps = parse_mappings("user:{id} users column=name").unwrap();
        let cols: Vec<String> = ["id", "name", "we\"ird"].map(String::from).to_vec();
        let info = TableInfo::new(&maps[0], &cols).unwrap();
        assert_eq!(
            info.upsert_hash,
            "INSERT INTO \"users\" AS t (\"id\", \"name\", \"we\"\"ird\") SELECT r.\"id\", r.\"name\", r.\"we\"\"ird\" \
             FROM unnest($1::text[]) AS u(doc), jsonb_populate_record(NULL::\"users\", u.doc::jsonb) AS r \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"we\"\"ird\" = excluded.\"we\"\"ird\""
        );
        assert!(info
            .upsert_string
            .as_deref()
            .unwrap()
            .ends_with("ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\""));
        assert!(TableInfo::new(&maps[0], &["name".to_string()]).is_err());
        assert!(TableInfo::new(&maps[0], &["id".to_string()]).is_err());
    }
}
