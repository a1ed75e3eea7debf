//! `OffsetMap`: a small open-addressing hash map from buffer offsets to offsets or lengths, for
//! the flat hole index.
//!
//! Linear probing over a power-of-two table, Fibonacci hashing (the high bits of `key * φ`,
//! which spreads offsets that are multiples of 16 as well as any), and backward-shift deletion,
//! so removals leave no tombstones and a churning key set never degrades the probes.
//! Invariants: `usize::MAX` marks an empty bucket and is never a key; the table is at most half
//! full; every key sits in the run of occupied buckets that starts at its home bucket.

const EMPTY: usize = usize::MAX;
const FIB: u64 = 0x9e37_79b9_7f4a_7c15;
const MIN_BUCKETS: usize = 16;

pub(crate) struct OffsetMap {
    keys: Vec<usize>,
    vals: Vec<usize>,
    len: usize,
    /// 64 minus log2 of the bucket count.
    shift: u32,
}

impl Default for OffsetMap {
    fn default() -> Self {
        OffsetMap {
            keys: vec![EMPTY; MIN_BUCKETS],
            vals: vec![0; MIN_BUCKETS],
            len: 0,
            shift: 64 - MIN_BUCKETS.trailing_zeros(),
        }
    }
}

impl OffsetMap {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn mask(&self) -> usize {
        self.keys.len() - 1
    }

    #[inline]
    fn home(&self, key: usize) -> usize {
        ((key as u64).wrapping_mul(FIB) >> self.shift) as usize
    }

    /// The bucket holding `key`, or the empty bucket that ends its probe run.
    #[inline]
    fn find(&self, key: usize) -> (usize, bool) {
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let k = self.keys[i];
            if k == key {
                return (i, true);
            }
            if k == EMPTY {
                return (i, false);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: usize) -> Option<usize> {
        let (i, found) = self.find(key);
        found.then(|| self.vals[i])
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut usize> {
        let (i, found) = self.find(key);
        found.then(|| &mut self.vals[i])
    }

    /// Inserts or overwrites.
    #[inline]
    pub(crate) fn insert(&mut self, key: usize, val: usize) {
        debug_assert_ne!(key, EMPTY);
        let (i, found) = self.find(key);
        if found {
            self.vals[i] = val;
            return;
        }
        if 2 * (self.len + 1) > self.keys.len() {
            self.grow();
            self.insert(key, val);
            return;
        }
        self.keys[i] = key;
        self.vals[i] = val;
        self.len += 1;
    }

    fn grow(&mut self) {
        let buckets = self.keys.len() * 2;
        let keys = std::mem::replace(&mut self.keys, vec![EMPTY; buckets]);
        let vals = std::mem::replace(&mut self.vals, vec![0; buckets]);
        self.shift -= 1;
        self.len = 0;
        for (k, v) in keys.into_iter().zip(vals) {
            if k != EMPTY {
                self.insert(k, v);
            }
        }
    }

    /// Removes `key`, shifting later members of its probe run back so no tombstone remains.
    #[inline]
    pub(crate) fn remove(&mut self, key: usize) -> Option<usize> {
        let (mut hole, found) = self.find(key);
        if !found {
            return None;
        }
        let val = self.vals[hole];
        let mask = self.mask();
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let k = self.keys[i];
            if k == EMPTY {
                break;
            }
            // k may move back into the hole only if its home is not in (hole, i], cyclically.
            let home = self.home(k);
            let stays = if hole <= i {
                hole < home && home <= i
            } else {
                hole < home || home <= i
            };
            if !stays {
                self.keys[hole] = k;
                self.vals[hole] = self.vals[i];
                hole = i;
            }
        }
        self.keys[hole] = EMPTY;
        self.len -= 1;
        Some(val)
    }

    /// Removes everything, keeping the table's size.
    pub(crate) fn clear(&mut self) {
        if self.len > 0 {
            self.keys.fill(EMPTY);
            self.len = 0;
        }
    }

    /// Every (key, value), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.keys
            .iter()
            .zip(&self.vals)
            .filter(|(&k, _)| k != EMPTY)
            .map(|(&k, &v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn agrees_with_a_std_map_through_churn() {
        let mut m = OffsetMap::default();
        let mut model = HashMap::new();
        let mut rng = freespace_testkit::Rng::new(0x853c_49e6_748f_ea9b);
        let keys = crate::tests::runs(300, 40) as u64;
        for step in 0..crate::tests::runs(20_000, 100) {
            let seed = rng.next();
            // Few distinct keys, multiples of 16, so runs collide and wrap.
            let key = (seed % keys) as usize * 16;
            match seed % 5 {
                0 | 1 => {
                    m.insert(key, step);
                    model.insert(key, step);
                }
                2 | 3 => assert_eq!(m.remove(key), model.remove(&key), "step {step}"),
                _ => {
                    if let Some(v) = m.get_mut(key) {
                        *v += 1;
                    }
                    if let Some(v) = model.get_mut(&key) {
                        *v += 1;
                    }
                }
            }
            assert_eq!(m.get(key), model.get(&key).copied(), "step {step}");
            assert_eq!(m.len(), model.len());
        }
        let mut all: Vec<_> = m.iter().collect();
        all.sort_unstable();
        let mut want: Vec<_> = model.into_iter().collect();
        want.sort_unstable();
        assert_eq!(all, want);
        m.clear();
        assert!(m.is_empty() && m.iter().next().is_none());
    }
}
