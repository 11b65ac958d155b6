//! `docker build` console output: plain, BuildKit (`#12 3.456 `), or a CI job log of either.
