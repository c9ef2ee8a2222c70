//! The billing API example (placeholder).
fn main() {}
