//! HTTP server (to come).
