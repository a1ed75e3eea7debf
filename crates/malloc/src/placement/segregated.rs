//! [`SegregatedFit`]: two-level size-class bins with bitmaps, in the manner of TLSF.
//!
//! Sizes below 1024 bytes fall in 64 exact 16-byte classes (first level 0). Above that, the
//! first level is the power of two and the second level splits it into 64 equal classes. One bit
//! per non-empty class, in a second-level word per first level plus one first-level word, finds
//! the smallest non-empty class at or above a request with two count-trailing-zeros.
//! Invariant: a bin holds exactly the free blocks whose size maps to it, and a bitmap bit is set
//! exactly when its bin is non-empty.

use super::policy::Policy;
use crate::error::Corruption;
use crate::space::{Block, FreeLinks, NIL};

/// log2 of the number of second-level classes per first level.
const SL_LOG2: u32 = 6;
/// Second-level classes per first level.
const SL: usize = 1 << SL_LOG2;
/// log2 of the class width below `SMALL`.
const GRAIN_LOG2: u32 = 4;
/// Below this size, classes are exact multiples of 16.
const SMALL: usize = SL << GRAIN_LOG2;
/// First-level classes (sizes below 2^(FL + 9) bytes; larger ones share the last class).
const FL: usize = 48;

/// The default policy: segregated free lists in size-class bins with bitmaps, O(1).
///
/// `find` rounds the request up to the next class boundary, so that any block of the class it
/// finds is big enough ("good fit"): one bitmap lookup, one list head. A class spans at most
/// 1/64 of its size, so rounding up wastes little. Only when that fails does it search the
/// request's own class linearly, so that a nearly full heap can still use a block that fits
/// exactly. Each bin is LIFO.
#[derive(Clone)]
pub struct SegregatedFit {
    fl_bitmap: u64,
    sl_bitmap: [u64; FL],
    heads: [[Block; SL]; FL],
}

/// Where [`SegregatedFit::locate`] found a block.
enum Found {
    /// At the head of bin `(fl, sl)`.
    Head(usize, usize),
    /// Inside the request's own bin, not necessarily at its head.
    Inside(Block),
    /// Nowhere.
    Nothing,
}

impl Default for SegregatedFit {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for SegregatedFit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let non_empty: u32 = self.sl_bitmap.iter().map(|w| w.count_ones()).sum();
        f.debug_struct("SegregatedFit")
            .field("non_empty_bins", &non_empty)
            .finish_non_exhaustive()
    }
}

/// The flat index (`fl * SL + sl`) of the class of a block of `size` bytes, not clamped: with
/// `m` the top bit of `size` (or of `SMALL`, for smaller sizes), the classes among which `size`
/// falls are `2^(m - SL_LOG2)` bytes wide, and `size` shifted by that width lands in
/// `SL..2 * SL` (in `0..SL` below `SMALL`), so one `ilog2` gives both levels. Also returns
/// the width's log2.
#[inline]
fn flat_class(size: usize) -> (usize, u32) {
    let m = (size | SMALL).ilog2();
    let shift = m - SL_LOG2;
    let flat = (((m - SL_LOG2 - GRAIN_LOG2) as usize) << SL_LOG2) + (size >> shift);
    (flat, shift)
}

/// The class of a block of `size` bytes (sizes past the last class share it).
#[inline]
fn class_of(size: usize) -> (usize, usize) {
    let flat = flat_class(size).0.min(FL * SL - 1);
    (flat >> SL_LOG2, flat & (SL - 1))
}

/// The first class whose every size is at least `size`, as a flat index (`fl * SL + sl`,
/// clamped to the last class): the class of `size` when `size` is where it starts, else the
/// one after it (the flat index carries into the next first level by itself).
#[inline]
fn class_at_or_above(size: usize) -> usize {
    let (own, shift) = flat_class(size);
    let partial = size & ((1 << shift) - 1) != 0;
    (own + partial as usize).min(FL * SL - 1)
}

/// The smallest size in a class.
#[cfg(test)]
fn class_floor(fl: usize, sl: usize) -> usize {
    if fl == 0 {
        sl << GRAIN_LOG2
    } else {
        (SL + sl) << (fl as u32 + GRAIN_LOG2 - 1)
    }
}

impl SegregatedFit {
    /// An empty set of bins.
    pub const fn new() -> Self {
        SegregatedFit {
            fl_bitmap: 0,
            sl_bitmap: [0; FL],
            heads: [[NIL; SL]; FL],
        }
    }

