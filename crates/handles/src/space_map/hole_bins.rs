//! The flat form of the hole index: O(1) lookups by start and by end, and segregated size
//! bins with a bitmap for the fitting search, in the style of TLSF.
//!
//! Invariants (checked by [`HoleBins::check`]):
//! - `starts` maps each hole's start to its length, `ends` each hole's end to its start, and
//!   both hold the same holes; `bytes` is the sum of their lengths;
//! - every hole is listed in the bin of its size class. Bins may also hold *stale* entries
//!   (holes since removed or resized), dropped lazily when a search meets them; `entries`
//!   counts all bin entries, and the bins are rebuilt once stale entries outnumber the holes;
//! - `bins` is empty until the first hole is filed (so that an arena that never frees
//!   anything never allocates them), and has one bin per class from then on;
//! - bit `c` of `bitmap` is set iff bin `c` is not empty;
//! - `largest`, when known, is the largest hole's length (0 with no holes). Inserting or
//!   growing a hole keeps it known; removing a hole of that length makes it unknown, and the
//!   next [`HoleBins::largest`] scans the top bin.
//!
//! Size classes: lengths below [`EXACT`] have a class each; above, each power of two is split
//! into [`SUBS`] classes (TLSF's second level), so a search over the classes above a request's
//! class finds a hole of at least the requested length in O(1) bitmap steps.

use super::offset_map::OffsetMap;
use crate::error::ArenaCorruption;

const EXACT: usize = 128;
const SUB_BITS: u32 = 3;
const SUBS: usize = 1 << SUB_BITS;
const CLASSES: usize = EXACT + (usize::BITS as usize - 7) * SUBS;
const WORDS: usize = CLASSES.div_ceil(64);

/// How many entries of a request's own (inexact) class a search tries before moving up.
const OWN_CLASS_TRIES: usize = 16;

/// The size class of a hole or request of `len > 0` bytes.
#[inline]
fn class(len: usize) -> usize {
    if len < EXACT {
        len
    } else {
        let lg = (usize::BITS - 1 - len.leading_zeros()) as usize;
        let sub = (len >> (lg - SUB_BITS as usize)) & (SUBS - 1);
        EXACT + (lg - 7) * SUBS + sub
    }
}

pub(crate) struct HoleBins {
    starts: OffsetMap,
    ends: OffsetMap,
    bins: Vec<Vec<usize>>,
    bitmap: [u64; WORDS],
    entries: usize,
    bytes: usize,
    largest: Option<usize>,
}

impl Default for HoleBins {
    fn default() -> Self {
        HoleBins {
            starts: OffsetMap::default(),
            ends: OffsetMap::default(),
            bins: Vec::new(),
            bitmap: [0; WORDS],
            entries: 0,
            bytes: 0,
            largest: Some(0),
        }
    }
}

