//! The error every pure validation in this crate returns.
//!
//! It lives apart from the documents ([`crate::model`]) and the policy ([`crate::policy`]) so
//! that both can use it without depending on each other.

/// Why a spec, split, name or setting was refused; the text is shown to the operator as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
