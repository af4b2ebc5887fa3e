//! Transports for warehouse studies: connect to an engine, run the SQL text
//! that `healthgap-sql` compiles, and pull back result sets as plain typed
//! columns ([`healthgap_sql::ResultSet`]).
//!
//! - [`Postgres`]: PostgreSQL through the pure-Rust `postgres` client (no
//!   libpq). The password comes from an environment variable the config
//!   names, never from the config file or the URL, and is never printed.
//!   Every statement run is kept (text only) for results.json.
//! - [`moments::cell_moments`]: the per-cell moments of the linear methods,
//!   computed by the engine (two passes, centred), only aggregates pulled.
//! - [`testing::TestServer`]: a throwaway PostgreSQL server on a temporary
//!   folder and a Unix socket, for tests.

mod error;
pub mod moments;
mod postgres_engine;
pub mod testing;

pub use error::WarehouseError;
pub use postgres_engine::Postgres;
