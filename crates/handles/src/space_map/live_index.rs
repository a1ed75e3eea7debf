//! The index of live blocks by address, kept in one of two forms.
//!
//! - The *flat* form, used between compaction passes: a vector of entries in push order, with
//!   removed blocks left as tombstones and `pos[slot]` giving each live block's entry. Insert
//!   is a push and remove writes one tombstone, so the hot paths do no tree work. Tombstones
//!   are pruned once they outnumber the live entries (amortised O(1)), and the vector is sorted
//!   by offset only when an ordered walk needs it. `sorted` is true iff the entries
//!   (tombstones included) are in non-decreasing offset order.
//! - The *tree* form, used while a compactor moves blocks one by one: a B-tree by offset that
//!   answers "first block at or after" and "last block before" in O(log n) and takes moves that
//!   reorder blocks. Built from the flat form in O(n) when a compactor first asks, turned back
//!   into the flat form when the pass ends.
//!
//! Invariant: exactly one form holds the blocks (the other is empty), every live block appears
//! once, and `dead` counts the tombstones of the flat form.

use std::collections::BTreeMap;

/// A tombstone's slot index.
const DEAD: u32 = u32::MAX;

/// Prune only once at least this many tombstones piled up, so that small arenas do not prune
/// on every remove.
const PRUNE_MIN: usize = 32;

/// How many blocks ahead of the current one the walks show their `ahead` callback.
const LOOKAHEAD: usize = crate::prefetch::DISTANCE;

/// What [`LiveIndex::walk_down`]'s callback did with a block.
pub(crate) enum Walk {
    /// The block stays where it is; the walk goes on.
    Stay,
    /// The block now starts here; the walk goes on.
    MoveTo(usize),
    /// The walk ends; the block stays.
    Stop,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    off: usize,
    len: usize,
    slot: u32,
}

#[derive(Default)]
pub(crate) struct LiveIndex {
    flat: Vec<Entry>,
    /// For each slot index, the position of its entry in `flat` (meaningful only for live
    /// blocks in the flat form).
    pos: Vec<u32>,
    sorted: bool,
    dead: usize,
    tree: Option<BTreeMap<usize, (usize, u32)>>,
}

impl LiveIndex {
    /// Number of live blocks.
    pub(crate) fn count(&self) -> usize {
        match &self.tree {
            Some(t) => t.len(),
            None => self.flat.len() - self.dead,
        }
    }

    #[inline]
    pub(crate) fn insert(&mut self, off: usize, len: usize, slot: u32) {
        if let Some(t) = &mut self.tree {
            let old = t.insert(off, (len, slot));
            debug_assert!(old.is_none());
            return;
        }
        if let Some(last) = self.flat.last() {
            if off < last.off {
                self.sorted = false;
            }
        } else {
            self.sorted = true;
        }
        let i = slot as usize;
        if i >= self.pos.len() {
            self.pos.resize(i + 1, 0);
        }
        self.pos[i] = self.flat.len() as u32;
        self.flat.push(Entry { off, len, slot });
    }

    #[inline]
    pub(crate) fn remove(&mut self, off: usize, slot: u32) {
        if let Some(t) = &mut self.tree {
            let old = t.remove(&off);
            debug_assert!(old.is_some());
            return;
        }
        let p = self.pos[slot as usize] as usize;
        debug_assert!(self.flat[p].slot == slot && self.flat[p].off == off);
        if p + 1 == self.flat.len() {
            self.flat.pop();
            while self.flat.last().is_some_and(|e| e.slot == DEAD) {
                self.flat.pop();
                self.dead -= 1;
            }
            return;
        }
        self.flat[p].slot = DEAD;
        self.dead += 1;
        if self.dead >= PRUNE_MIN && self.dead > self.flat.len() - self.dead {
            self.prune();
        }
    }

    pub(crate) fn set_len(&mut self, off: usize, slot: u32, len: usize) {
        match &mut self.tree {
            Some(t) => {
                if let Some(e) = t.get_mut(&off) {
                    e.0 = len;
                }
            }
            None => {
                let e = &mut self.flat[self.pos[slot as usize] as usize];
                debug_assert!(e.slot == slot && e.off == off);
                e.len = len;
            }
        }
    }

