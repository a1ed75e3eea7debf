//! The map of the buffer: which byte ranges hold live blocks and which are holes.
//!
//! Invariants (checked by [`SpaceMap::check`]):
//! - live blocks and holes tile `[0, top)` exactly, without overlap;
//! - no two holes are adjacent (they are coalesced on release), and no hole touches `top`
//!   (the tail is trimmed instead, so `[top, capacity)` is the bump region);
//! - the map is in one of two forms, switched together for live blocks and holes. The *flat*
//!   form (between passes) keeps the live blocks in a [`LiveIndex`] vector and the holes in
//!   [`HoleBins`] (hash lookups by start and end, size bins): every insert, remove and
//!   coalesce is O(1). The *ordered* form (while a compactor moves blocks one by one) keeps
//!   B-trees: live blocks by offset, holes by address (`holes`) and by (length, address)
//!   (`by_size`), which answer the range queries a compactor asks. In each form the other
//!   form's structures are empty;
//! - `hole_bytes` is the sum of hole lengths.
//!
//! Zero-length blocks occupy no range and do not appear here.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

pub(crate) mod fit_tree;
mod hole_bins;
pub(crate) mod live_index;
mod offset_map;

use crate::error::ArenaCorruption;
use hole_bins::HoleBins;
use live_index::LiveIndex;

/// Holes in address order, from either form.
pub(crate) enum HoleIter<'a> {
    Tree(std::collections::btree_map::Iter<'a, usize, usize>),
    Flat(std::vec::IntoIter<(usize, usize)>),
}

impl Iterator for HoleIter<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        match self {
            HoleIter::Tree(it) => it.next().map(|(&off, &len)| off..off + len),
            HoleIter::Flat(it) => it.next().map(|(off, len)| off..off + len),
        }
    }
}

#[derive(Default)]
pub(crate) struct SpaceMap {
    /// Live blocks by start offset: (length, slot index), flat or a tree (see [`LiveIndex`]).
    pub(crate) live: LiveIndex,
    /// Ordered form: holes by start offset: length.
    holes: BTreeMap<usize, usize>,
    /// Ordered form: the same holes as (length, start offset), for best-fit search.
    by_size: BTreeSet<(usize, usize)>,
    /// Flat form: the holes.
    bins: HoleBins,
    ordered: bool,
    top: usize,
    hole_bytes: usize,
}

impl SpaceMap {
    #[inline]
    pub(crate) fn top(&self) -> usize {
        self.top
    }

    #[inline]
    pub(crate) fn hole_bytes(&self) -> usize {
        self.hole_bytes
    }

    #[inline]
    pub(crate) fn hole_count(&self) -> usize {
        if self.ordered {
            self.by_size.len()
        } else {
            self.bins.count()
        }
    }

    pub(crate) fn largest_hole(&self) -> usize {
        if self.ordered {
            self.by_size.last().map_or(0, |&(len, _)| len)
        } else {
            self.bins.largest()
        }
    }

    pub(crate) fn live_count(&self) -> usize {
        self.live.count()
    }

    /// Switches to the ordered form (B-trees), in O(n log n) at worst.
    pub(crate) fn make_ordered(&mut self) {
        self.live.make_tree();
        if self.ordered {
            return;
        }
        let mut holes: Vec<(usize, usize)> = self.bins.iter().collect();
        holes.sort_unstable();
        self.by_size = holes.iter().map(|&(off, len)| (len, off)).collect();
        self.holes = holes.into_iter().collect();
        self.bins.clear();
        self.ordered = true;
    }

    /// Switches to the flat form (vector and hash bins), in O(n).
    pub(crate) fn make_flat(&mut self) {
        self.live.make_flat();
        if !self.ordered {
            return;
        }
        self.by_size.clear();
        for (off, len) in std::mem::take(&mut self.holes) {
            self.bins.insert(off, len);
        }
        self.ordered = false;
    }

