//! Arena ids: the process-wide pool that gives each arena a number its handles carry, so that
//! an arena refuses the handles of every other.
//!
//! An arena takes an id when it is made and gives it back when it is dropped. A handle's index
//! field holds the slot's index XOR the arena's *salt*: its id with the bits reversed, so the
//! id fills the top [`ID_BITS`] bits of the index and the slot's index the rest. Resolving
//! takes the same XOR, so the arena's own handles find their slots, while a handle from an
//! arena with another id comes out at a slot index of at least `2^(32 - ID_BITS)`, past the end
//! of any table that has at most that many slots, and is refused by the bounds check `get`
//! makes anyway.
//!
//! Invariants: `users[id]` counts the live [`ArenaId`]s holding `id`; ids are handed out
//! round-robin from `next`, skipping ids in use, so an id that was given back returns as late
//! as possible; only when all `2^ID_BITS` ids are in use do two live arenas share one.

use std::sync::Mutex;

/// Bits of an arena id: up to `2^ID_BITS` (4096) arenas alive at once get distinct ids.
pub(crate) const ID_BITS: u32 = 12;

const IDS: usize = 1 << ID_BITS;

struct Pool {
    users: [u32; IDS],
    next: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    users: [0; IDS],
    next: 0,
});

/// One arena's id, held from the arena's creation to its drop.
pub(crate) struct ArenaId {
    id: u32,
}

impl ArenaId {
    /// Takes the next free id, round-robin; if every id is in use, shares the next one.
    pub(crate) fn acquire() -> ArenaId {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let start = pool.next;
        let id = (0..IDS)
            .map(|k| (start + k) % IDS)
            .find(|&id| pool.users[id] == 0)
            .unwrap_or(start);
        pool.users[id] += 1;
        pool.next = (id + 1) % IDS;
        ArenaId { id: id as u32 }
    }

    /// What the arena XORs into the slot index of every handle it makes: the id, bit-reversed
    /// into the top [`ID_BITS`] bits. Reversing spreads the ids handed out first (0, 1, 2, ...)
    /// over the highest bits, so two such arenas differ in a high bit and refuse each other's
    /// handles even with tables far larger than 2^20 slots.
    pub(crate) fn salt(&self) -> u32 {
        self.id.reverse_bits()
    }
}

impl Drop for ArenaId {
    fn drop(&mut self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.users[self.id as usize] -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables of at most this many slots refuse every handle made by an arena with another id.
    const EXACT_SLOTS: usize = 1 << (32 - ID_BITS);

    #[test]
    fn live_ids_are_distinct_and_salts_use_only_the_top_bits() {
        let ids: Vec<ArenaId> = (0..100).map(|_| ArenaId::acquire()).collect();
        let mut salts: Vec<u32> = ids.iter().map(ArenaId::salt).collect();
        for &s in &salts {
            assert_eq!(s & (EXACT_SLOTS as u32 - 1), 0, "salt {s:#x}");
        }
        salts.sort_unstable();
        salts.dedup();
        assert_eq!(salts.len(), ids.len());
    }

    #[test]
    fn a_foreign_salt_sends_every_small_index_past_a_small_table() {
        let (a, b) = (ArenaId::acquire(), ArenaId::acquire());
        let d = a.salt() ^ b.salt();
        for slot in [0, 1, 77, EXACT_SLOTS as u32 - 1] {
            assert!((slot ^ d) as usize >= EXACT_SLOTS);
        }
    }

    #[test]
    fn a_returned_id_comes_back_last() {
        let first = ArenaId::acquire();
        let id = first.id;
        drop(first);
        // Other tests take ids meanwhile, which only moves the cursor further on.
        let next: Vec<ArenaId> = (0..crate::tests::runs(IDS / 2, 64))
            .map(|_| ArenaId::acquire())
            .collect();
        assert!(next.iter().all(|x| x.id != id));
    }
}
