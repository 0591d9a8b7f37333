//! The Rust engine's adapters around `chan-core`: reading bars from files and presenting
//! results (the gRPC server joins them).

pub mod csv_input;
pub mod summary;
