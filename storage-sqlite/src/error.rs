//! Mapping sqlx errors onto [`StorageError`], and telling constraint violations apart.

use std::fmt::Display;

use portal_core::storage::StorageError;
use sqlx::error::ErrorKind;

/// SQLite's primary result codes for "the database file is locked by someone else"
/// (`SQLITE_BUSY`) and "a table is locked" (`SQLITE_LOCKED`); extended codes keep them in
/// the low byte.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
/// `SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_CANTOPEN` and `SQLITE_PROTOCOL`: the disk or the file
/// failed, worth retrying later.
const SQLITE_IO_CODES: [i64; 4] = [13, 10, 14, 15];
/// `SQLITE_CORRUPT` and `SQLITE_NOTADB`.
const SQLITE_CORRUPT_CODES: [i64; 2] = [11, 26];

/// Maps an error of the store itself: pool timeouts, I/O and a busy database are
/// [`StorageError::Unavailable`], undecodable columns are [`StorageError::Corrupt`], anything
/// else is [`StorageError::Backend`].
pub(crate) fn map_sqlx(e: sqlx::Error) -> StorageError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StorageError::Unavailable(Box::new(e)),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
            StorageError::Corrupt(e.to_string())
        }
        sqlx::Error::Database(ref db) => {
            let primary = db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
            match primary {
                Some(c) if c == SQLITE_BUSY || c == SQLITE_LOCKED || SQLITE_IO_CODES.contains(&c) => {
                    StorageError::Unavailable(Box::new(e))
                }
                Some(c) if SQLITE_CORRUPT_CODES.contains(&c) => StorageError::Corrupt(e.to_string()),
                _ => StorageError::Backend(Box::new(e)),
            }
        }
        other => StorageError::Backend(Box::new(other)),
    }
}

/// Maps a failed migration run at connect.
pub(crate) fn map_migrate(e: sqlx::migrate::MigrateError) -> StorageError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => map_sqlx(inner),
        other => StorageError::Backend(Box::new(other)),
    }
}

/// Whether the error is a UNIQUE, PRIMARY KEY or FOREIGN KEY violation: a write refused by the
/// schema, which the write path explains as the reference store would.
pub(crate) fn is_constraint(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.kind(), ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation),
        _ => false,
    }
}

/// Whether the error is a FOREIGN KEY violation: a row pointing at a parent that does not exist.
pub(crate) fn is_foreign_key(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.kind(), ErrorKind::ForeignKeyViolation))
}

/// A stored value that does not make a valid domain value.
pub(crate) fn corrupt(what: &str, err: impl Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {err}"))
}

/// Checks a stored value through its domain parser.
pub(crate) fn parse<T, E: Display>(what: &'static str, r: Result<T, E>) -> Result<T, StorageError> {
    r.map_err(|e| corrupt(what, e))
}
