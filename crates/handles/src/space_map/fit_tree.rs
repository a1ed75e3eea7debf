//! First-fit search over holes in address order, for the bulk two-finger pass: a max segment
//! tree over the holes' lengths.
//!
//! Invariant: leaf `i` (at `tree[leaves + i]`) holds hole `i`'s length, 0 for a filled hole or
//! a padding leaf, and each inner node holds the larger of its two children. A descent that
//! prefers the left child therefore finds the lowest-addressed hole of at least a given length
//! in O(log n), and shrinking a hole is an O(log n) update.

pub(crate) struct FitTree {
    leaves: usize,
    tree: Vec<usize>,
}

impl FitTree {
    /// A tree over these hole lengths, lowest address first.
    pub(crate) fn new(lens: &[usize]) -> FitTree {
        let leaves = lens.len().next_power_of_two();
        let mut tree = vec![0; 2 * leaves];
        tree[leaves..leaves + lens.len()].copy_from_slice(lens);
        for n in (1..leaves).rev() {
            tree[n] = tree[2 * n].max(tree[2 * n + 1]);
        }
        FitTree { leaves, tree }
    }

    /// Sets hole `i`'s length.
    pub(crate) fn set(&mut self, i: usize, len: usize) {
        let mut n = self.leaves + i;
        self.tree[n] = len;
        while n > 1 {
            n /= 2;
            self.tree[n] = self.tree[2 * n].max(self.tree[2 * n + 1]);
        }
    }

    /// The lowest index in `from..end` whose length is at least `need`.
    pub(crate) fn first_fit(&self, from: usize, end: usize, need: usize) -> Option<usize> {
        self.descend(1, 0, self.leaves, from, end, need)
    }

    /// Searches node `n`, which covers leaves `lo..hi`.
    fn descend(
        &self,
        n: usize,
        lo: usize,
        hi: usize,
        from: usize,
        end: usize,
        need: usize,
    ) -> Option<usize> {
        if hi <= from || lo >= end || self.tree[n] < need {
            return None;
        }
        if hi - lo == 1 {
            return Some(lo);
        }
        let mid = (lo + hi) / 2;
        self.descend(2 * n, lo, mid, from, end, need)
            .or_else(|| self.descend(2 * n + 1, mid, hi, from, end, need))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a linear scan, through random shrinks and queries.
    #[test]
    fn first_fit_agrees_with_a_linear_scan() {
        let mut rng = freespace_testkit::Rng::new(0x853c_49e6_748f_ea9b);
        let mut next = move |n: usize| rng.below(n as u64) as usize;
        for size in [1usize, 2, 3, 7, 64, 100] {
            let mut lens: Vec<usize> = (0..size).map(|_| next(1000)).collect();
            let mut fit = FitTree::new(&lens);
            for _ in 0..crate::tests::runs(2000, 40) {
                let i = next(size);
                lens[i] = next(lens[i] + 1);
                fit.set(i, lens[i]);
                let (from, end, need) = (next(size + 1), next(size + 1), next(1000) + 1);
                let want = (from..end).find(|&j| lens[j] >= need);
                assert_eq!(fit.first_fit(from, end, need), want, "{lens:?}");
            }
        }
    }

    #[test]
    fn no_holes_finds_nothing() {
        let fit = FitTree::new(&[]);
        assert_eq!(fit.first_fit(0, 0, 1), None);
        let fit = FitTree::new(&[5, 0, 9]);
        assert_eq!(fit.first_fit(0, 3, 6), Some(2));
        assert_eq!(fit.first_fit(0, 2, 6), None);
        assert_eq!(fit.first_fit(0, 3, 10), None);
    }
}
