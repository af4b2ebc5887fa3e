//! A query's result set as plain typed columns: what a transport pulls from
//! an engine, and what a loader turns into its own frame. No engine types.

/// One column's values (`None`: SQL NULL).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Integers (SMALLINT, INTEGER, BIGINT).
    Int(Vec<Option<i64>>),
    /// Floating-point numbers (REAL, DOUBLE PRECISION, NUMERIC cast to double).
    Float(Vec<Option<f64>>),
    /// Texts (and anything else, as the engine writes it as text: dates as
    /// `YYYY-MM-DD`).
    Text(Vec<Option<String>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Values {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultSet {
    /// (name, values), in the query's column order.
    pub columns: Vec<(String, Values)>,
}

impl ResultSet {
    /// Number of rows (0 without columns).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, v)| v.len())
    }
}
