//! The buddy allocator as a replay subject: freespace-malloc's `BuddyHeap` over one region
//! the replay owns.
//!
//! Invariant: the heap tiles the whole region from its first byte (the region is page-aligned,
//! so `BuddyHeap::new` has nothing to round off at the start), so block offsets from the region
//! and from the heap's base agree.

use freespace_malloc::BuddyHeap;

use super::address_subject::AddressSubject;
use super::{Family, TraceProfile};

/// `BuddyHeap` driven by a trace.
pub type BuddySubject = AddressSubject<BuddyHeap>;

impl BuddySubject {
    /// A buddy heap with room for the trace (see [`Region::for_profile`](super::Region::for_profile)).
    pub fn new(profile: &TraceProfile) -> Self {
        AddressSubject::in_region("buddy".to_string(), Family::Buddy, profile, |r| {
            // SAFETY: the region is ours, zeroed (initialised), and the subject keeps it until
            // after the heap has dropped, handing it to nothing else.
            unsafe { BuddyHeap::new(r.ptr, r.size()) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Subject;

    #[test]
    fn buddy_subject_tracks_the_highest_live_block() {
        let profile = TraceProfile {
            room: super::super::DEFAULT_ROOM,
            peak_live: 4096,
            largest: 1000,
            max_align: 8,
        };
        let mut s = BuddySubject::new(&profile);
        s.alloc(1, 100, 8).unwrap();
        let one = s.footprint();
        assert_eq!(one, 128, "100 bytes and a 16-byte header round up to 128");
        s.alloc(2, 1000, 8).unwrap();
        assert!(s.footprint() > one);
        s.free(2).unwrap();
        assert_eq!(s.footprint(), one);
        s.realloc(1, 300).unwrap();
        assert!(s.footprint() >= 300);
        let map = s.heap_map();
        assert!(map.iter().any(|b| b.used));
        assert!(map
            .windows(2)
            .all(|w| w[0].offset + w[0].len == w[1].offset));
    }
}
