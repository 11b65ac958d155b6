//! `<feature>-install.log`: the logger's own text format, every family since 2025-08.
