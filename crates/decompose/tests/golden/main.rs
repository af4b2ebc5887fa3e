//! Golden tests of the methods, run on the estimators directly (no binary):
//! each against published numbers or a peer tool, with the data and the
//! script that made the expected numbers in the workspace's tests/golden/.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

// Shared: the golden data's location, a CSV reader, the tolerances.
mod util;

// Oaxaca–Blinder: linear (R `oaxaca`, statsmodels, Stata; the robust delta
// method against the stacked influence functions) and nonlinear (Yun,
// statsmodels logit/probit).
mod oaxaca;
mod yun;

// Gelbach against pyfixest's decompose().
mod gelbach;

// The care-site analysis against pyfixest.
mod hospital;

// Mediation against regmedint / SAS %mediation and R mediation.
mod mediation;
