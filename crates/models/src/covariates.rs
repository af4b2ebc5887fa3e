//! The covariates a method works with: design columns by factor block, the
//! categorical variables among them (for normalization), and at most one
//! absorbed many-level categorical (hospital_id), which is never expanded into a
//! dense dummy matrix. The cohort crate builds them from its variables
//! (`healthgap_cohort::design::build`); the methods read them.

/// One design column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Design name, e.g. `age` or `insurance=medicaid`.
    pub name: String,
    /// Factor block.
    pub factor: String,
    /// Values over all rows.
    pub values: Vec<f64>,
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

/// A coded categorical variable absorbed as fixed effects (a hospital, a
/// surgeon): a level code per row, never expanded into dummies.
#[derive(Debug, Clone, PartialEq)]
pub struct Absorbed {
    /// Variable name, also the name of its aggregated term.
    pub variable: String,
    /// Factor block.
    pub factor: String,
    /// Level code per row (0..levels).
    pub codes: Vec<u32>,
    /// Number of levels.
    pub levels: usize,
    /// Level labels.
    pub labels: Vec<String>,
}

/// Covariates of one analysis.
#[derive(Debug, Clone, Default)]
pub struct Covariates {
    /// Design columns.
    pub columns: Vec<Column>,
    /// Categorical variables among the columns.
    pub categoricals: Vec<Categorical>,
    /// The absorbed variable.
    pub absorbed: Option<Absorbed>,
}

impl Covariates {
    /// The variable a design column comes from: the categorical it is a
    /// dummy of, or the column itself.
    pub fn variable_of(&self, column: usize) -> &str {
        self.categoricals
            .iter()
            .find(|c| c.columns.contains(&column))
            .map_or(self.columns[column].name.as_str(), |c| c.variable.as_str())
    }

    /// Indexes of the columns of `variables`.
    pub fn columns_of(&self, variables: &[String]) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&j| variables.iter().any(|v| v == self.variable_of(j)))
            .collect()
    }

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
