//! The covariates a method works with: design columns by factor block, the
//! categorical variables among them (for normalization), and at most one
//! absorbed many-level categorical (hospital_id), which is never expanded into a
//! dense dummy matrix.

/// One design column.
#[derive(Debug, Clone)]
pub struct Column<'a> {
    /// Design name, e.g. `age` or `insurance=medicaid`.
    pub name: String,
    /// Factor block.
    pub factor: String,
    /// Values over all rows.
    pub values: &'a [f64],
}

/// A categorical variable coded as dummies against an omitted base level.
#[derive(Debug, Clone)]
pub struct Categorical {
    /// Variable name.
    pub variable: String,
    /// Factor block.
    pub factor: String,
    /// The base level's column name, e.g. `insurance=private`.
    pub base: String,
    /// Its dummy columns (indexes into [`Covariates::columns`]).
    pub columns: Vec<usize>,
}

/// An absorbed categorical variable (fixed effects).
#[derive(Debug, Clone)]
pub struct Absorbed<'a> {
    /// Variable name, also the name of its aggregated term.
    pub variable: String,
    /// Factor block.
    pub factor: String,
    /// Level code per row (0..levels).
    pub codes: &'a [u32],
    /// Number of levels.
    pub levels: usize,
    /// Level labels.
    pub labels: Vec<String>,
}

/// Covariates of one analysis.
#[derive(Debug, Clone, Default)]
pub struct Covariates<'a> {
    /// Design columns.
    pub columns: Vec<Column<'a>>,
    /// Categorical variables among the columns.
    pub categoricals: Vec<Categorical>,
    /// The absorbed variable.
    pub absorbed: Option<Absorbed<'a>>,
}

impl Covariates<'_> {
    /// Factor blocks in first-appearance order (the absorbed one included).
    pub fn factors(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in self
            .columns
            .iter()
            .map(|c| &c.factor)
            .chain(self.absorbed.iter().map(|a| &a.factor))
        {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }
}
