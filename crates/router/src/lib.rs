//! The invocation router.