impl HoleBins {
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.starts.len()
    }

    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The length of the hole starting at `start`.
    #[inline]
    pub(crate) fn at(&self, start: usize) -> Option<usize> {
        self.starts.get(start)
    }

    /// The start of the hole ending at `end`.
    #[inline]
    pub(crate) fn ending_at(&self, end: usize) -> Option<usize> {
        self.ends.get(end)
    }

    #[inline]
    pub(crate) fn insert(&mut self, off: usize, len: usize) {
        debug_assert!(len > 0);
        self.starts.insert(off, len);
        self.ends.insert(off + len, off);
        self.bytes += len;
        self.push_bin(off, len);
        self.raise_largest(len);
    }

    /// A hole of `len` bytes has appeared or grown to `len`.
    #[inline]
    fn raise_largest(&mut self, len: usize) {
        if let Some(m) = &mut self.largest {
            *m = (*m).max(len);
        }
    }

    #[inline]
    fn push_bin(&mut self, off: usize, len: usize) {
        let c = class(len);
        if self.bins.is_empty() {
            self.bins.resize_with(CLASSES, Vec::new);
        }
        self.bins[c].push(off);
        self.bitmap[c / 64] |= 1 << (c % 64);
        self.entries += 1;
    }

    /// Grows the hole `[off, off + len)` upwards to `new_len`: its start key stays.
    #[inline]
    pub(crate) fn grow_end(&mut self, off: usize, len: usize, new_len: usize) {
        debug_assert!(new_len > len);
        *self.starts.get_mut(off).expect("hole") = new_len;
        self.ends.remove(off + len);
        self.ends.insert(off + new_len, off);
        self.bytes += new_len - len;
        if class(new_len) != class(len) {
            self.push_bin(off, new_len);
        }
        self.raise_largest(new_len);
    }

    /// Grows the hole `[off, off + len)` downwards to start at `new_off`: its end key stays.
    #[inline]
    pub(crate) fn grow_start(&mut self, off: usize, len: usize, new_off: usize) {
        debug_assert!(new_off < off);
        let end = off + len;
        self.starts.remove(off);
        self.starts.insert(new_off, end - new_off);
        *self.ends.get_mut(end).expect("hole") = new_off;
        self.bytes += off - new_off;
        self.push_bin(new_off, end - new_off);
        self.raise_largest(end - new_off);
    }

    /// Removes the hole `[off, off + len)`; its bin entry goes stale.
    #[inline]
    pub(crate) fn remove(&mut self, off: usize, len: usize) {
        let old = self.starts.remove(off);
        debug_assert_eq!(old, Some(len));
        self.ends.remove(off + len);
        self.bytes -= len;
        if self.largest == Some(len) {
            self.largest = None;
        }
        if self.entries > 2 * self.starts.len() + 64 {
            self.rebuild_bins();
        }
    }

    fn rebuild_bins(&mut self) {
        for c in 0..CLASSES {
            if self.bitmap[c / 64] & (1 << (c % 64)) != 0 {
                self.bins[c].clear();
            }
        }
        self.bitmap = [0; WORDS];
        self.entries = 0;
        let holes: Vec<(usize, usize)> = self.starts.iter().collect();
        for (off, len) in holes {
            self.push_bin(off, len);
        }
    }

    /// Forgets every hole.
    pub(crate) fn clear(&mut self) {
        if self.entries > 0 {
            for c in 0..CLASSES {
                if self.bitmap[c / 64] & (1 << (c % 64)) != 0 {
                    self.bins[c].clear();
                }
            }
        }
        self.bitmap = [0; WORDS];
        self.entries = 0;
        self.starts.clear();
        self.ends.clear();
        self.bytes = 0;
        self.largest = Some(0);
    }

    /// The first non-empty bin at or above class `c`.
    #[inline]
    fn next_bin(&self, c: usize) -> Option<usize> {
        let mut w = c / 64;
        if w >= WORDS {
            return None;
        }
        let mut bits = self.bitmap[w] & (!0u64 << (c % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            if w == WORDS {
                return None;
            }
            bits = self.bitmap[w];
        }
    }

    /// Finds a hole holding `len > 0` bytes aligned to `align`: the request's own class first
    /// (exact below 128 bytes), then the smallest class above with a fitting hole. Returns
    /// (hole start, hole length, aligned start). Drops the stale entries it meets.
    pub(crate) fn find(&mut self, len: usize, align: usize) -> Option<(usize, usize, usize)> {
        if self.starts.is_empty() {
            return None;
        }
        let own = class(len);
        let mut c = self.next_bin(own)?;
        loop {
            let tries = if c == own && own >= EXACT {
                OWN_CLASS_TRIES
            } else {
                usize::MAX
            };
            if let Some(found) = self.search_bin(c, len, align, tries) {
                return Some(found);
            }
            c = self.next_bin(c + 1)?;
        }
    }

    fn search_bin(
        &mut self,
        c: usize,
        len: usize,
        align: usize,
        mut tries: usize,
    ) -> Option<(usize, usize, usize)> {
        // No fit for a bad alignment; the check also lets the compiler round up below with a
        // mask instead of a division.
        if !align.is_power_of_two() {
            return None;
        }
        let mut i = self.bins[c].len();
        while i > 0 && tries > 0 {
            i -= 1;
            let off = self.bins[c][i];
            match self.starts.get(off) {
                Some(hl) if class(hl) == c => {
                    tries -= 1;
                    let start = off.checked_next_multiple_of(align)?;
                    if start.checked_add(len)? <= off + hl {
                        return Some((off, hl, start));
                    }
                }
                _ => {
                    self.bins[c].swap_remove(i);
                    self.entries -= 1;
                }
            }
        }
        if self.bins[c].is_empty() {
            self.bitmap[c / 64] &= !(1 << (c % 64));
        }
        None
    }

    /// The largest hole's length (0 if none): O(1) while it is known, else a scan of the top
    /// non-empty bin.
    pub(crate) fn largest(&self) -> usize {
        if let Some(m) = self.largest {
            return m;
        }
        let mut w = WORDS;
        while w > 0 {
            w -= 1;
            let mut bits = self.bitmap[w];
            while bits != 0 {
                let c = w * 64 + 63 - bits.leading_zeros() as usize;
                let best = self.bins[c]
                    .iter()
                    .filter_map(|&off| self.starts.get(off))
                    .filter(|&l| class(l) == c)
                    .max();
                if let Some(best) = best {
                    return best;
                }
                bits &= !(1 << (c % 64));
            }
        }
        0
    }

    /// Every hole as (start, length), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.starts.iter()
    }

    /// Removes every hole starting at or after `start`.
    pub(crate) fn remove_from(&mut self, start: usize) {
        if start == 0 {
            self.clear();
            return;
        }
        let doomed: Vec<(usize, usize)> = self.iter().filter(|&(o, _)| o >= start).collect();
        for (off, len) in doomed {
            self.remove(off, len);
        }
    }

    /// Validates the invariants at the top of this file.
    pub(crate) fn check(&self) -> Result<(), ArenaCorruption> {
        if self.starts.len() != self.ends.len() {
            return Err(ArenaCorruption::HoleIndexMismatch { offset: None });
        }
        let mut sum = 0;
        for (off, len) in self.starts.iter() {
            if self.ends.get(off + len) != Some(off) {
                return Err(ArenaCorruption::HoleIndexMismatch { offset: Some(off) });
            }
            if !self.bins[class(len)].contains(&off) {
                return Err(ArenaCorruption::HoleIndexMismatch { offset: Some(off) });
            }
            sum += len;
        }
        if sum != self.bytes {
            return Err(ArenaCorruption::HoleBytesMismatch);
        }
        for (c, bin) in self.bins.iter().enumerate() {
            if bin.is_empty() == (self.bitmap[c / 64] & (1 << (c % 64)) != 0) {
                return Err(ArenaCorruption::HoleIndexMismatch { offset: None });
            }
        }
        if self.entries != self.bins.iter().map(Vec::len).sum::<usize>() {
            return Err(ArenaCorruption::HoleIndexMismatch { offset: None });
        }
        let max = self.starts.iter().map(|(_, len)| len).max().unwrap_or(0);
        if self.largest.is_some_and(|m| m != max) || self.largest() != max {
            return Err(ArenaCorruption::HoleIndexMismatch { offset: None });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_monotonic_and_bounded() {
        let mut prev = 0;
        for len in 1..crate::tests::runs(100_000, 3_000) {
            let c = class(len);
            assert!(c >= prev && c < CLASSES);
            prev = c;
        }
        assert!(class(usize::MAX) < CLASSES);
    }

    #[test]
    fn find_takes_a_fitting_hole_and_skips_stale_entries() {
        let mut b = HoleBins::default();
        b.insert(0, 10);
        b.insert(100, 13);
        b.insert(200, 5000);
        assert_eq!(b.find(12, 1), Some((100, 13, 100)));
        assert_eq!(
            b.find(13, 8),
            Some((200, 5000, 200)),
            "alignment rules 100 out"
        );
        b.remove(100, 13);
        b.insert(100, 20);
        assert_eq!(b.find(12, 1), Some((100, 20, 100)));
        assert_eq!(b.find(6000, 1), None);
        assert_eq!(b.largest(), 5000);
        b.check().unwrap();
        for i in 0..crate::tests::runs(500, 100) {
            b.insert(10_000 + i * 100, 50);
            b.remove(10_000 + i * 100, 50);
        }
        b.check().unwrap();
        assert!(
            b.entries <= 2 * b.count() + 64,
            "stale entries are rebuilt away"
        );
        b.grow_end(0, 10, 40);
        b.grow_start(200, 5000, 150);
        assert_eq!((b.at(0), b.ending_at(40)), (Some(40), Some(0)));
        assert_eq!((b.at(150), b.ending_at(5200)), (Some(5050), Some(150)));
        assert_eq!(b.at(200), None);
        assert_eq!(b.bytes(), 40 + 20 + 5050);
        b.check().unwrap();
        b.remove_from(150);
        assert_eq!(b.count(), 2);
        b.check().unwrap();
    }
}
