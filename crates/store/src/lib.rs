//! kiln's state directory (being written).

pub mod layer;
