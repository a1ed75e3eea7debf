//! The one seeded random generator of the workspace's tests, benches and examples (a
//! dev-dependency only; nothing published depends on it).
//!
//! [`Rng`] is splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014): the state is a counter, so every seed, zero included, starts a
//! full-period sequence, and its output mixer makes every bit of a draw depend on every bit of
//! the state, so `next() % n` is usable for small `n`. A test that prints its seed can be
//! replayed exactly.
//!
//! ```
//! use freespace_testkit::Rng;
//! let mut a = Rng::new(7);
//! let mut b = Rng::new(7);
//! assert_eq!(a.next(), b.next());
//! assert!(a.below(10) < 10);
//! ```
#![no_std]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

/// splitmix64. The field is the whole state: `Rng(seed)` and `Rng::new(seed)` are the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator started from `seed` (any value).
    pub const fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // an endless stream of `u64`, not an `Option`
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`next() % n`; the bias is below `n / 2^64`). Panics if `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index in `0..len` (as [`Rng::below`]). Panics if `len` is 0.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A number in `lo..hi` (as [`Rng::below`]). Panics unless `lo < hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.index(hi - lo)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// The first outputs of splitmix64 from seed 0, as published with the reference C code
    /// (`splitmix64.c`, Vigna): a changed constant or shift fails here.
    #[test]
    fn matches_the_reference_sequence() {
        let mut r = Rng::new(0);
        assert_eq!(r.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut r = Rng::new(42);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let i = r.index(7);
            seen[i] = true;
            let x = r.range(10, 13);
            assert!((10..13).contains(&x));
            assert!(r.below(5) < 5);
        }
        assert!(
            seen.iter().all(|&s| s),
            "every index of 0..7 comes up in 1000 draws"
        );
        assert!(!(0..100).any(|_| r.chance(0)));
        assert!((0..100).all(|_| r.chance(100)));
    }
}
