//! End-to-end tests of the `healthgap` binary. Each module is one command or one
//! concern; `util` runs the real binary in a temporary folder.

mod synth;
mod util;
