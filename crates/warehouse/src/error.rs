//! Errors of the transports. None of them carries a password.

/// Everything that can go wrong talking to a warehouse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WarehouseError {
    /// The connection string does not parse.
    #[error("warehouse url `{url}`: {message}")]
    Url {
        /// The URL as given (it holds no password: those are refused).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A password was written into the URL.
    #[error(
        "the warehouse url holds a password; remove it and name an environment variable that \
         holds it instead (`password_env = \"VAR\"` in a config, `--password-env VAR` for \
         `healthgap synth --to`): passwords are never read from URLs or config files"
    )]
    PasswordInUrl,
    /// The environment variable that should hold the password is not set.
    #[error(
        "the environment variable `{var}` (`password_env`) is not set; export the warehouse password in it"
    )]
    MissingPassword {
        /// Its name.
        var: String,
    },
    /// The server refused or dropped the connection.
    #[error("cannot connect to the warehouse {target}: {message}")]
    Connect {
        /// Host, port, database and user (no password).
        target: String,
        /// The server's or the network's message.
        message: String,
    },
    /// A statement failed.
    #[error("the warehouse {target} failed a query: {message} (query: {sql})")]
    Query {
        /// Host, port, database and user.
        target: String,
        /// The server's message.
        message: String,
        /// The statement's text (it holds no credentials).
        sql: String,
    },
    /// A column has a type the transport cannot pull.
    #[error("column `{column}` of the warehouse result has type {type_name}, which cannot be read")]
    ColumnType {
        /// The column.
        column: String,
        /// The engine's type name.
        type_name: String,
    },
    /// SQL text could not be compiled (a name that cannot be quoted, ...).
    #[error(transparent)]
    Sql(#[from] healthgap_sql::SqlError),
    /// Writing to the server (COPY) failed.
    #[error("writing to the warehouse {target} failed: {message}")]
    Write {
        /// Host, port, database and user.
        target: String,
        /// What failed.
        message: String,
    },
}
