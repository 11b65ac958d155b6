//! Metrics derived from the event stream (issue #3).