    /// The smallest non-empty class at or above `(fl, sl)`.
    #[inline]
    fn first_nonempty(&self, fl: usize, sl: usize) -> Option<(usize, usize)> {
        let here = self.sl_bitmap[fl] & (u64::MAX << sl);
        if here != 0 {
            return Some((fl, here.trailing_zeros() as usize));
        }
        let above = self.fl_bitmap & (u64::MAX << (fl + 1));
        if above == 0 {
            return None;
        }
        let f = above.trailing_zeros() as usize;
        Some((f, self.sl_bitmap[f].trailing_zeros() as usize))
    }

    /// Marks bin `(fl, sl)` empty in the bitmaps.
    #[inline]
    fn clear_bit(&mut self, fl: usize, sl: usize) {
        self.sl_bitmap[fl] &= !(1 << sl);
        if self.sl_bitmap[fl] == 0 {
            self.fl_bitmap &= !(1 << fl);
        }
    }

    /// Where a free block of at least `size` bytes is: the head of the first non-empty class at
    /// or above the next class boundary (any block there is big enough, except in the last
    /// class, which is open-ended); else, on a nearly full heap, somewhere inside the request's
    /// own class.
    #[inline]
    fn locate<L: FreeLinks>(&self, links: &L, size: usize, searched: &mut u64) -> Found {
        let above = class_at_or_above(size);
        if let Some((f, s)) = self.first_nonempty(above / SL, above % SL) {
            *searched += 1;
            if links.block_size(self.heads[f][s]) >= size {
                return Found::Head(f, s);
            }
        }
        match self.search_class(links, size, searched) {
            Some(block) => Found::Inside(block),
            None => Found::Nothing,
        }
    }

    /// The slow path: a linear first-fit search of the request's own class.
    #[cold]
    fn search_class<L: FreeLinks>(
        &self,
        links: &L,
        size: usize,
        searched: &mut u64,
    ) -> Option<Block> {
        let (fl, sl) = class_of(size);
        let mut x = self.heads[fl][sl];
        while x != NIL {
            *searched += 1;
            if links.block_size(x) >= size {
                return Some(x);
            }
            x = links.next(x);
        }
        None
    }
}

