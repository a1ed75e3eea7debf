//! The free list of the textbook's `malloc.py`, rule for rule, quirks included.
//!
//! Invariant: after every call, `list` holds exactly the `(addr, size)` pairs that `malloc.py`
//! would hold in its `freelist`, in the same order, and `sizes` holds its `sizemap`. Where the
//! original is odd (a split remainder keeps its place in a sorted list, coalescing only merges
//! entries that are neighbours *in the list*), this file is odd in the same way.

use std::collections::HashMap;

use super::{ListOrderName, Model, OstepError, PolicyName, Units};

/// `malloc.py`'s allocator: one Python list of `(addr, size)` pairs and a map of allocated sizes.
#[derive(Debug, Clone)]
pub struct TextbookList {
    heap_size: Units,
    header: Units,
    align: Units,
    policy: PolicyName,
    order: ListOrderName,
    coalesce: bool,
    list: Vec<(Units, Units)>,
    sizes: HashMap<Units, Units>,
    /// Next fit only: an address inside the chunk where the previous search stopped.
    rover: Option<Units>,
}

impl TextbookList {
    /// A heap of `size` units starting at `base`, as `malloc(size, start, ...)` in the original.
    pub fn new(
        size: Units,
        base: Units,
        header: Units,
        align: Units,
        policy: PolicyName,
        order: ListOrderName,
        coalesce: bool,
    ) -> Self {
        TextbookList {
            heap_size: size,
            header,
            align,
            policy,
            order,
            coalesce,
            list: vec![(base, size)],
            sizes: HashMap::new(),
            rover: None,
        }
    }

    /// The chunk the policy picks for `need` units and the number of list elements looked at.
    fn search(&mut self, need: Units) -> (Option<usize>, Units) {
        let mut count = 0;
        match self.policy {
            PolicyName::First => {
                for (i, &(_, size)) in self.list.iter().enumerate() {
                    count += 1;
                    if size >= need {
                        return (Some(i), count);
                    }
                }
                (None, count)
            }
            PolicyName::Next => {
                let len = self.list.len();
                let start = self.rover_position();
                for step in 0..len {
                    let i = (start + step) % len;
                    count += 1;
                    if self.list[i].1 >= need {
                        return (Some(i), count);
                    }
                }
                (None, count)
            }
            PolicyName::Best | PolicyName::Worst => {
                // The original starts best fit at `heap size + 1` and worst fit at -1, and
                // only a strictly better chunk replaces the current pick: ties go to the first.
                let mut best: Option<usize> = None;
                let mut best_size = if self.policy == PolicyName::Best {
                    self.heap_size + 1
                } else {
                    -1
                };
                for (i, &(_, size)) in self.list.iter().enumerate() {
                    count += 1;
                    let better = match self.policy {
                        PolicyName::Best => size < best_size,
                        _ => size > best_size,
                    };
                    if size >= need && better {
                        best = Some(i);
                        best_size = size;
                    }
                }
                (best, count)
            }
        }
    }

    /// Where next fit resumes: the entry holding the rover's address (it may have grown by
    /// coalescing), else the first entry in list order above it, else the head.
    fn rover_position(&self) -> usize {
        let Some(r) = self.rover else {
            return 0;
        };
        self.list
            .iter()
            .position(|&(addr, size)| addr <= r && r < addr + size)
            .or_else(|| self.list.iter().position(|&(addr, _)| addr > r))
            .unwrap_or(0)
    }

    fn coalesce_in_list_order(&mut self) {
        let mut merged: Vec<(Units, Units)> = Vec::with_capacity(self.list.len());
        let mut iter = self.list.iter().copied();
        let Some(mut curr) = iter.next() else {
            return;
        };
        for (addr, size) in iter {
            if addr == curr.0 + curr.1 {
                curr.1 += size;
            } else {
                merged.push(curr);
                curr = (addr, size);
            }
        }
        merged.push(curr);
        self.list = merged;
    }
}

impl Model for TextbookList {
    fn malloc(&mut self, size: Units) -> Result<(Units, Units), OstepError> {
        let mut need = size;
        if self.align != -1 {
            // Python's `%` takes the sign of the divisor; the divisor here is positive.
            let left = need.rem_euclid(self.align);
            if left != 0 {
                need += self.align - left;
            }
        }
        need += self.header;
        let (found, count) = self.search(need);
        let Some(i) = found else {
            return Ok((-1, count));
        };
        let (addr, chunk) = self.list[i];
        if self.sizes.contains_key(&addr) {
            // Only a zero or negative request can land on an allocated address.
            return Err(OstepError::AddressTwice { addr, size });
        }
        if chunk > need {
            // The remainder keeps the chunk's place in the list, whatever the list order.
            self.list[i] = (addr + need, chunk - need);
            self.rover = Some(addr + need);
        } else {
            self.list.remove(i);
            // An exact fit leaves the rover on the entry that followed, wrapping to the head.
            self.rover = self.list.get(i).or(self.list.first()).map(|e| e.0);
        }
        self.sizes.insert(addr, need);
        Ok((addr, count))
    }

