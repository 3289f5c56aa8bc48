//! Bespin core: the multi-tenant AI co-founder backend as a library over redb.

mod error;

pub use error::{DailyQuotaExceeded, Error, ErrorKind, FieldError, LocPart, QuotaExceeded, Result};