    /// Finds room for `len > 0` bytes aligned to `align` below `capacity`: a fitting hole
    /// first (best fit in the ordered form, the smallest fitting size class in the flat form),
    /// then the bump region. Claims it and returns its offset.
    pub(crate) fn alloc(&mut self, len: usize, align: usize, capacity: usize) -> Option<usize> {
        debug_assert!(len > 0);
        // No placement for a bad alignment; the check also lets the compiler round up with a
        // mask instead of a division.
        if !align.is_power_of_two() {
            return None;
        }
        let found = if self.ordered {
            let mut found = None;
            for &(hole_len, hole_off) in self.by_size.range((len, 0)..) {
                let start = hole_off.checked_next_multiple_of(align)?;
                if start + len <= hole_off + hole_len {
                    found = Some((hole_off, hole_len, start));
                    break;
                }
            }
            found
        } else {
            self.bins.find(len, align)
        };
        if let Some((off, hole_len, start)) = found {
            self.claim_in(off, hole_len, start, len);
            return Some(start);
        }
        let start = self.top.checked_next_multiple_of(align)?;
        if start.checked_add(len)? > capacity {
            return None;
        }
        self.claim_bump(start, len);
        Some(start)
    }

    /// The hole containing `x`. In the flat form only a hole *starting* at `x` is found: the
    /// flat-form callers (resizing in place) only ask about a block's end, where a following
    /// hole starts.
    fn hole_containing(&self, x: usize) -> Option<(usize, usize)> {
        if self.ordered {
            let (&off, &len) = self.holes.range(..=x).next_back()?;
            (x < off + len).then_some((off, len))
        } else {
            self.bins.at(x).map(|len| (x, len))
        }
    }

    /// Whether `[start, end)` is free (in one hole or in the bump region below `capacity`).
    /// In the flat form a range below `top` counts as free only if it starts at a hole's start
    /// (see [`SpaceMap::hole_containing`]): the answer may be a false "no", never a false "yes".
    pub(crate) fn is_free(&self, start: usize, end: usize, capacity: usize) -> bool {
        if start >= end {
            return true;
        }
        if end > capacity {
            return false;
        }
        if start >= self.top {
            return true;
        }
        match self.hole_containing(start) {
            Some((off, len)) => {
                let hole_end = off + len;
                end <= hole_end || hole_end == self.top
            }
            None => false,
        }
    }

    /// Marks `[start, start + len)` as used. The range must be free as [`SpaceMap::is_free`]
    /// reports it.
    pub(crate) fn claim(&mut self, start: usize, len: usize) {
        if start >= self.top {
            self.claim_bump(start, len);
            return;
        }
        let (off, hole_len) = self
            .hole_containing(start)
            .expect("claim of a range that is not free");
        self.claim_in(off, hole_len, start, len);
    }

    /// Claims `[start, start + len)` at or above `top`; the gap below `start` becomes a hole.
    fn claim_bump(&mut self, start: usize, len: usize) {
        debug_assert!(start >= self.top);
        if start > self.top {
            // No hole touches the old top, so the gap needs no coalescing.
            self.add_hole_raw(self.top, start - self.top);
        }
        self.top = start + len;
    }

    /// Claims `[start, start + len)` inside the hole `[off, off + hole_len)`.
    fn claim_in(&mut self, off: usize, hole_len: usize, start: usize, len: usize) {
        let end = start + len;
        let hole_end = off + hole_len;
        debug_assert!(off <= start && start < hole_end);
        self.remove_hole_raw(off, hole_len);
        if start > off {
            self.add_hole_raw(off, start - off);
        }
        if end < hole_end {
            self.add_hole_raw(end, hole_end - end);
        } else if end > hole_end {
            // The range runs past the last hole into the bump region.
            debug_assert_eq!(hole_end, self.top);
            self.top = end;
        }
    }

    /// Marks `[start, start + len)` (currently used) as free: it joins the hole before and/or
    /// after it, becomes a new hole, or, if it reaches `top`, lowers `top` (taking the hole
    /// below with it). Each case touches only the entries that change.
    pub(crate) fn release(&mut self, start: usize, len: usize) {
        let end = start + len;
        debug_assert!(end <= self.top);
        let prev = self.hole_ending_at(start).map(|r| (r.start, r.len()));
        if end == self.top {
            // The tail: trim instead of making a hole, and absorb the hole just below.
            self.top = match prev {
                Some((off, len)) => {
                    self.remove_hole_raw(off, len);
                    off
                }
                None => start,
            };
            return;
        }
        let next = if self.ordered {
            self.holes.get(&end).copied()
        } else {
            self.bins.at(end)
        };
        if !self.ordered {
            // Grow a neighbour in place: fewer hash operations than remove and re-insert.
            match (prev, next) {
                (Some((off, prev_len)), None) => self.bins.grow_end(off, prev_len, prev_len + len),
                (None, Some(next_len)) => self.bins.grow_start(end, next_len, start),
                (Some((off, prev_len)), Some(next_len)) => {
                    self.bins.remove(end, next_len);
                    self.bins.grow_end(off, prev_len, prev_len + len + next_len);
                }
                (None, None) => self.bins.insert(start, len),
            }
            self.hole_bytes += len;
            return;
        }
        if let Some(next_len) = next {
            self.remove_hole_raw(end, next_len);
        }
        let tail = next.unwrap_or(0);
        match prev {
            Some((off, prev_len)) => {
                self.remove_hole_raw(off, prev_len);
                self.add_hole_raw(off, prev_len + len + tail);
            }
            None => self.add_hole_raw(start, len + tail),
        }
    }

