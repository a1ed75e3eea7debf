//! The raw malloc core as a replay subject: freespace-malloc's `Heap` in one fixed region, with
//! one placement policy, list order and coalescing mode.
//!
//! Invariant: a subject's name is the [`core_label`] of the configuration its heap was built
//! with, so two rows of a table never name different configurations alike.

use freespace_malloc::{AnyPolicy, Coalescing, Fit, FixedRegion, Heap, HeapConfig, ListOrder};

use super::address_subject::AddressSubject;
use super::{Family, TraceProfile};

/// A `Heap<FixedRegion, AnyPolicy>` driven by a trace.
pub type CoreSubject = AddressSubject<Heap<FixedRegion, AnyPolicy>>;

/// The row label of a core configuration: `first-fit addr`, `first-fit addr no-coalesce`,
/// `segregated`, ...
pub fn core_label(fit: Fit, order: ListOrder, coalescing: Coalescing) -> String {
    let mut label = if fit == Fit::Segregated {
        fit_name(fit).to_string()
    } else {
        format!("{} {}", fit_name(fit), order_name(order))
    };
    match coalescing {
        Coalescing::Immediate => {}
        Coalescing::Deferred => label.push_str(" deferred"),
        Coalescing::Never => label.push_str(" no-coalesce"),
    }
    label
}

/// The row label of a fit: `first-fit`, `segregated`, ...
pub fn fit_name(fit: Fit) -> &'static str {
    match fit {
        Fit::First => "first-fit",
        Fit::Next => "next-fit",
        Fit::Best => "best-fit",
        Fit::Worst => "worst-fit",
        Fit::Segregated => "segregated",
    }
}

/// The row label of a list order, after `malloc.py`'s names.
pub fn order_name(order: ListOrder) -> &'static str {
    match order {
        ListOrder::AddressOrdered => "addr",
        ListOrder::Lifo => "lifo",
        ListOrder::Fifo => "fifo",
        ListOrder::SizeAscending => "size+",
        ListOrder::SizeDescending => "size-",
    }
}

impl CoreSubject {
    /// A heap with `fit` over a list in `order` (ignored by segregated fit), coalescing as
    /// `coalescing` says.
    ///
    /// The region is sized for `profile` (see [`Region::for_profile`](super::Region::for_profile)).
    pub fn new(fit: Fit, order: ListOrder, coalescing: Coalescing, profile: &TraceProfile) -> Self {
        let label = core_label(fit, order, coalescing);
        AddressSubject::in_region(label, Family::Core, profile, |r| {
            // SAFETY: the region is ours, zeroed, and the subject keeps it until after the heap
            // has dropped; nothing but this heap touches it.
            unsafe {
                Heap::in_region(
                    r.ptr,
                    r.size(),
                    AnyPolicy::new(fit, order),
                    HeapConfig::new().with_coalescing(coalescing),
                )
            }
        })
    }
}
