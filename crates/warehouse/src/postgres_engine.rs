//! PostgreSQL through the pure-Rust `postgres` client.

use std::str::FromStr;
use std::time::Duration;

use healthgap_sql::{Dialect, ResultSet, TableName, Values};
use postgres::config::Host;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, Config, NoTls, Row};

use crate::error::WarehouseError;

/// A connection to PostgreSQL, with the text of every statement it ran.
pub struct Postgres {
    client: Client,
    target: String,
    statements: Vec<String>,
    /// Whether the server has JIT compilation (version 11 on).
    has_jit: bool,
}

/// The dialect of every statement sent.
const DIALECT: Dialect = Dialect::Postgres;

impl Postgres {
    /// Connects to `url` (a `postgresql://user@host:port/db` URL or a
    /// `host=… user=… dbname=…` string; a Unix socket is a host that is a
    /// path). The password is read from the environment variable
    /// `password_env` when given; a password inside the URL is refused.
    pub fn connect(url: &str, password_env: Option<&str>) -> Result<Postgres, WarehouseError> {
        let password = match password_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| WarehouseError::MissingPassword { var: var.into() })?,
            ),
            None => None,
        };
        Postgres::connect_with_password(url, password.as_deref())
    }

    /// [`Postgres::connect`] with the password given (for callers that hold
    /// it already; it is not stored).
    pub fn connect_with_password(
        url: &str,
        password: Option<&str>,
    ) -> Result<Postgres, WarehouseError> {
        if holds_password(url) {
            return Err(WarehouseError::PasswordInUrl);
        }
        let mut config = Config::from_str(url).map_err(|e| WarehouseError::Url {
            url: url.to_string(),
            message: chain(&e),
        })?;
        if config.get_password().is_some() {
            return Err(WarehouseError::PasswordInUrl);
        }
        if let Some(password) = password {
            config.password(password);
        }
        config.connect_timeout(Duration::from_secs(15));
        config.application_name("healthgap");
        let target = describe(&config);
        let client = config.connect(NoTls).map_err(|e| WarehouseError::Connect {
            target: target.clone(),
            message: message(&e),
        })?;
        let mut pg = Postgres {
            client,
            target,
            statements: Vec::new(),
            has_jit: false,
        };
        pg.without_jit()?;
        Ok(pg)
    }

    /// Turns PostgreSQL's JIT compilation off for this session (version 11
    /// on): the moment queries are wide aggregates of `CASE` expressions,
    /// whose compilation cost more than it saved (1,000,000 rows, 21
    /// statements: 22–44 s with JIT, 16 s without; BENCHMARKS §0f).
    fn without_jit(&mut self) -> Result<(), WarehouseError> {
        let version = self.query("SHOW server_version_num")?;
        let number = match version.columns.first().map(|c| &c.1) {
            Some(Values::Text(v)) => v.first().cloned().flatten(),
            _ => None,
        };
        if number.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0) >= 110_000 {
            self.has_jit = true;
            self.query("SET jit = off")?;
        }
        Ok(())
    }

    /// Turns JIT compilation back on for this session (a server without JIT:
    /// nothing). For large tables the compiled aggregates pay for their
    /// compilation: 10,000,000 rows, the centred moments of 16 columns took
    /// 24 s with JIT and 34 s without, the first pass 2.3 s and 3.5 s
    /// (BENCHMARKS §0f″), while at 1,000,000 rows JIT made the study slower.
    pub fn with_jit(&mut self) -> Result<(), WarehouseError> {
        if self.has_jit {
            self.query("SET jit = on")?;
        }
        Ok(())
    }

    /// Host, port, database and user, for messages (never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The text of every statement run so far, in order.
    pub fn statements(&self) -> &[String] {
        &self.statements
    }

    /// Runs one statement compiled elsewhere (no parameters) and returns its
    /// result set. Columns of types other than integers, floating point,
    /// booleans and texts are an error: cast them in the query.
    pub fn query(&mut self, sql: &str) -> Result<ResultSet, WarehouseError> {
        self.statements.push(sql.to_string());
        let mut stmt = self
            .client
            .prepare(sql)
            .map_err(|e| self.query_error(&e, sql))?;
        // NUMERIC (arbitrary precision) has no f64 reading: the result is
        // read through a select that casts those columns to double precision.
        let sql = match numeric_cast(sql, &stmt) {
            Some(cast) => {
                if let Some(last) = self.statements.last_mut() {
                    last.clone_from(&cast);
                }
                stmt = self
                    .client
                    .prepare(&cast)
                    .map_err(|e| self.query_error(&e, &cast))?;
                cast
            }
            None => sql.to_string(),
        };
        let sql = sql.as_str();
        let mut columns: Vec<(String, Values)> = stmt
            .columns()
            .iter()
            .map(|c| Ok((c.name().to_string(), empty_values(c.name(), c.type_())?)))
            .collect::<Result<_, WarehouseError>>()?;
        // Rows are streamed into the columns, not held as a Vec<Row>.
        let no_params: [&(dyn postgres::types::ToSql + Sync); 0] = [];
        let target = self.target.clone();
        let failed = |e: &postgres::Error| WarehouseError::Query {
            target: target.clone(),
            message: message(e),
            sql: sql.to_string(),
        };
        let mut rows = self
            .client
            .query_raw(&stmt, no_params)
            .map_err(|e| failed(&e))?;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(failed(&e)),
            };
            for (j, (name, values)) in columns.iter_mut().enumerate() {
                push_value(&row, j, values).map_err(|e| WarehouseError::ColumnType {
                    column: name.clone(),
                    type_name: e.to_string(),
                })?;
            }
        }
        Ok(ResultSet { columns })
    }

    /// The names of `table`'s columns, from the statement's description
    /// (`SELECT * … WHERE 1 = 0` is prepared, not run: no row is read, and a
    /// column of any type is named).
    pub fn column_names(&mut self, table: &TableName) -> Result<Vec<String>, WarehouseError> {
        let sql = format!(
            "SELECT * FROM {} WHERE 1 = 0",
            Dialect::Postgres.quote_table(table)?
        );
        self.statements.push(sql.clone());
        let stmt = self
            .client
            .prepare(&sql)
            .map_err(|e| self.query_error(&e, &sql))?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect())
    }

    /// The columns `columns` of `table`, every row: integers, floating point
    /// (NUMERIC cast to double precision), booleans and texts as they are;
    /// any other type (dates, timestamps, ...) as PostgreSQL writes it as
    /// text (ISO dates).
    pub fn fetch_columns(
        &mut self,
        table: &TableName,
        columns: &[String],
    ) -> Result<ResultSet, WarehouseError> {
        let from = DIALECT.quote_table(table)?;
        let names: Vec<String> = columns
            .iter()
            .map(|c| DIALECT.quote_ident(c))
            .collect::<Result<_, _>>()?;
        let probe = format!("SELECT {} FROM {from} LIMIT 0", names.join(", "));
        self.statements.push(probe.clone());
        let stmt = self
            .client
            .prepare(&probe)
            .map_err(|e| self.query_error(&e, &probe))?;
        let select: Vec<String> = stmt
            .columns()
            .iter()
            .zip(&names)
            .map(|(c, q)| match *c.type_() {
                Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 => q.clone(),
                Type::BOOL | Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => q.clone(),
                Type::NUMERIC => format!("CAST({q} AS DOUBLE PRECISION) AS {q}"),
                _ => format!("CAST({q} AS TEXT) AS {q}"),
            })
            .collect();
        self.query(&format!("SELECT {} FROM {from}", select.join(", ")))
    }

    /// Replaces `table` with `data` in one transaction: `DROP TABLE IF
    /// EXISTS`, `CREATE TABLE` with a column per result column (BIGINT,
    /// DOUBLE PRECISION, TEXT, BOOLEAN) and `COPY … FROM STDIN` in CSV.
    pub fn replace_table(
        &mut self,
        table: &TableName,
        data: &ResultSet,
    ) -> Result<(), WarehouseError> {
        let name = DIALECT.quote_table(table)?;
        let mut defs = Vec::new();
        let mut quoted = Vec::new();
        for (c, v) in &data.columns {
            let q = DIALECT.quote_ident(c)?;
            let ty = match v {
                Values::Int(_) => "BIGINT",
                Values::Float(_) => "DOUBLE PRECISION",
                Values::Text(_) => "TEXT",
                Values::Bool(_) => "BOOLEAN",
            };
            defs.push(format!("{q} {ty}"));
            quoted.push(q);
        }
        let statements = [
            format!("DROP TABLE IF EXISTS {name}"),
            format!("CREATE TABLE {name} ({})", defs.join(", ")),
        ];
        let copy = format!(
            "COPY {name} ({}) FROM STDIN (FORMAT csv)",
            quoted.join(", ")
        );
        let target = self.target.clone();
        let write_error = |e: &dyn std::fmt::Display| WarehouseError::Write {
            target: target.clone(),
            message: e.to_string(),
        };
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| write_error(&message(&e)))?;
        for s in &statements {
            tx.batch_execute(s).map_err(|e| write_error(&message(&e)))?;
        }
        let mut writer = tx.copy_in(&copy).map_err(|e| write_error(&message(&e)))?;
        write_csv(&mut writer, data).map_err(|e| write_error(&e))?;
        writer.finish().map_err(|e| write_error(&message(&e)))?;
        tx.commit().map_err(|e| write_error(&message(&e)))?;
        self.statements.extend(statements);
        self.statements.push(copy);
        Ok(())
    }

    fn query_error(&self, e: &postgres::Error, sql: &str) -> WarehouseError {
        WarehouseError::Query {
            target: self.target.clone(),
            message: message(e),
            sql: sql.to_string(),
        }
    }
}

