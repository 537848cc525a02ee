//! PostgreSQL failures as the crate's [`Error`].

use std::fmt;
use std::sync::Arc;

use ::postgres::error::SqlState;

use crate::error::Error;

/// A failure of the PostgreSQL store: the server refused a statement, the
/// connection or the pool failed, or the store was configured wrongly.
///
/// A refusal for breaking a constraint (SQLSTATE class 23: a CHECK, a
/// uniqueness rule, a foreign key, or one of the append-only guards, which
/// raise `integrity_constraint_violation`) is the item's fault, as a
/// SQLite constraint is ([`PgError::is_constraint`]); everything else is a
/// store failure.
#[derive(Clone, Debug)]
pub struct PgError(Kind);

#[derive(Clone, Debug)]
enum Kind {
    /// The client or the server.
    Client(Arc<::postgres::Error>),
    /// No connection could be had from the pool in time (its message
    /// carries the last connection error).
    Pool(String),
    /// A setting the store refuses (a schema name, a pool size).
    Config(String),
}

impl PgError {
    /// A configuration the store refuses.
    pub(crate) fn config(why: impl Into<String>) -> Self {
        PgError(Kind::Config(why.into()))
    }

    /// The SQLSTATE the server answered with, if it answered.
    pub fn code(&self) -> Option<&SqlState> {
        match &self.0 {
            Kind::Client(e) => e.code(),
            _ => None,
        }
    }

    /// Whether the server refused a write for breaking a constraint (class
    /// 23), as opposed to failing itself.
    pub fn is_constraint(&self) -> bool {
        self.code().is_some_and(|c| c.code().starts_with("23"))
    }

    /// Whether the transaction lost a race with another one and may simply
    /// be run again: a serialization failure or a deadlock.
    pub fn is_retryable(&self) -> bool {
        self.code().is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        })
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Client(e) => match e.as_db_error() {
                Some(db) => {
                    write!(
                        f,
                        "{} {}: {}",
                        db.severity(),
                        db.code().code(),
                        db.message()
                    )?;
                    if let Some(detail) = db.detail() {
                        write!(f, " ({detail})")?;
                    }
                    Ok(())
                }
                None => {
                    write!(f, "{e}")?;
                    match std::error::Error::source(&**e) {
                        Some(cause) => write!(f, ": {cause}"),
                        None => Ok(()),
                    }
                }
            },
            Kind::Pool(why) => write!(f, "no connection from the pool: {why}"),
            Kind::Config(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Kind::Client(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<::postgres::Error> for PgError {
    fn from(e: ::postgres::Error) -> Self {
        PgError(Kind::Client(Arc::new(e)))
    }
}

impl From<::postgres::Error> for Error {
    fn from(e: ::postgres::Error) -> Self {
        Error::Postgres(e.into())
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Postgres(PgError(Kind::Pool(e.to_string())))
    }
}

impl Error {
    /// The PostgreSQL failure inside, if this is one.
    pub(crate) fn as_postgres(&self) -> Option<&PgError> {
        match self {
            Error::Postgres(e) => Some(e),
            _ => None,
        }
    }
}