    fn free(&mut self, addr: Units) -> i64 {
        let Some(&size) = self.sizes.get(&addr) else {
            return -1;
        };
        match self.order {
            ListOrderName::InsertBack => self.list.push((addr, size)),
            ListOrderName::InsertFront => self.list.insert(0, (addr, size)),
            ListOrderName::AddrSort => {
                self.list.push((addr, size));
                self.list.sort_by_key(|e| e.0);
            }
            ListOrderName::SizeSortUp => {
                // A stable sort, as Python's `sorted`: equal sizes keep their order.
                self.list.push((addr, size));
                self.list.sort_by_key(|e| e.1);
            }
            ListOrderName::SizeSortDown => {
                // `sorted(reverse=True)` is stable too: equal sizes keep their order.
                self.list.push((addr, size));
                self.list.sort_by_key(|e| std::cmp::Reverse(e.1));
            }
        }
        if self.coalesce {
            self.coalesce_in_list_order();
        }
        self.sizes.remove(&addr);
        0
    }

    fn free_list(&self) -> Vec<(Units, Units)> {
        self.list.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(policy: PolicyName, order: ListOrderName, coalesce: bool) -> TextbookList {
        TextbookList::new(100, 1000, 0, -1, policy, order, coalesce)
    }

    #[test]
    fn split_remainder_keeps_its_place_in_a_size_sorted_list() {
        let mut m = list(PolicyName::Best, ListOrderName::SizeSortUp, false);
        let a = m.malloc(10).unwrap().0;
        let _b = m.malloc(50).unwrap().0;
        assert_eq!(m.free(a), 0);
        // Sorted ascending: (1000,10), (1060,40).
        assert_eq!(m.free_list(), vec![(1000, 10), (1060, 40)]);
        // Best fit takes the 40 for 35: the 5 stays second, so the list is no longer sorted.
        assert_eq!(m.malloc(35).unwrap(), (1060, 2));
        assert_eq!(m.free_list(), vec![(1000, 10), (1095, 5)]);
    }

    #[test]
    fn coalescing_merges_only_list_neighbours() {
        let mut m = list(PolicyName::First, ListOrderName::InsertFront, true);
        let a = m.malloc(10).unwrap().0;
        let b = m.malloc(10).unwrap().0;
        assert_eq!(m.free(b), 0);
        // (1010,10) then (1020,80): neighbours in the list and in memory, so they merge.
        assert_eq!(m.free_list(), vec![(1010, 90)]);
        assert_eq!(m.free(a), 0);
        assert_eq!(m.free_list(), vec![(1000, 100)]);
        let mut m = list(PolicyName::First, ListOrderName::InsertBack, true);
        let a = m.malloc(10).unwrap().0;
        let b = m.malloc(10).unwrap().0;
        m.free(a);
        m.free(b);
        // (1020,80), (1000,10), (1010,10): only the last two are list neighbours.
        assert_eq!(m.free_list(), vec![(1020, 80), (1000, 20)]);
    }

    #[test]
    fn double_free_returns_minus_one_and_changes_nothing() {
        let mut m = list(PolicyName::Worst, ListOrderName::AddrSort, false);
        let a = m.malloc(7).unwrap().0;
        assert_eq!(m.free(a), 0);
        let before = m.free_list();
        assert_eq!(m.free(a), -1);
        assert_eq!(m.free_list(), before);
    }

    #[test]
    fn chapter_policy_example() {
        // Free chunks of 10, 30 and 20 (in that list order) and a request for 15.
        let setup = |policy| {
            let mut m = TextbookList::new(60, 0, 0, -1, policy, ListOrderName::InsertBack, false);
            m.list = vec![(0, 10), (100, 30), (200, 20)];
            m
        };
        let mut best = setup(PolicyName::Best);
        assert_eq!(best.malloc(15).unwrap(), (200, 3));
        assert_eq!(best.free_list(), vec![(0, 10), (100, 30), (215, 5)]);
        let mut worst = setup(PolicyName::Worst);
        assert_eq!(worst.malloc(15).unwrap(), (100, 3));
        assert_eq!(worst.free_list(), vec![(0, 10), (115, 15), (200, 20)]);
        let mut first = setup(PolicyName::First);
        assert_eq!(first.malloc(15).unwrap(), (100, 2));
        assert_eq!(first.free_list(), vec![(0, 10), (115, 15), (200, 20)]);
    }

    #[test]
    fn next_fit_resumes_where_the_last_search_stopped() {
        let mut m = TextbookList::new(
            60,
            0,
            0,
            -1,
            PolicyName::Next,
            ListOrderName::InsertBack,
            false,
        );
        m.list = vec![(0, 20), (100, 30), (200, 20)];
        assert_eq!(m.malloc(25).unwrap(), (100, 2));
        // The rover sits on (125,5): the next search starts there; an exact fit leaves it on
        // the following entry, and past the end it wraps to the front.
        assert_eq!(m.malloc(10).unwrap(), (200, 2));
        assert_eq!(m.malloc(10).unwrap(), (210, 1));
        assert_eq!(m.malloc(10).unwrap(), (0, 1));
    }

    #[test]
    fn zero_size_twice_stops_like_the_original_assertion() {
        let mut m = list(PolicyName::First, ListOrderName::AddrSort, false);
        assert_eq!(m.malloc(0).unwrap(), (1000, 1));
        assert_eq!(
            m.malloc(0),
            Err(OstepError::AddressTwice {
                addr: 1000,
                size: 0
            })
        );
    }

    #[test]
    fn alignment_rounds_before_the_header_is_added() {
        let mut m = TextbookList::new(
            100,
            1000,
            4,
            8,
            PolicyName::First,
            ListOrderName::AddrSort,
            false,
        );
        assert_eq!(m.malloc(3).unwrap(), (1000, 1));
        // 3 rounds to 8, plus a 4-unit header: 12 units taken.
        assert_eq!(m.free_list(), vec![(1012, 88)]);
    }
}
