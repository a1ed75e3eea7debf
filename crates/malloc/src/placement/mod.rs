//! Placement: which free block serves a request. The [`Policy`] trait is the plug
//! (`policy.rs`); the textbook fits over one explicit list (`list_fit.rs`) and segregated fit
//! (`segregated.rs`) implement it; [`AnyPolicy`] picks one of them at run time
//! (`any_policy.rs`).
//!
//! The files depend in one direction only: `policy.rs` on nothing here, the policies on
//! `policy.rs`, and `any_policy.rs` on all of them.

mod any_policy;
mod list_fit;
mod policy;
mod segregated;

pub use any_policy::{AnyPolicy, Fit};
pub use list_fit::{BestFit, FirstFit, NextFit, WorstFit};
pub use policy::{ListOrder, Policy};
pub use segregated::SegregatedFit;