// SAFETY: the bins only ever name blocks the engine inserted and has not removed, and `find`
// checks the size of what it returns.
unsafe impl Policy for SegregatedFit {
    #[inline]
    fn insert<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize) {
        let (fl, sl) = class_of(size);
        let head = self.heads[fl][sl];
        links.set_next(block, head);
        links.set_prev(block, NIL);
        if head != NIL {
            links.set_prev(head, block);
        }
        self.heads[fl][sl] = block;
        self.fl_bitmap |= 1 << fl;
        self.sl_bitmap[fl] |= 1 << sl;
    }

    #[inline]
    fn remove<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize) {
        let next = links.next(block);
        let prev = links.prev(block);
        if next != NIL {
            links.set_prev(next, prev);
        }
        if prev != NIL {
            links.set_next(prev, next);
        } else {
            let (fl, sl) = class_of(size);
            self.heads[fl][sl] = next;
            if next == NIL {
                self.clear_bit(fl, sl);
            }
        }
    }

    #[inline]
    fn find<L: FreeLinks>(&mut self, links: &L, size: usize, searched: &mut u64) -> Option<Block> {
        match self.locate(links, size, searched) {
            Found::Head(fl, sl) => Some(self.heads[fl][sl]),
            Found::Inside(block) => Some(block),
            Found::Nothing => None,
        }
    }

    #[inline]
    fn take<L: FreeLinks>(
        &mut self,
        links: &mut L,
        size: usize,
        searched: &mut u64,
    ) -> Option<(Block, usize)> {
        match self.locate(links, size, searched) {
            Found::Head(fl, sl) => {
                // The bin is known: pop its head without working out its class again.
                let block = self.heads[fl][sl];
                let next = links.next(block);
                self.heads[fl][sl] = next;
                if next != NIL {
                    links.set_prev(next, NIL);
                } else {
                    self.clear_bit(fl, sl);
                }
                Some((block, links.block_size(block)))
            }
            Found::Inside(block) => {
                let block_size = links.block_size(block);
                self.remove(links, block, block_size);
                Some((block, block_size))
            }
            Found::Nothing => None,
        }
    }

    fn list_count(&self) -> usize {
        FL * SL
    }

    fn list_head(&self, list: usize) -> Block {
        self.heads[list / SL][list % SL]
    }

    /// The next non-empty bin, from the bitmaps.
    #[inline]
    fn next_list(&self, list: usize) -> Option<usize> {
        if list >= FL * SL {
            return None;
        }
        let (fl, sl) = self.first_nonempty(list / SL, list % SL)?;
        Some(fl * SL + sl)
    }

    fn verify<L: FreeLinks>(&self, links: &L) -> Result<(), Corruption> {
        // Plain `while` loops: this reads all 3072 bin heads on every check, and an iterator per
        // bin costs several times more where nothing is optimised (debug builds, Miri).
        let mut fl = 0;
        while fl < FL {
            let bits = self.sl_bitmap[fl];
            if (self.fl_bitmap >> fl & 1 == 1) != (bits != 0) {
                return Err(Corruption::FreeListMismatch { addr: fl });
            }
            // A bin's bit is set exactly when its list is non-empty.
            let row = &self.heads[fl];
            let mut sl = 0;
            while sl < SL {
                if (bits >> sl & 1 == 1) == (row[sl] == NIL) {
                    return Err(Corruption::FreeListMismatch {
                        addr: row[sl].addr(),
                    });
                }
                sl += 1;
            }
            // Every block in a non-empty bin is of the bin's class.
            let mut rest = bits;
            while rest != 0 {
                let sl = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let mut x = row[sl];
                while x != NIL {
                    if class_of(links.block_size(x)) != (fl, sl) {
                        return Err(Corruption::FreeListMismatch { addr: x.addr() });
                    }
                    x = links.next(x);
                }
            }
            fl += 1;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "segregated fit"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How far the exhaustive size tests go: every size up to here (fewer under Miri, where
    /// each one is interpreted; the first levels above 1024 still get several classes each).
    const SIZES_CHECKED: usize = if cfg!(miri) { 3_000 } else { 200_000 };

    #[test]
    fn classes_are_contiguous_and_monotonic() {
        let mut last = (0, 0);
        for size in 0..SIZES_CHECKED / 2 {
            let c = class_of(size);
            assert!(c >= last, "class of {size} went down");
            assert!(class_floor(c.0, c.1) <= size, "floor above {size}");
            if c != last {
                assert_eq!(
                    class_floor(c.0, c.1),
                    size,
                    "class {c:?} does not start at {size}"
                );
            }
            last = c;
        }
        assert_eq!(class_of(32), (0, 2));
        assert_eq!(class_of(1008), (0, 63));
        assert_eq!(class_of(1024), (1, 0));
        assert_eq!(class_of(2047), (1, 63));
        assert_eq!(class_of(2048), (2, 0));
        assert_eq!(class_of(usize::MAX), (FL - 1, SL - 1));
    }

    #[test]
    fn rounding_up_finds_the_first_class_that_holds_only_big_enough_blocks() {
        for size in 1..SIZES_CHECKED {
            let above = class_at_or_above(size);
            let (fl, sl) = (above / SL, above % SL);
            assert!(
                class_floor(fl, sl) >= size,
                "class of {size} starts below it"
            );
            let own = class_of(size);
            if class_floor(own.0, own.1) == size {
                assert_eq!((fl, sl), own, "{size} starts its own class");
            } else {
                let next = if own.1 + 1 == SL {
                    (own.0 + 1, 0)
                } else {
                    (own.0, own.1 + 1)
                };
                assert_eq!((fl, sl), next, "{size} rounds up to the next class");
            }
        }
        assert_eq!(class_at_or_above(usize::MAX), FL * SL - 1);
    }

    struct Sizes(std::vec::Vec<(usize, Block, Block)>);
    impl FreeLinks for Sizes {
        fn block_size(&self, b: Block) -> usize {
            self.0[b.addr()].0
        }
        fn next(&self, b: Block) -> Block {
            self.0[b.addr()].1
        }
        fn prev(&self, b: Block) -> Block {
            self.0[b.addr()].2
        }
        fn set_next(&mut self, b: Block, n: Block) {
            self.0[b.addr()].1 = n
        }
        fn set_prev(&mut self, b: Block, p: Block) {
            self.0[b.addr()].2 = p
        }
    }

    /// Block number `i` (no memory behind it).
    fn b(i: usize) -> Block {
        Block::from_addr(i)
    }

    /// The blocks both tests below file: blocks 1 and 5 share the class 992..1008, the others
    /// are alone in their classes.
    const SIZES: [usize; 6] = [48, 1004, 1008, 4096, 100_000, 992];

    /// Blocks `0..sizes.len()` of the given sizes, filed in that order.
    fn filed(sizes: &[usize]) -> (Sizes, SegregatedFit) {
        let mut t = Sizes(sizes.iter().map(|&s| (s, NIL, NIL)).collect());
        let mut p = SegregatedFit::new();
        for (i, &s) in sizes.iter().enumerate() {
            p.insert(&mut t, b(i), s);
        }
        (t, p)
    }

    #[test]
    fn find_rounds_up_then_searches_the_own_class() {
        // Block 5 (992 bytes) is filed last, so it heads the class 992..1008 and block 1
        // (1004 bytes, same class) sits behind it.
        let (mut t, mut p) = filed(&SIZES);
        p.verify(&t).unwrap();
        let mut n = 0;
        assert_eq!(p.find(&t, 32, &mut n), Some(b(0)));
        assert_eq!(
            p.find(&t, 992, &mut n),
            Some(b(5)),
            "992 starts its own class"
        );
        assert_eq!(
            p.find(&t, 1000, &mut n),
            Some(b(2)),
            "1000 is inside the 992 class: rounded up to the 1008 class"
        );
        assert_eq!(p.find(&t, 2000, &mut n), Some(b(3)));
        assert_eq!(n, 4, "one block per lookup");
        p.remove(&mut t, b(2), 1008);
        p.remove(&mut t, b(3), 4096);
        p.remove(&mut t, b(4), 100_000);
        // Above 48 only the 992..1008 class is left. For 1000 bytes the good-fit lookup finds
        // nothing, and the slow path walks the class past block 5 to block 1.
        assert_eq!(p.find(&t, 1000, &mut n), Some(b(1)));
        assert_eq!(n, 6);
        assert_eq!(p.find(&t, 1005, &mut n), None);
        assert_eq!(n, 8);
        p.verify(&t).unwrap();
        p.remove(&mut t, b(1), 1004);
        p.remove(&mut t, b(5), 992);
        p.remove(&mut t, b(0), 48);
        assert_eq!(p.fl_bitmap, 0);
        p.verify(&t).unwrap();
    }

    #[test]
    fn next_list_names_exactly_the_non_empty_bins_and_verify_checks_them() {
        let (mut t, mut p) = filed(&SIZES);
        let mut named = std::vec::Vec::new();
        let mut list = p.next_list(0);
        while let Some(l) = list {
            named.push(l);
            list = p.next_list(l + 1);
        }
        let mut bins: std::vec::Vec<usize> = SIZES
            .iter()
            .map(|&s| {
                let (fl, sl) = class_of(s);
                fl * SL + sl
            })
            .collect();
        bins.sort_unstable();
        bins.dedup();
        assert_eq!(named, bins);
        assert!(named.iter().all(|&l| p.list_head(l) != NIL));
        assert_eq!(p.next_list(FL * SL), None);
        p.verify(&t).unwrap();

        // A bin whose bit is clear but whose list is not empty.
        let (fl, sl) = class_of(SIZES[3]);
        p.sl_bitmap[fl] &= !(1 << sl);
        assert!(p.verify(&t).is_err());
        p.sl_bitmap[fl] |= 1 << sl;
        // A head in a bin whose bit is clear.
        p.heads[0][0] = b(3);
        assert!(p.verify(&t).is_err());
        p.heads[0][0] = NIL;
        // A block filed in a bin that is not its class.
        t.0[3].0 = 5000;
        assert!(p.verify(&t).is_err());
        t.0[3].0 = SIZES[3];
        p.verify(&t).unwrap();
    }

    #[test]
    fn take_unlinks_what_find_would_pick() {
        // Blocks 1 and 5 share the class 992..1008 (5 heads it, then 1 does); the others are
        // alone in their classes.
        let (mut t, mut p) = filed(&SIZES);
        let mut n = 0;
        for (size, want) in [
            (2000, 3),
            (992, 5),
            (1000, 2),
            (1000, 4),
            (1000, 1),
            (16, 0),
        ] {
            let mut m = 0;
            let found = p.find(&t, size, &mut m);
            assert_eq!(p.take(&mut t, size, &mut n), Some((b(want), SIZES[want])));
            assert_eq!(found, Some(b(want)), "take picks what find picks");
            // The taken block is on no list any more, and the bins and bitmaps still agree
            // (`verify` checks that every list the bitmaps skip is empty).
            let mut list = p.next_list(0);
            while let Some(l) = list {
                list = p.next_list(l + 1);
                let mut x = p.list_head(l);
                while x != NIL {
                    assert_ne!(x, b(want), "block {want} is still listed");
                    x = t.next(x);
                }
            }
            p.verify(&t).unwrap();
        }
        assert_eq!(p.take(&mut t, 16, &mut n), None);
        assert_eq!((p.fl_bitmap, p.sl_bitmap), (0, [0; FL]));
    }
}
