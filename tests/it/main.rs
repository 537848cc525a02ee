//! All integration tests in one binary, so the suite links once.

mod common;
mod model;
mod properties;
mod store_file;
