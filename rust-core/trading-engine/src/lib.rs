//! The Rust engine's adapters around `chan-core`: reading bars from files (`csv_input`, with
//! `columns` and `times`, the rules of docs/DATA.md) and presenting results (the gRPC server
//! joins them).

pub mod columns;
pub mod csv_input;
pub mod summary;
pub mod times;