    #[inline]
    fn add_hole_raw(&mut self, off: usize, len: usize) {
        debug_assert!(len > 0);
        if self.ordered {
            self.holes.insert(off, len);
            self.by_size.insert((len, off));
        } else {
            self.bins.insert(off, len);
        }
        self.hole_bytes += len;
    }

    #[inline]
    fn remove_hole_raw(&mut self, off: usize, len: usize) {
        if self.ordered {
            self.holes.remove(&off);
            self.by_size.remove(&(len, off));
        } else {
            self.bins.remove(off, len);
        }
        self.hole_bytes -= len;
    }

    #[inline]
    pub(crate) fn insert_live(&mut self, off: usize, len: usize, slot: u32) {
        self.live.insert(off, len, slot);
    }

    #[inline]
    pub(crate) fn remove_live(&mut self, off: usize, slot: u32) {
        self.live.remove(off, slot);
    }

    pub(crate) fn set_live_len(&mut self, off: usize, slot: u32, len: usize) {
        self.live.set_len(off, slot, len);
    }

    /// The first live block starting at or after `at`: (offset, length, slot). Needs the
    /// ordered form ([`SpaceMap::make_ordered`]).
    pub(crate) fn live_from(&self, at: usize) -> Option<(usize, usize, u32)> {
        self.live.from(at)
    }

    /// The last live block starting strictly before `at` (ordered form only).
    pub(crate) fn live_before(&self, at: usize) -> Option<(usize, usize, u32)> {
        self.live.before(at)
    }

    /// The hole that ends exactly at `at`, if any.
    pub(crate) fn hole_ending_at(&self, at: usize) -> Option<Range<usize>> {
        if self.ordered {
            let (&off, &len) = self.holes.range(..at).next_back()?;
            (off + len == at).then_some(off..at)
        } else {
            self.bins.ending_at(at).map(|off| off..at)
        }
    }

