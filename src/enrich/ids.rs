//! Deterministic identifiers: event ids, W3C trace and span ids, derived correlation ids.
