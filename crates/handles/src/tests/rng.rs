//! The seeded xorshift generator the in-crate randomized tests share. It is deterministic, so
//! a failing run replays from its seed.

/// Marsaglia's xorshift64. Invariant: the state is never zero.
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A generator started from `seed`, which must not be zero.
    pub(crate) fn new(seed: u64) -> XorShift {
        assert_ne!(seed, 0, "xorshift needs a non-zero seed");
        XorShift(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
