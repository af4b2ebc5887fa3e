//! Integration tests of healthgap-learn: reference fits, properties of the
//! forest and the super learner, cross-fitting and bad input.

mod common;
mod crossfit;
mod elastic_net_golden;
mod forest;
mod super_learner;