    /// Holes in address order (O(n log n) in the flat form).
    pub(crate) fn holes(&self) -> HoleIter<'_> {
        if self.ordered {
            HoleIter::Tree(self.holes.iter())
        } else {
            let mut v: Vec<(usize, usize)> = self.bins.iter().collect();
            v.sort_unstable();
            HoleIter::Flat(v.into_iter())
        }
    }

    /// Holes of at least `min_len` bytes, smallest first (ties by address).
    pub(crate) fn holes_by_size(&self, min_len: usize) -> std::vec::IntoIter<Range<usize>> {
        let v: Vec<Range<usize>> = if self.ordered {
            self.by_size
                .range((min_len, 0)..)
                .map(|&(len, off)| off..off + len)
                .collect()
        } else {
            let mut v: Vec<(usize, usize)> = self
                .bins
                .iter()
                .filter(|&(_, len)| len >= min_len)
                .map(|(off, len)| (len, off))
                .collect();
            v.sort_unstable();
            v.into_iter().map(|(len, off)| off..off + len).collect()
        };
        v.into_iter()
    }

    /// Replaces every hole from `start` up (a block or hole boundary) with `holes` (sorted,
    /// between the slid blocks) and sets `top`.
    pub(crate) fn replace_holes_from(
        &mut self,
        start: usize,
        holes: Vec<(usize, usize)>,
        top: usize,
    ) {
        if self.ordered {
            let dropped = self.holes.split_off(&start);
            if dropped.len() > self.holes.len() {
                // Most holes were above start: rebuilding the size index from the survivors
                // (a sort and a bulk build) beats removing each dropped hole from it.
                self.by_size = self.holes.iter().map(|(&off, &len)| (len, off)).collect();
                self.hole_bytes = self.holes.values().sum();
            } else {
                for (off, len) in dropped {
                    self.by_size.remove(&(len, off));
                    self.hole_bytes -= len;
                }
            }
        } else {
            self.bins.remove_from(start);
            self.hole_bytes = self.bins.bytes();
        }
        for (off, len) in holes {
            self.add_hole_raw(off, len);
        }
        self.top = top;
    }

    /// Recomputes the holes and the top from the live blocks (flat form), after blocks have
    /// moved in bulk.
    pub(crate) fn rebuild_holes(&mut self) {
        let (gaps, top) = self.live.gaps();
        self.replace_holes_from(0, gaps, top);
    }

    /// Live blocks in address order: (offset, length, slot).
    pub(crate) fn live(&self) -> Vec<(usize, usize, u32)> {
        self.live.sorted_blocks()
    }

    /// Validates every invariant listed at the top of this file.
    pub(crate) fn check(&self) -> Result<(), ArenaCorruption> {
        if self.ordered {
            if self.bins.count() != 0 {
                return Err(ArenaCorruption::HoleIndexMismatch { offset: None });
            }
            if self.by_size.len() != self.holes.len() {
                return Err(ArenaCorruption::HoleIndexMismatch { offset: None });
            }
            for (&off, &len) in &self.holes {
                if !self.by_size.contains(&(len, off)) {
                    return Err(ArenaCorruption::HoleIndexMismatch { offset: Some(off) });
                }
            }
        } else {
            if !self.holes.is_empty() || !self.by_size.is_empty() {
                return Err(ArenaCorruption::HoleIndexMismatch { offset: None });
            }
            self.bins.check()?;
        }
        let blocks = self.live.sorted_blocks();
        let mut live = blocks.iter().peekable();
        let sorted_holes: Vec<Range<usize>> = self.holes().collect();
        let mut holes = sorted_holes.iter().peekable();
        let mut cursor = 0usize;
        // The start of the previous entry, if it was a hole.
        let mut prev_was_hole = None;
        let mut hole_sum = 0usize;
        loop {
            let next_live = live.peek().map(|b| b.0);
            let next_hole = holes.peek().map(|h| h.start);
            let (off, len, is_hole) = match (next_live, next_hole) {
                (None, None) => break,
                (Some(l), Some(h)) if h < l => {
                    let h = holes.next().unwrap();
                    (h.start, h.len(), true)
                }
                (Some(_), _) => {
                    let &(o, len, _) = live.next().unwrap();
                    (o, len, false)
                }
                (None, Some(_)) => {
                    let h = holes.next().unwrap();
                    (h.start, h.len(), true)
                }
            };
            if off != cursor {
                return Err(ArenaCorruption::BadTiling { offset: cursor });
            }
            if len == 0 {
                return Err(ArenaCorruption::BadTiling { offset: off });
            }
            if is_hole {
                if prev_was_hole.is_some() {
                    return Err(ArenaCorruption::UncoalescedHole { offset: off });
                }
                hole_sum += len;
            }
            prev_was_hole = is_hole.then_some(off);
            cursor = off + len;
        }
        if cursor != self.top {
            return Err(ArenaCorruption::BadTiling { offset: cursor });
        }
        if let Some(offset) = prev_was_hole {
            return Err(ArenaCorruption::UncoalescedHole { offset });
        }
        if hole_sum != self.hole_bytes {
            return Err(ArenaCorruption::HoleBytesMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc_live(s: &mut SpaceMap, len: usize, align: usize, cap: usize, slot: u32) -> usize {
        let off = s.alloc(len, align, cap).unwrap();
        s.insert_live(off, len, slot);
        s.check().unwrap();
        off
    }

    fn free_live(s: &mut SpaceMap, off: usize, len: usize) {
        let slot = s.live().iter().find(|b| b.0 == off).expect("live").2;
        s.remove_live(off, slot);
        s.release(off, len);
        s.check().unwrap();
    }

    #[test]
    fn release_coalesces_both_sides_and_trims_the_tail() {
        // The chapter's coalescing example: three 10-byte blocks, free the ends, then the middle.
        let mut s = SpaceMap::default();
        let a = alloc_live(&mut s, 10, 1, 100, 0);
        let b = alloc_live(&mut s, 10, 1, 100, 1);
        let c = alloc_live(&mut s, 10, 1, 100, 2);
        let d = alloc_live(&mut s, 10, 1, 100, 3);
        assert_eq!((a, b, c, d), (0, 10, 20, 30));
        free_live(&mut s, a, 10);
        free_live(&mut s, c, 10);
        assert_eq!(s.hole_count(), 2);
        free_live(&mut s, b, 10);
        assert_eq!(s.hole_count(), 1);
        assert_eq!(s.largest_hole(), 30);
        free_live(&mut s, d, 10);
        assert_eq!((s.hole_count(), s.top()), (0, 0));
    }

    #[test]
    fn holes_are_used_best_fit_before_bumping() {
        let mut s = SpaceMap::default();
        let offs: Vec<usize> = (0..6)
            .map(|i| alloc_live(&mut s, 10 + i, 1, 1000, i as u32))
            .collect();
        // Free blocks of 10 and 13 bytes, with live blocks around them.
        free_live(&mut s, offs[0], 10);
        free_live(&mut s, offs[3], 13);
        let top = s.top();
        let x = alloc_live(&mut s, 12, 1, 1000, 9);
        assert_eq!(x, offs[3], "the 13-byte hole is the best fit for 12");
        let y = alloc_live(&mut s, 11, 1, 1000, 10);
        assert_eq!(y, top, "no hole fits 11, so it bumps");
    }

    #[test]
    fn alignment_padding_becomes_a_hole() {
        let mut s = SpaceMap::default();
        alloc_live(&mut s, 3, 1, 4096, 0);
        let off = alloc_live(&mut s, 8, 64, 4096, 1);
        assert_eq!(off, 64);
        assert_eq!(s.hole_bytes(), 61);
        assert!(s.alloc(8, 1, 64).is_some(), "the padding hole is reusable");
    }

    #[test]
    fn is_free_and_claim_across_the_last_hole_into_the_bump_region() {
        let mut s = SpaceMap::default();
        let a = alloc_live(&mut s, 16, 1, 256, 0);
        let b = alloc_live(&mut s, 16, 1, 256, 1);
        alloc_live(&mut s, 16, 1, 256, 2);
        assert!(!s.is_free(a, a + 16, 256));
        free_live(&mut s, b, 16);
        assert!(s.is_free(b, b + 16, 256));
        assert!(!s.is_free(b, b + 17, 256));
        assert!(s.is_free(48, 256, 256));
        assert!(!s.is_free(48, 257, 256));
        // The flat form only recognises ranges that start at a hole's start; the ordered form
        // finds the hole around any offset.
        assert!(!s.is_free(b + 4, b + 12, 256));
        s.make_ordered();
        s.check().unwrap();
        assert!(s.is_free(b + 4, b + 12, 256));
        s.claim(b + 4, 8);
        s.insert_live(b + 4, 8, 7);
        s.check().unwrap();
        assert_eq!(s.hole_count(), 2);
        s.make_flat();
        s.check().unwrap();
        assert_eq!((s.hole_count(), s.hole_bytes()), (2, 8));
    }

    #[test]
    fn capacity_is_respected() {
        let mut s = SpaceMap::default();
        assert!(s.alloc(100, 1, 64).is_none());
        assert_eq!(s.top(), 0);
    }

    #[test]
    fn check_names_the_broken_invariant() {
        let mut s = SpaceMap::default();
        let a = alloc_live(&mut s, 32, 8, 4096, 0);
        let b = alloc_live(&mut s, 32, 8, 4096, 1);
        alloc_live(&mut s, 32, 8, 4096, 2);
        // A block dropped from the live index without its space being released leaves a gap.
        s.remove_live(b, 1);
        assert_eq!(s.check(), Err(ArenaCorruption::BadTiling { offset: b }));
        s.release(b, 32);
        s.check().unwrap();
        // A hole byte count that disagrees with the holes.
        s.hole_bytes += 1;
        assert_eq!(s.check(), Err(ArenaCorruption::HoleBytesMismatch));
        s.hole_bytes -= 1;
        // A live entry for the space of a hole: the hole and the block overlap.
        s.insert_live(b, 32, 1);
        assert_eq!(
            s.check(),
            Err(ArenaCorruption::BadTiling { offset: b + 32 })
        );
        s.remove_live(b, 1);
        s.check().unwrap();
        assert_eq!(a, 0);
    }
}