/// The server's own message when there is one (`ERROR: relation … does not
/// exist`, with its detail and hint), else the client's with its causes.
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!(" HINT: {h}"));
            }
            m
        }
        None => chain(e),
    }
}

/// An error and its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut m = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !m.contains(&text) {
            m.push_str(&format!(": {text}"));
        }
        source = s.source();
    }
    m
}

/// Whether a connection string holds a password, found without parsing it
/// (so that a string that does not parse is never echoed with one): a
/// `scheme://user:password@` URL, or a `password=` key.
pub(crate) fn holds_password(url: &str) -> bool {
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            return userinfo.contains(':');
        }
        return url.contains("password=");
    }
    url.split_whitespace()
        .any(|kv| kv.trim_start().to_ascii_lowercase().starts_with("password"))
}

/// `user@host:port/db`, without the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// `sql` wrapped in a select that casts its NUMERIC columns to double
/// precision (None when it has none).
fn numeric_cast(sql: &str, stmt: &postgres::Statement) -> Option<String> {
    if !stmt.columns().iter().any(|c| *c.type_() == Type::NUMERIC) {
        return None;
    }
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let items: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| {
            let q = quote(c.name());
            if *c.type_() == Type::NUMERIC {
                format!("CAST(q.{q} AS DOUBLE PRECISION) AS {q}")
            } else {
                format!("q.{q}")
            }
        })
        .collect();
    Some(format!("SELECT {} FROM (\n{sql}\n) AS q", items.join(", ")))
}