    /// Drops the tombstones of the flat form (order kept) and fixes `pos`.
    fn prune(&mut self) {
        if self.dead > 0 {
            self.flat.retain(|e| e.slot != DEAD);
            self.dead = 0;
            for (i, e) in self.flat.iter().enumerate() {
                self.pos[e.slot as usize] = i as u32;
            }
        }
    }

    /// Puts the flat form in address order without tombstones (the form must be flat).
    fn clean(&mut self) {
        if self.dead > 0 {
            self.flat.retain(|e| e.slot != DEAD);
            self.dead = 0;
        } else if self.sorted {
            return;
        }
        if !self.sorted {
            // A stable sort finds the runs that bump allocation leaves and merges them.
            self.flat.sort_by_key(|e| e.off);
            self.sorted = true;
        }
        for (i, e) in self.flat.iter().enumerate() {
            self.pos[e.slot as usize] = i as u32;
        }
    }

    /// Switches to the tree form (no-op if already there).
    pub(crate) fn make_tree(&mut self) {
        if self.tree.is_some() {
            return;
        }
        self.clean();
        let tree = self
            .flat
            .drain(..)
            .map(|e| (e.off, (e.len, e.slot)))
            .collect();
        self.tree = Some(tree);
    }

    /// Switches to the flat form, clean and sorted (no-op if already flat).
    pub(crate) fn make_flat(&mut self) {
        let Some(tree) = self.tree.take() else {
            return;
        };
        self.flat.clear();
        self.flat.extend(
            tree.into_iter()
                .map(|(off, (len, slot))| Entry { off, len, slot }),
        );
        self.sorted = true;
        self.dead = 0;
        for (i, e) in self.flat.iter().enumerate() {
            // Blocks inserted in the tree form may have slots `pos` has not seen.
            let slot = e.slot as usize;
            if slot >= self.pos.len() {
                self.pos.resize(slot + 1, 0);
            }
            self.pos[slot] = i as u32;
        }
    }

    /// The first live block at or after `at` (tree form only): (offset, length, slot).
    pub(crate) fn from(&self, at: usize) -> Option<(usize, usize, u32)> {
        let t = self.tree.as_ref().expect("tree form");
        t.range(at..).next().map(|(&o, &(l, s))| (o, l, s))
    }

    /// The last live block starting before `at` (tree form only).
    pub(crate) fn before(&self, at: usize) -> Option<(usize, usize, u32)> {
        let t = self.tree.as_ref().expect("tree form");
        t.range(..at).next_back().map(|(&o, &(l, s))| (o, l, s))
    }

    /// All live blocks in address order: (offset, length, slot). O(n log n) in the flat form.
    pub(crate) fn sorted_blocks(&self) -> Vec<(usize, usize, u32)> {
        match &self.tree {
            Some(t) => t.iter().map(|(&o, &(l, s))| (o, l, s)).collect(),
            None => {
                let mut v: Vec<_> = self
                    .flat
                    .iter()
                    .filter(|e| e.slot != DEAD)
                    .map(|e| (e.off, e.len, e.slot))
                    .collect();
                if !self.sorted {
                    v.sort_by_key(|b| b.0);
                }
                v
            }
        }
    }

    /// Switches to the flat form and walks the live blocks from `at` up in address order,
    /// calling `f(offset, len, slot)` and recording the offset it returns. `f` must keep the
    /// block order (checked): each new offset at or below the old one and above the previous
    /// block's new offset. Before each call, `ahead` is shown the block [`LOOKAHEAD`] places
    /// further on, so that it can prefetch what `f` will touch then. Returns the first block's
    /// old offset, if any block was visited.
    pub(crate) fn slide_from(
        &mut self,
        at: usize,
        mut ahead: impl FnMut(usize, usize, u32),
        mut f: impl FnMut(usize, usize, u32) -> usize,
    ) -> Option<usize> {
        self.make_flat();
        self.clean();
        let first = self.flat.partition_point(|e| e.off < at);
        let old_first = self.flat.get(first)?.off;
        let mut prev: Option<usize> = None;
        for i in first..self.flat.len() {
            if let Some(e) = self.flat.get(i + LOOKAHEAD) {
                ahead(e.off, e.len, e.slot);
            }
            let e = &mut self.flat[i];
            let to = f(e.off, e.len, e.slot);
            assert!(
                to <= e.off && prev.map_or(true, |p| to > p),
                "a slide must keep block order"
            );
            e.off = to;
            prev = Some(to);
        }
        Some(old_first)
    }

