//! `--engine core`: the same ops through freespace-malloc's own placement, list-order and
//! coalescing code (`SimHeap`, which runs the `Heap` engine over a simulated address range).
//!
//! Invariant: the adapter only translates. Addresses given to [`Model`] callers are chunk
//! addresses, as `malloc.py` keeps them (the core hands out chunk + header); every answer
//! (address, elements searched, free list) is the core's own.

use freespace_malloc::{Coalescing, Fit, ListOrder, SimConfig, SimHeap};

use super::{ListOrderName, Model, OstepError, OstepOptions, PolicyName, Units};

/// freespace-malloc's `SimHeap` behind the `malloc.py` interface.
pub struct CoreModel {
    heap: SimHeap,
    header: i64,
}

impl std::fmt::Debug for CoreModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreModel")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl CoreModel {
    /// A simulated heap with the flags' base, size, header size, alignment, policy, list
    /// order and coalescing (`-C` is immediate coalescing; without it, blocks never merge).
    pub fn new(o: &OstepOptions) -> Result<Self, String> {
        let non_negative = |flag: &str, v: i64| {
            usize::try_from(v)
                .map_err(|_| format!("{flag} must not be negative for the core engine, got {v}"))
        };
        let base = non_negative("-b", o.base)?;
        let size = non_negative("-S", o.size)?;
        let header = non_negative("-H", o.header)?;
        let align = if o.align == -1 {
            1
        } else {
            non_negative("-a", o.align)?
        };
        if base.checked_add(size).is_none() {
            return Err("the heap runs past the end of the address space".to_string());
        }
        let cfg = SimConfig {
            base,
            size,
            header_size: header,
            align,
            fit: match o.policy {
                PolicyName::Best => Fit::Best,
                PolicyName::Worst => Fit::Worst,
                PolicyName::First => Fit::First,
                PolicyName::Next => Fit::Next,
            },
            order: match o.order {
                ListOrderName::AddrSort => ListOrder::AddressOrdered,
                ListOrderName::SizeSortUp => ListOrder::SizeAscending,
                ListOrderName::SizeSortDown => ListOrder::SizeDescending,
                ListOrderName::InsertFront => ListOrder::Lifo,
                ListOrderName::InsertBack => ListOrder::Fifo,
            },
            coalescing: if o.coalesce {
                Coalescing::Immediate
            } else {
                Coalescing::Never
            },
        };
        Ok(CoreModel {
            heap: SimHeap::new(cfg),
            header: o.header,
        })
    }
}

impl Model for CoreModel {
    fn malloc(&mut self, size: Units) -> Result<(Units, Units), OstepError> {
        let Ok(size) = usize::try_from(size) else {
            // A negative request is refused before any search.
            return Ok((-1, 0));
        };
        Ok(match self.heap.malloc(size) {
            Ok((user, searched)) => (user as Units - Units::from(self.header), searched as Units),
            Err(_) => (-1, self.heap.last_searched() as Units),
        })
    }

    fn free(&mut self, addr: Units) -> i64 {
        let Ok(user) = usize::try_from(addr + Units::from(self.header)) else {
            return -1;
        };
        match self.heap.free(user) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }

    fn free_list(&self) -> Vec<(Units, Units)> {
        self.heap
            .free_list()
            .into_iter()
            .map(|(a, s)| (a as Units, s as Units))
            .collect()
    }
}
