//! Per-cell moments computed inside the warehouse: the two passes of
//! `healthgap_sql` (global means, then sums of centred products per cell)
//! run on the engine, and only the aggregates come back.

use healthgap_sql::{
    CellMoments, CohortQuery, Dialect, MomentQuery, MomentSpec, ResultSet, Values, mean_queries,
    means_from, moment_queries,
};

use crate::error::WarehouseError;
use crate::postgres_engine::Postgres;

/// One cell: its key values (in the spec's key order, as text; NULL as
/// `None`) and its raw (uncentred) moments.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The key values.
    pub keys: Vec<Option<String>>,
    /// Count, Σw, Σw·v and Σw·v_a·v_b over v = (x_1, …, x_p, y).
    pub moments: CellMoments,
}

/// Runs both passes for `spec` on `pg` and returns every cell, ordered by the
/// keys as the engine orders them (none when no row is complete).
pub fn cell_moments(
    pg: &mut Postgres,
    cohort: &CohortQuery,
    spec: &MomentSpec,
) -> Result<Vec<Cell>, WarehouseError> {
    let d = Dialect::Postgres;
    let p = spec.x.len();
    let mut global = CellMoments::zeros(spec.q());
    for q in mean_queries(cohort, spec, d)? {
        let rs = pg.query(&q.sql)?;
        record_row(&q, &rs, 0, &mut global, p, pg.target())?;
    }
    // No complete row (a site without the analysis's complete cases): no
    // cell, and no second pass.
    if global.count == 0.0 {
        return Ok(Vec::new());
    }
    let means = means_from(&global)?;
    let mut cells: Vec<Cell> = Vec::new();
    for (k, q) in moment_queries(cohort, spec, d, Some(&means))?
        .iter()
        .enumerate()
    {
        let rs = pg.query(&q.sql)?;
        if k > 0 && rs.rows() != cells.len() {
            return Err(mismatch(pg.target(), &q.sql));
        }
        for r in 0..rs.rows() {
            let keys: Vec<Option<String>> = (0..q.keys.len())
                .map(|j| text(&rs.columns[j].1, r))
                .collect();
            // The first query makes the cells; the others must line up.
            if k == 0 {
                cells.push(Cell {
                    keys,
                    moments: CellMoments::zeros(spec.q()),
                });
            } else if keys != cells[r].keys {
                return Err(mismatch(pg.target(), &q.sql));
            }
            record_row(q, &rs, r, &mut cells[r].moments, p, pg.target())?;
        }
    }
    for cell in &mut cells {
        cell.moments = cell.moments.uncentred(&means);
    }
    Ok(cells)
}

/// Records row `r` of a query's result into `m` by the query's column meanings.
fn record_row(
    q: &MomentQuery,
    rs: &ResultSet,
    r: usize,
    m: &mut CellMoments,
    p: usize,
    target: &str,
) -> Result<(), WarehouseError> {
    if rs.rows() <= r || rs.columns.len() != q.keys.len() + q.columns.len() {
        return Err(mismatch(target, &q.sql));
    }
    for (c, col) in q.columns.iter().enumerate() {
        let value = match &rs.columns[q.keys.len() + c].1 {
            Values::Int(v) => v[r].map(|x| x as f64),
            Values::Float(v) => v[r],
            _ => None,
        };
        // SUM over no rows is NULL: a zero moment.
        m.record(col.kind, value.unwrap_or(0.0), p);
    }
    Ok(())
}

fn text(values: &Values, r: usize) -> Option<String> {
    match values {
        Values::Int(v) => v[r].map(|x| x.to_string()),
        Values::Float(v) => v[r].map(|x| x.to_string()),
        Values::Text(v) => v[r].clone(),
        Values::Bool(v) => v[r].map(|x| x.to_string()),
    }
}

fn mismatch(target: &str, sql: &str) -> WarehouseError {
    WarehouseError::Query {
        target: target.to_string(),
        message: "the moment queries' rows do not line up (a different number of cells or \
                  keys between the queries of one pass)"
            .into(),
        sql: sql.to_string(),
    }
}