    /// Switches to the flat form and walks the live blocks starting below `below` from the
    /// highest down, letting `f(offset, len, slot)` move each one (anywhere free: the walk
    /// does not keep address order) until it says stop. Positions of entries do not change,
    /// only their offsets; the vector is re-sorted lazily. Before each call, `ahead` is shown
    /// the block [`LOOKAHEAD`] places further down, as in [`LiveIndex::slide_from`].
    pub(crate) fn walk_down(
        &mut self,
        below: usize,
        mut ahead: impl FnMut(usize, usize, u32),
        mut f: impl FnMut(usize, usize, u32) -> Walk,
    ) {
        self.make_flat();
        self.clean();
        let end = self.flat.partition_point(|e| e.off < below);
        for i in (0..end).rev() {
            if let Some(e) = i.checked_sub(LOOKAHEAD).map(|j| self.flat[j]) {
                ahead(e.off, e.len, e.slot);
            }
            let e = &mut self.flat[i];
            match f(e.off, e.len, e.slot) {
                Walk::Stay => {}
                Walk::MoveTo(to) => {
                    e.off = to;
                    self.sorted = false;
                }
                Walk::Stop => break,
            }
        }
    }

    /// The gaps between live blocks (flat form), lowest first, and the end of the highest
    /// block: what the holes and the top must be once blocks have moved in bulk.
    pub(crate) fn gaps(&mut self) -> (Vec<(usize, usize)>, usize) {
        self.make_flat();
        self.clean();
        let mut gaps = Vec::new();
        let mut end = 0;
        for e in &self.flat {
            debug_assert!(e.off >= end, "live blocks overlap");
            if e.off > end {
                gaps.push((end, e.off - end));
            }
            end = e.off + e.len;
        }
        (gaps, end)
    }

    /// The offset of the first live block at or after `at`, in either form.
    pub(crate) fn first_from(&mut self, at: usize) -> Option<usize> {
        if self.tree.is_some() {
            return self.from(at).map(|b| b.0);
        }
        self.clean();
        let i = self.flat.partition_point(|e| e.off < at);
        self.flat.get(i).map(|e| e.off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_agree_through_churn_and_conversions() {
        let mut ix = LiveIndex::default();
        let mut model = std::collections::BTreeMap::new();
        let mut rng = freespace_testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next();
        // Offsets are unique (slot * 64), slots reused after removal. Every `period` steps
        // the index goes to its tree form and back.
        let period = crate::tests::runs(500, 6) as u32;
        let slots = crate::tests::runs(200, 24) as u64;
        for step in 0..10 * period {
            let r = next();
            let slot = (r % slots) as u32;
            let off = slot as usize * 64;
            if model.remove(&off).is_some() {
                ix.remove(off, slot);
            } else {
                ix.insert(off, 8 + (r as usize % 50), slot);
                model.insert(off, (8 + (r as usize % 50), slot));
            }
            if r % 97 == 0 {
                // set_len is only called on live blocks.
                if let Some(e) = model.get_mut(&off) {
                    ix.set_len(off, slot, 3);
                    e.0 = 3;
                }
            }
            if step % period == period / 2 {
                ix.make_tree();
                let b = model.range(1000..).next().map(|(&o, &(l, s))| (o, l, s));
                assert_eq!(ix.from(1000), b);
            }
            if step % period == period - 1 {
                ix.make_flat();
            }
            let want: Vec<_> = model.iter().map(|(&o, &(l, s))| (o, l, s)).collect();
            assert_eq!(ix.sorted_blocks(), want, "step {step}");
            assert_eq!(ix.count(), model.len());
        }
    }

    #[test]
    fn slide_rewrites_offsets_in_order_and_refuses_reordering() {
        let mut ix = LiveIndex::default();
        ix.insert(100, 10, 0);
        ix.insert(0, 10, 1);
        ix.insert(50, 10, 2);
        let first = ix.slide_from(10, |_, _, _| {}, |off, _, _| off - 10);
        assert_eq!(first, Some(50));
        assert_eq!(
            ix.sorted_blocks(),
            vec![(0, 10, 1), (40, 10, 2), (90, 10, 0)]
        );
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ix.slide_from(0, |_, _, _| {}, |_, _, _| 0);
        }));
        assert!(r.is_err(), "two blocks at one offset must be refused");
    }
}
