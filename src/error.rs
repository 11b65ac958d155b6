//! The library's typed errors that callers map to an outcome.
//!
//! `UsageError` is a configuration or usage that cannot work: nothing was done. The command
//! line maps it to exit code 2 wherever in the library it arises, also when it is wrapped in
//! context (see [`is_usage`]).

/// A configuration that cannot work; reported with exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    pub fn new(msg: impl Into<String>) -> Self {
        UsageError(msg.into())
    }
}

/// True when `e` or any error in its chain is a [`UsageError`].
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.downcast_ref::<UsageError>().is_some() || e.chain().any(|c| c.is::<UsageError>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn found_through_context() {
        let e: anyhow::Result<()> = Err(UsageError::new("--x must be positive").into());
        let e = e.context("reading the configuration").unwrap_err();
        assert!(is_usage(&e));
        assert!(!is_usage(&anyhow::anyhow!("disk full")));
        let io: anyhow::Result<()> =
            Err(std::io::Error::other("x")).context(UsageError::new("outer"));
        assert!(is_usage(&io.unwrap_err()));
    }
}
