//! Engine-free SQL for healthgap: compiles a cohort definition (source table,
//! `[cohort] filters`, group, outcomes, weight, hospital, cluster, numeric and
//! categorical covariates) and the per-cell moment queries of the linear
//! methods into SQL text for PostgreSQL, Spark SQL, DuckDB, BigQuery,
//! Snowflake and T-SQL. It runs nothing and has no database client.
//!
//! Every name is a quoted identifier and every value a quoted literal of the
//! dialect ([`Dialect`]); user text is never spliced into SQL.
//!
//! - [`parse_filter`]: a `[cohort] filters` string → [`Expr`].
//! - [`CohortQuery`]: the cohort CTE and the attrition query.
//! - [`mean_queries`], [`moment_queries`]: the two passes of centred moments,
//!   split under the engine's column limit; [`CellMoments::uncentred`] and
//!   [`means_from`] on the results.
//! - [`ResultSet`]: a result set as plain typed columns (what transports pull).

mod cohort;
mod dialect;
mod error;
mod expr;
mod filter;
mod moments;
mod result;

pub use cohort::{
    AttritionColumn, AttritionQuery, CLUSTER, COHORT, CohortQuery, Covariate, DESIGN_PREFIX,
    DesignColumn, GROUP, HOSPITAL, MissingTexts, OUTCOME_PREFIX, Outcome, Step, WEIGHT,
};
pub use dialect::{Dialect, TableName, format_number};
pub use error::SqlError;
pub use expr::{ArithOp, CmpOp, Expr, Literal};
pub use filter::{Filter, parse_filter};
pub use moments::{
    COLUMN_MARGIN, CellMoments, Key, MomentColumn, MomentKind, MomentQuery, MomentSpec, Var,
    mean_queries, means_from, moment_queries,
};
pub use result::{ResultSet, Values};