/// The empty values of a column of type `ty` (an error for a type that
/// cannot be read: cast it in the query).
fn empty_values(name: &str, ty: &Type) -> Result<Values, WarehouseError> {
    Ok(match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 => Values::Int(Vec::new()),
        Type::FLOAT4 | Type::FLOAT8 => Values::Float(Vec::new()),
        Type::BOOL => Values::Bool(Vec::new()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Values::Text(Vec::new())
        }
        _ => {
            return Err(WarehouseError::ColumnType {
                column: name.to_string(),
                type_name: ty.to_string(),
            });
        }
    })
}

/// Appends column `j` of `row` to `values` (whose variant matches the
/// column's type, see [`empty_values`]).
fn push_value(row: &Row, j: usize, values: &mut Values) -> Result<(), postgres::Error> {
    let ty = row.columns()[j].type_();
    match values {
        Values::Int(v) => v.push(if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(j)?.map(i64::from)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(j)?.map(i64::from)
        } else {
            row.try_get::<_, Option<i64>>(j)?
        }),
        Values::Float(v) => v.push(if *ty == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(j)?.map(f64::from)
        } else {
            row.try_get::<_, Option<f64>>(j)?
        }),
        Values::Bool(v) => v.push(row.try_get::<_, Option<bool>>(j)?),
        Values::Text(v) => v.push(row.try_get::<_, Option<String>>(j)?),
    }
    Ok(())
}

/// The rows of `data` as CSV for `COPY … (FORMAT csv)`: NULL as an empty
/// unquoted field, every text quoted (so an empty text stays a text).
fn write_csv(out: &mut impl std::io::Write, data: &ResultSet) -> std::io::Result<()> {
    let mut line = String::new();
    for r in 0..data.rows() {
        line.clear();
        for (k, (_, v)) in data.columns.iter().enumerate() {
            if k > 0 {
                line.push(',');
            }
            match v {
                Values::Int(x) => {
                    if let Some(x) = x[r] {
                        line.push_str(&x.to_string());
                    }
                }
                Values::Float(x) => match x[r] {
                    Some(x) if x.is_finite() => line.push_str(&format!("{x:?}")),
                    Some(x) if x.is_nan() => line.push_str("NaN"),
                    Some(x) if x > 0.0 => line.push_str("Infinity"),
                    Some(_) => line.push_str("-Infinity"),
                    None => {}
                },
                Values::Bool(x) => {
                    if let Some(x) = x[r] {
                        line.push_str(if x { "t" } else { "f" });
                    }
                }
                Values::Text(x) => {
                    if let Some(x) = &x[r] {
                        line.push('"');
                        line.push_str(&x.replace('"', "\"\""));
                        line.push('"');
                    }
                }
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::holds_password;

    /// Passwords are found without parsing, in both connection-string forms,
    /// including strings that would not parse.
    #[test]
    fn passwords_are_found_before_parsing() {
        for with in [
            "postgresql://analyst:secret@host/db",
            "postgresql://analyst:secret@%2Ftmp%2Fpg:notaport/db",
            "postgres://a:b@h:5432/db?sslmode=bogus",
            "postgresql://host/db?password=secret",
            "host=/tmp user=a password=secret",
            "host=/tmp user=a PASSWORD = secret",
        ] {
            assert!(holds_password(with), "{with}");
        }
        for without in [
            "postgresql://analyst@host/db",
            "postgresql://%2Ftmp%2Fpg/db",
            "host=/tmp user=a dbname=postgres",
        ] {
            assert!(!holds_password(without), "{without}");
        }
    }
}
