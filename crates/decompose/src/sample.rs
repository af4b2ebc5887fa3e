//! [`Sample`]: what every method takes besides its covariates and options —
//! the outcome, the comparison's group codes and labels, weights and the
//! cluster — for one outcome and one comparison group; and [`CellSample`],
//! its counterpart when only per-cell moments are at hand (a warehouse study
//! without row export).

/// The cluster variable: patients of one cluster (hospital) are not
/// independent, so variances and the bootstrap treat clusters as the units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cluster<'a> {
    /// Variable name (`hospital_id`).
    pub name: &'a str,
    /// Cluster code per row (0..count).
    pub codes: &'a [u32],
    /// Number of clusters.
    pub count: usize,
}

impl<'a> Cluster<'a> {
    /// Codes and count: the resampling units.
    pub fn units(&self) -> (&'a [u32], usize) {
        (self.codes, self.count)
    }
}

/// One outcome and one comparison: the rows every method reads.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The outcome's name.
    pub outcome: &'a str,
    /// Outcome over all rows.
    pub y: &'a [f64],
    /// 0 = reference, 1 = comparison, 2 = other groups (skipped, or
    /// profiled but not compared).
    pub group: &'a [u32],
    /// Reference and comparison labels.
    pub labels: [&'a str; 2],
    /// Row weights (None: every row 1).
    pub weights: Option<&'a [f64]>,
    /// The cluster variable, when given.
    pub cluster: Option<Cluster<'a>>,
    /// Whether the outcome is binary (0/1).
    pub binary: bool,
    /// Small-cell threshold: counts below it are not shown.
    pub min_cell: usize,
}

impl<'a> Sample<'a> {
    /// Unweighted, unclustered rows of a continuous outcome `y`, labelled
    /// `reference` and `comparison`, with the default small-cell threshold
    /// (11); set the other fields with struct update syntax.
    pub fn new(y: &'a [f64], group: &'a [u32]) -> Sample<'a> {
        Sample {
            outcome: "y",
            y,
            group,
            labels: ["reference", "comparison"],
            weights: None,
            cluster: None,
            binary: false,
            min_cell: 11,
        }
    }

    /// The cluster's codes and count (the resampling units), when clustered.
    pub fn units(&self) -> Option<(&'a [u32], usize)> {
        self.cluster.map(|c| c.units())
    }

    /// The cluster's name, when clustered.
    pub fn cluster_name(&self) -> Option<&'a str> {
        self.cluster.map(|c| c.name)
    }

    /// Rows of the reference and the comparison group.
    pub fn rows(&self) -> usize {
        self.group.iter().filter(|g| **g <= 1).count()
    }
}

/// One outcome and one comparison when the data are per-cell moments
/// ([`crate::cells::Cells`], computed where the data live): everything a
/// [`Sample`] says except the rows.
#[derive(Debug, Clone, Copy)]
pub struct CellSample<'a> {
    /// The outcome's name.
    pub outcome: &'a str,
    /// Reference and comparison labels.
    pub labels: [&'a str; 2],
    /// The cluster variable, when given; its `codes` are empty (the cells
    /// carry each cell's cluster).
    pub cluster: Option<Cluster<'a>>,
    /// Whether the outcome is binary (0/1).
    pub binary: bool,
    /// Small-cell threshold: counts below it are not shown.
    pub min_cell: usize,
}

impl<'a> CellSample<'a> {
    /// The rows' sample without its rows.
    pub fn of(sample: &Sample<'a>) -> CellSample<'a> {
        CellSample {
            outcome: sample.outcome,
            labels: sample.labels,
            cluster: sample.cluster,
            binary: sample.binary,
            min_cell: sample.min_cell,
        }
    }

    /// The cluster's name, when clustered.
    pub fn cluster_name(&self) -> Option<&'a str> {
        self.cluster.map(|c| c.name)
    }

    /// The sample with the clusters counted as `cells` count them: a
    /// warehouse codes the clusters over those that occur among an
    /// analysis's complete cases, as a complete-case subset of rows does, so
    /// the variances (G) and the cluster bootstrap draw over the same units.
    pub fn with_clusters_of(&self, cells: &crate::cells::Cells) -> CellSample<'a> {
        CellSample {
            cluster: self.cluster.map(|c| Cluster {
                count: cells.clusters,
                ..c
            }),
            ..*self
        }
    }

    /// The refusal of a moment-based `method` (e.g. "the Gelbach
    /// decomposition") without a cluster: its variances and bootstrap are
    /// sums over clusters, and without one every patient is a unit.
    pub fn require_cluster(&self, method: &str) -> Result<(), crate::DecomposeError> {
        if self.cluster.is_some() {
            return Ok(());
        }
        Err(crate::DecomposeError::NeedsRows {
            what: format!("{method} without [design] cluster"),
            reason: "without clusters every patient is a resampling unit, for the robust delta \
                     method as for the bootstrap"
                .into(),
            alternative: ", or set [design] cluster (the moments are then summed per cluster)"
                .into(),
        })
    }
}
