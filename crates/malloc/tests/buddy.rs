//! BuddyHeap from the outside: the chapter's 64 KB example, a randomized run against a model,
//! realloc in place, and every bad free leaving the heap byte-for-byte unchanged.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace_malloc::{AllocError, BuddyHeap, FreeError};

/// A heap together with the buffer it lives in, so the buffer outlives it.
struct Region {
    buf: Vec<u8>,
    heap: BuddyHeap,
}

impl Region {
    /// A heap over `len` bytes starting `skip` bytes into a 4096-aligned buffer.
    fn new(len: usize, skip: usize) -> Self {
        let mut buf = vec![0u8; len + skip + 4096];
        let aligned = buf.as_ptr().align_offset(4096);
        let start = NonNull::new(buf[aligned + skip..].as_mut_ptr()).unwrap();
        // SAFETY: `buf` is moved into the returned value with the heap and never touched
        // otherwise while the heap lives; moving a Vec does not move its heap buffer.
        let heap = unsafe { BuddyHeap::new(start, len) };
        Region { buf, heap }
    }

    /// A copy of every byte of the buffer, to prove that a refused call changed nothing.
    fn snapshot(&self) -> Vec<u8> {
        // SAFETY: reading the whole buffer through its raw pointer; no payload is borrowed.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr(), self.buf.len()).to_vec() }
    }
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn chapter_example_7k_request_in_64k_space_gets_an_8k_block() {
    let mut r = Region::new(64 * 1024, 0);
    let heap = &mut r.heap;
    let p = heap.malloc(layout(7 * 1024, 8)).unwrap();
    let blocks: Vec<_> = heap.blocks().map(|b| (b.size, !b.is_used())).collect();
    // 64 KB split into 32 + 16 + 8 + 8; the first 8 KB block serves the request.
    assert_eq!(
        blocks,
        [
            (8 * 1024, false),
            (8 * 1024, true),
            (16 * 1024, true),
            (32 * 1024, true)
        ]
    );
    let s = heap.stats();
    assert_eq!(s.allocated_bytes, 8 * 1024 - 16);
    assert_eq!(s.requested_bytes, 7 * 1024);
    assert_eq!(s.header_bytes, 16);
    // Internal fragmentation from rounding up to a power of two is visible.
    let expect = (8.0 * 1024.0 - 16.0 - 7.0 * 1024.0) / (8.0 * 1024.0 - 16.0);
    assert!((s.internal_fragmentation() - expect).abs() < 1e-12);
    assert_eq!(s.largest_free_block, 32 * 1024);
    // SAFETY: `p` is live.
    assert_eq!(unsafe { heap.usable_size(p) }.unwrap(), 8 * 1024 - 16);
    heap.check().unwrap();
    // Freeing merges 8+8 -> 16, 16+16 -> 32, 32+32 -> 64.
    // SAFETY: `p` is live.
    unsafe { heap.free(p).unwrap() };
    let blocks: Vec<_> = heap.blocks().map(|b| (b.size, !b.is_used())).collect();
    assert_eq!(blocks, [(64 * 1024, true)]);
    heap.check().unwrap();
}

#[test]
fn buddies_merge_only_when_both_are_free() {
    let mut r = Region::new(64 * 1024, 0);
    let heap = &mut r.heap;
    let l = layout(8 * 1024 - 16, 16);
    let a = heap.malloc(l).unwrap();
    let b = heap.malloc(l).unwrap();
    assert_eq!(
        b.as_ptr() as usize - a.as_ptr() as usize,
        8 * 1024,
        "b is a's buddy"
    );
    // SAFETY: `a` is live.
    unsafe { heap.free(a).unwrap() };
    // a's buddy b is in use: no merge, so an 8 KB block and the untouched 16 + 32 remain.
    assert_eq!(heap.stats().free_blocks, 3);
    assert_eq!(heap.stats().largest_free_block, 32 * 1024);
    // SAFETY: `b` is live.
    unsafe { heap.free(b).unwrap() };
    assert_eq!(heap.stats().free_blocks, 1);
    heap.check().unwrap();
}

#[test]
fn alignment_is_honoured_without_leaking_the_padding() {
    let mut r = Region::new(256 * 1024, 48);
    let heap = &mut r.heap;
    for align in [1, 2, 8, 16, 32, 64, 128, 4096, 65536] {
        let p = heap.malloc(layout(100, align)).unwrap();
        assert_eq!(p.as_ptr() as usize % align.max(16), 0, "align {align}");
        // SAFETY: `p` is live.
        assert!(unsafe { heap.usable_size(p) }.unwrap() >= 100);
        heap.check().unwrap();
        // SAFETY: `p` is live.
        unsafe { heap.free(p).unwrap() };
        heap.check().unwrap();
        assert_eq!(heap.stats().allocated_bytes, 0);
    }
    assert_eq!(
        heap.malloc(layout(1, 1 << 20)),
        Err(AllocError::BadAlignment)
    );
    assert_eq!(heap.malloc(layout(0, 1)), Err(AllocError::ZeroSize));
    assert_eq!(heap.malloc(layout(1 << 20, 1)), Err(AllocError::TooLarge));
    assert_eq!(
        heap.malloc(layout(isize::MAX as usize - 64, 1)),
        Err(AllocError::TooLarge)
    );
    assert_eq!(heap.calloc(usize::MAX / 2, 4), Err(AllocError::TooLarge));
    heap.check().unwrap();
}

#[test]
fn out_of_memory_only_when_no_block_is_large_enough() {
    let mut r = Region::new(4096, 0);
    let heap = &mut r.heap;
    let a = heap.malloc(layout(2000, 16)).unwrap(); // 2048 block
    let b = heap.malloc(layout(1000, 16)).unwrap(); // 1024 block
    assert_eq!(heap.malloc(layout(1100, 16)), Err(AllocError::OutOfMemory));
    let c = heap.malloc(layout(1000, 16)).unwrap();
    assert_eq!(heap.malloc(layout(1, 1)), Err(AllocError::OutOfMemory));
    assert_eq!(heap.stats().free_bytes, 0);
    for p in [a, b, c] {
        // SAFETY: each is live and freed once.
        unsafe { heap.free(p).unwrap() };
    }
    assert_eq!(heap.stats().largest_free_block, 4096);
    heap.check().unwrap();
}

#[test]
fn calloc_zeroes() {
    let mut r = Region::new(8192, 0);
    let heap = &mut r.heap;
    let p = heap.malloc(layout(1000, 16)).unwrap();
    // SAFETY: `p` has 1000 writable bytes.
    unsafe { p.as_ptr().write_bytes(0xAB, 1000) };
    // SAFETY: `p` is live.
    unsafe { heap.free(p).unwrap() };
    let q = heap.calloc(250, 4).unwrap();
    assert_eq!(q, p, "the same block comes back");
    // SAFETY: `q` has 1000 readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr(), 1000) };
    assert!(bytes.iter().all(|&b| b == 0));
}

#[test]
fn realloc_shrinks_and_grows_in_place_and_moves_when_it_must() {
    let mut r = Region::new(64 * 1024, 0);
    let heap = &mut r.heap;
    let p = heap.malloc(layout(100, 16)).unwrap(); // a 128-byte block at offset 0
                                                   // SAFETY: `p` has 100 writable bytes.
    unsafe { fill(p, 100, 7) };
    // Its upper buddies (128, 256, 512, ...) are all free: growth stays in place.
    // SAFETY: `p` is live.
    let q = unsafe { heap.realloc(p, layout(3000, 16)).unwrap() };
    assert_eq!(q, p);
    // SAFETY: `q` is live.
    assert_eq!(unsafe { heap.usable_size(q) }.unwrap(), 4096 - 16);
    // SAFETY: `q` holds the 100 bytes written above.
    unsafe { assert_pattern(q, 100, 7) };
    heap.check().unwrap();
    // Shrinking splits the upper halves off again.
    // SAFETY: `q` is live.
    let q = unsafe { heap.realloc(q, layout(40, 16)).unwrap() };
    assert_eq!(q, p);
    // SAFETY: `q` is live.
    assert_eq!(unsafe { heap.usable_size(q) }.unwrap(), 64 - 16);
    // SAFETY: the first 40 bytes are preserved.
    unsafe { assert_pattern(q, 40, 7) };
    assert_eq!(heap.stats().requested_bytes, 40);
    heap.check().unwrap();
    // Block the buddy: growth must move, and the bytes come along.
    let blocker = heap.malloc(layout(40, 16)).unwrap();
    assert_eq!(blocker.as_ptr() as usize - q.as_ptr() as usize, 64);
    // SAFETY: `q` is live.
    let moved = unsafe { heap.realloc(q, layout(200, 16)).unwrap() };
    assert_ne!(moved, q);
    // SAFETY: the 40 bytes were copied.
    unsafe { assert_pattern(moved, 40, 7) };
    assert_eq!(
        heap.free_list_len(6),
        1,
        "the old 64-byte block is free again"
    );
    // A realloc that cannot be served leaves the block live and intact.
    // SAFETY: `moved` is live.
    assert_eq!(
        unsafe { heap.realloc(moved, layout(1 << 20, 16)) },
        Err(AllocError::TooLarge)
    );
    // SAFETY: still live, bytes unchanged.
    unsafe { assert_pattern(moved, 40, 7) };
    // Raising the alignment beyond what the payload has forces a move.
    // SAFETY: `moved` is live.
    let aligned = unsafe { heap.realloc(moved, layout(40, 4096)).unwrap() };
    assert_eq!(aligned.as_ptr() as usize % 4096, 0);
    // SAFETY: the bytes were copied.
    unsafe { assert_pattern(aligned, 40, 7) };
    heap.check().unwrap();
}

/// Writes a pattern derived from `seed` over `len` bytes at `p`.
///
/// # Safety
/// `p..p + len` must be writable.
unsafe fn fill(p: NonNull<u8>, len: usize, seed: u64) {
    // SAFETY: caller's contract.
    unsafe { fill_period(p, len, &period(seed)) }
}

/// As [`fill`], with the period of the pattern worked out already.
///
/// # Safety
/// `p..p + len` must be writable.
unsafe fn fill_period(p: NonNull<u8>, len: usize, period: &[u8; PERIOD]) {
    for at in (0..len).step_by(PERIOD) {
        let n = PERIOD.min(len - at);
        // SAFETY: caller's contract; a whole period at a time (one copy under Miri).
        unsafe { core::ptr::copy_nonoverlapping(period.as_ptr(), p.as_ptr().add(at), n) };
    }
}

/// Panics unless `p..p + len` holds the pattern of `seed`.
///
/// # Safety
/// `p..p + len` must be readable.
unsafe fn assert_pattern(p: NonNull<u8>, len: usize, seed: u64) {
    // SAFETY: caller's contract.
    unsafe { assert_period(p, len, seed, &period(seed)) }
}

/// As [`assert_pattern`], with the period of `seed` worked out already.
///
/// # Safety
/// `p..p + len` must be readable.
unsafe fn assert_period(p: NonNull<u8>, len: usize, seed: u64, period: &[u8; PERIOD]) {
    // SAFETY: caller's contract.
    let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), len) };
    for (k, chunk) in bytes.chunks(PERIOD).enumerate() {
        if chunk != &period[..chunk.len()] {
            let i = chunk.iter().zip(period).position(|(a, b)| a != b).unwrap();
            let i = k * PERIOD + i;
            panic!(
                "byte {i} of block {p:p} (seed {seed}): {:#x} != {:#x}",
                bytes[i],
                pattern(seed, i)
            );
        }
    }
}

fn pattern(seed: u64, i: usize) -> u8 {
    (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) >> 1) as u8 ^ (seed as u8)
}

/// The pattern repeats every `PERIOD` bytes (`i * 7 >> 1` wraps a byte every 512).
const PERIOD: usize = 512;

/// One period of the pattern of `seed`.
fn period(seed: u64) -> [u8; PERIOD] {
    core::array::from_fn(|i| pattern(seed, i))
}

// The shared seeded generator, so a failing seed can be replayed.
use freespace_testkit::Rng;

struct Live {
    ptr: NonNull<u8>,
    layout: Layout,
    seed: u64,
    /// One period of the seed's pattern, worked out once.
    period: [u8; PERIOD],
}

impl Live {
    /// Panics unless the block still holds its pattern over its first `len` bytes.
    fn assert_intact(&self, len: usize) {
        // SAFETY: a live block holds its pattern over its requested size, and `len` is no more.
        unsafe { assert_period(self.ptr, len, self.seed, &self.period) };
    }
}

/// The order of block a layout needs: `size + max(16, align)` rounded up to a power of two, at least 32.
fn block_size(l: Layout) -> usize {
    (l.size() + l.align().max(16)).next_power_of_two().max(32)
}

fn random_layout(rng: &mut Rng) -> Layout {
    let size = match rng.below(10) {
        0..=5 => 1 + rng.below(64),
        6..=8 => 1 + rng.below(2000),
        // At most a quarter of the smallest region (which is smaller under Miri).
        _ => 1 + rng.below(if cfg!(miri) { 4_000 } else { 20_000 }),
    } as usize;
    let align = [1, 8, 16, 16, 16, 32, 64, 256, 4096][rng.below(9) as usize];
    layout(size, align)
}

/// Checks the heap against the model: `check()`, stats that add up, blocks that do not overlap,
/// alignment, and every live block's pattern.
fn verify(r: &Region, live: &[Live], seed: u64, step: usize) {
    let heap = &r.heap;
    let ctx = format!("seed {seed} step {step}");
    heap.check().unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let s = heap.stats();
    assert_eq!(s.live_blocks, live.len(), "{ctx}");
    assert_eq!(
        s.requested_bytes,
        live.iter().map(|l| l.layout.size()).sum::<usize>(),
        "{ctx}"
    );
    assert_eq!(
        s.heap_bytes,
        s.allocated_bytes + s.free_bytes + s.header_bytes + s.overhead_bytes,
        "{ctx}"
    );
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|l| {
            let p = l.ptr.as_ptr() as usize;
            assert_eq!(p % l.layout.align(), 0, "{ctx}: alignment");
            // SAFETY: `l.ptr` is live.
            let usable = unsafe { heap.usable_size(l.ptr) }.unwrap();
            assert!(usable >= l.layout.size(), "{ctx}: usable size");
            (p, p + usable)
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "{ctx}: blocks {w:x?} overlap");
    }
    let used: Vec<_> = heap.blocks().filter(|b| b.is_used()).collect();
    assert_eq!(used.len(), live.len(), "{ctx}");
    assert_eq!(
        heap.blocks().map(|b| b.size).sum::<usize>(),
        heap.managed_len(),
        "{ctx}"
    );
    // Every block's pattern is checked when it is freed or resized; all of them, every 16 steps
    // and at the last one, so that a write into a neighbour is caught soon after it happens.
    if step % 16 == 15 {
        assert_patterns(live);
    }
}

/// Panics unless every live block still holds its pattern.
fn assert_patterns(live: &[Live]) {
    for l in live {
        l.assert_intact(l.layout.size());
    }
}

fn random_run(seed: u64, len: usize, skip: usize, steps: usize) {
    let mut rng = Rng(seed);
    let mut r = Region::new(len, skip);
    let initial_blocks: Vec<_> = r.heap.blocks().collect();
    let mut live: Vec<Live> = Vec::new();
    // Pointers freed earlier, for bad frees.
    let mut dead: Vec<NonNull<u8>> = Vec::new();
    for step in 0..steps {
        let op = rng.below(10);
        if op < 5 || live.is_empty() {
            let l = random_layout(&mut rng);
            match r.heap.malloc(l) {
                Ok(ptr) => {
                    let s = rng.next();
                    let period = period(s);
                    // SAFETY: a fresh block with `l.size()` writable bytes.
                    unsafe { fill_period(ptr, l.size(), &period) };
                    live.push(Live {
                        ptr,
                        layout: l,
                        seed: s,
                        period,
                    });
                }
                Err(AllocError::OutOfMemory) => {
                    assert!(
                        r.heap.stats().largest_free_block < block_size(l),
                        "seed {seed} step {step}: OOM although a large enough block is free"
                    );
                }
                Err(e) => panic!("seed {seed} step {step}: {e}"),
            }
        } else if op < 8 {
            let i = rng.below(live.len() as u64) as usize;
            let l = live.swap_remove(i);
            l.assert_intact(l.layout.size());
            // SAFETY: `l.ptr` is live and leaves the model here.
            unsafe { r.heap.free(l.ptr) }
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            dead.push(l.ptr);
            // Free again a pointer freed earlier (this one or an older one) that is not live
            // now: refused, whatever merged or was handed out since.
            let stale = dead[rng.below(dead.len() as u64) as usize];
            if live.iter().all(|l| l.ptr != stale) {
                let stats = r.heap.stats();
                // SAFETY: `stale` is no live payload; the heap only reads the header before it.
                let got = unsafe { r.heap.free(stale) };
                assert!(
                    got.is_err(),
                    "seed {seed} step {step}: {stale:p} freed twice"
                );
                assert_eq!(r.heap.stats(), stats, "seed {seed} step {step}");
            }
            if dead.len() > 64 {
                dead.swap_remove(rng.below(dead.len() as u64) as usize);
            }
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let nl = random_layout(&mut rng);
            // SAFETY: `live[i].ptr` is live.
            match unsafe { r.heap.realloc(live[i].ptr, nl) } {
                Ok(ptr) => {
                    let keep = live[i].layout.size().min(nl.size());
                    // SAFETY: realloc preserved the first `keep` bytes.
                    unsafe { assert_period(ptr, keep, live[i].seed, &live[i].period) };
                    let s = rng.next();
                    let period = period(s);
                    // SAFETY: `ptr` has `nl.size()` writable bytes.
                    unsafe { fill_period(ptr, nl.size(), &period) };
                    live[i] = Live {
                        ptr,
                        layout: nl,
                        seed: s,
                        period,
                    };
                }
                Err(AllocError::OutOfMemory) => {
                    assert!(
                        r.heap.stats().largest_free_block < block_size(nl),
                        "seed {seed} step {step}: realloc OOM"
                    );
                }
                Err(e) => panic!("seed {seed} step {step}: {e}"),
            }
        }
        verify(&r, &live, seed, step);
    }
    assert_patterns(&live);
    for l in live.drain(..) {
        // SAFETY: every remaining block is live.
        unsafe { r.heap.free(l.ptr).unwrap() };
    }
    r.heap.check().unwrap();
    let s = r.heap.stats();
    assert_eq!(
        (
            s.allocated_bytes,
            s.requested_bytes,
            s.header_bytes,
            s.live_blocks
        ),
        (0, 0, 0, 0)
    );
    let final_blocks: Vec<_> = r.heap.blocks().collect();
    assert_eq!(
        final_blocks, initial_blocks,
        "seed {seed}: everything merges back into the roots"
    );
}

#[test]
fn randomized_against_a_model() {
    let base = std::env::var("FREESPACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED);
    assert!(
        (0..PERIOD).all(|i| pattern(base, i) == pattern(base, i + PERIOD)),
        "the fill pattern repeats every PERIOD bytes"
    );
    // Under Miri, which interprets every step, each region shape once, a quarter of the size,
    // for a shorter run.
    let (runs, steps, scale) = if cfg!(miri) {
        (3, 20, 4)
    } else {
        (12, 1500, 1)
    };
    for i in 0..runs {
        let seed = base + i;
        // Power-of-two, odd-sized and unaligned regions.
        let (len, skip) = [(64 * 1024, 0), (100 * 1024 + 7, 3), (256 * 1024, 16)][(i % 3) as usize];
        random_run(seed, len / scale, skip, steps);
    }
}

/// Runs `f` on a heap with a few live blocks and asserts it is refused with `want` and that
/// neither the region's bytes nor the stats changed; then the heap still checks and serves.
fn refused(r: &mut Region, ptr: NonNull<u8>, want: FreeError) {
    let before = r.snapshot();
    let stats = r.heap.stats();
    // SAFETY: `free` is called with a pointer it must refuse; nothing is freed.
    assert_eq!(unsafe { r.heap.free(ptr) }, Err(want), "{ptr:p}");
    // SAFETY: nothing changes the region while the header in front of `ptr` is read.
    assert_eq!(unsafe { r.heap.usable_size(ptr) }, Err(want), "{ptr:p}");
    assert!(
        r.snapshot() == before,
        "a refused free changed the heap's bytes"
    );
    assert_eq!(r.heap.stats(), stats);
    r.heap.check().unwrap();
}

#[test]
fn every_bad_free_is_refused_and_changes_nothing() {
    let mut r = Region::new(64 * 1024, 0);
    let a = r.heap.malloc(layout(3000, 16)).unwrap();
    let b = r.heap.malloc(layout(100, 256)).unwrap();
    let c = r.heap.malloc(layout(40, 16)).unwrap();
    let d = r.heap.malloc(layout(40, 16)).unwrap();
    // SAFETY: `a` and `b` have that many writable bytes.
    unsafe {
        a.as_ptr().write_bytes(0, 3000);
        b.as_ptr().write_bytes(0x55, 100);
    }
    let base = r.heap.base();
    let end = base + r.heap.managed_len();
    // Any address, as a pointer derived from `a` (the heap only compares it, or reads through
    // its own pointer to the region).
    let at = |x: usize| {
        NonNull::new(a.as_ptr().wrapping_add(x.wrapping_sub(a.as_ptr() as usize))).unwrap()
    };

    // NotInHeap: a stack address, just past the end, just before the base.
    let mut local = 0u64;
    refused(
        &mut r,
        NonNull::from(&mut local).cast(),
        FreeError::NotInHeap,
    );
    refused(&mut r, at(end), FreeError::NotInHeap);
    refused(&mut r, at(base - 16), FreeError::NotInHeap);

    // Misaligned: inside a payload but off the 16-byte grid; the region's first byte (no room
    // for a header); and the start of an over-aligned block, whose payload lies further in.
    refused(&mut r, at(a.as_ptr() as usize + 1), FreeError::Misaligned);
    refused(&mut r, at(a.as_ptr() as usize + 8), FreeError::Misaligned);
    refused(&mut r, at(base), FreeError::Misaligned);
    let b_block = r
        .heap
        .blocks()
        .find(|blk| blk.addr < b.as_ptr() as usize && b.as_ptr() as usize <= blk.addr + 256)
        .unwrap();
    assert_ne!(b_block.addr + 16, b.as_ptr() as usize);
    refused(&mut r, at(b_block.addr + 16), FreeError::Misaligned);

    // BadMagic: 16-aligned pointers into payloads, where no header is (zeroes, a pattern).
    refused(&mut r, at(a.as_ptr() as usize + 1024), FreeError::BadMagic);
    refused(&mut r, at(b.as_ptr() as usize + 64), FreeError::BadMagic);
    // A forged header: a copy of c's header placed in front of a pointer inside a's payload.
    // SAFETY: the 16 bytes before `c` are its header; `a`'s payload has room for a copy.
    let forged = unsafe {
        let dst = a.as_ptr().add(512);
        core::ptr::copy_nonoverlapping(c.as_ptr().sub(16), dst, 16);
        dst.add(16)
    };
    refused(&mut r, at(forged as usize), FreeError::BadMagic);
    // A header whose requested size was overwritten.
    // SAFETY: byte 8 of d's header is inside the region; restored right after.
    unsafe { *d.as_ptr().sub(8) ^= 0x40 };
    refused_without_check(&mut r, d, FreeError::BadMagic);
    // SAFETY: restore the byte.
    unsafe { *d.as_ptr().sub(8) ^= 0x40 };
    r.heap.check().unwrap();

    // DoubleFree, for a plain block and for an over-aligned one.
    // SAFETY: `c` and `b` are live here, and freed once.
    unsafe {
        r.heap.free(c).unwrap();
        r.heap.free(b).unwrap();
    }
    refused(&mut r, c, FreeError::DoubleFree);
    refused(&mut r, b, FreeError::DoubleFree);

    // After all that, the heap still serves and frees.
    let e = r.heap.malloc(layout(5000, 64)).unwrap();
    // SAFETY: `a`, `d` and `e` are live.
    unsafe {
        r.heap.free(e).unwrap();
        r.heap.free(d).unwrap();
        r.heap.free(a).unwrap();
    }
    r.heap.check().unwrap();
    assert_eq!(r.heap.stats().free_blocks, 1);
}

/// Like [`refused`] but for a heap whose header was deliberately corrupted, so `check()` fails.
fn refused_without_check(r: &mut Region, ptr: NonNull<u8>, want: FreeError) {
    let before = r.snapshot();
    let stats = r.heap.stats();
    // SAFETY: `free` must refuse this pointer.
    assert_eq!(unsafe { r.heap.free(ptr) }, Err(want));
    assert!(r.snapshot() == before);
    assert_eq!(r.heap.stats(), stats);
}

#[test]
fn realloc_refuses_a_bad_pointer_without_change() {
    let mut r = Region::new(8192, 0);
    let a = r.heap.malloc(layout(100, 16)).unwrap();
    let before = r.snapshot();
    let bad = NonNull::new(a.as_ptr().wrapping_add(32)).unwrap();
    // SAFETY: the pointer is refused before anything is touched.
    assert_eq!(
        unsafe { r.heap.realloc(bad, layout(10, 16)) },
        Err(AllocError::InvalidPointer)
    );
    assert!(r.snapshot() == before);
    r.heap.check().unwrap();
}

#[test]
fn a_second_free_after_a_merge_is_a_double_free() {
    let mut r = Region::new(4096, 0);
    let one = layout(1, 1);
    let lo = r.heap.malloc(one).unwrap();
    let hi = r.heap.malloc(one).unwrap();
    let keep = r.heap.malloc(one).unwrap();
    assert_eq!(
        hi.as_ptr() as usize - lo.as_ptr() as usize,
        32,
        "lo and hi are buddies"
    );
    // SAFETY: `lo` and `hi` are live and freed once each; `hi` merges into `lo`'s block.
    unsafe {
        r.heap.free(lo).unwrap();
        r.heap.free(hi).unwrap();
    }
    assert_eq!(r.heap.free_list_len(6), 1, "one merged 64-byte block");
    refused(&mut r, hi, FreeError::DoubleFree);
    refused(&mut r, lo, FreeError::DoubleFree);

    // The merged block handed out again as one block: `hi`'s old header now lies inside its
    // payload, where the caller has not written, and must not pass for a live block.
    let big = r.heap.malloc(layout(40, 16)).unwrap();
    assert_eq!(big, lo);
    refused(&mut r, hi, FreeError::DoubleFree);
    assert_eq!(r.heap.stats().live_blocks, 2);

    // The other order: the upper block is freed first and absorbed as the free buddy.
    // SAFETY: `big` and `keep` are live and freed once each.
    unsafe {
        r.heap.free(keep).unwrap();
        r.heap.free(big).unwrap();
    }
    assert_eq!(r.heap.stats().free_blocks, 1);
    for p in [lo, hi, keep] {
        refused(&mut r, p, FreeError::DoubleFree);
    }
    // Every 16-aligned pointer inside the merged free block is refused.
    assert_eq!(lo.as_ptr() as usize, r.heap.base() + 16);
    for off in (16..r.heap.managed_len()).step_by(16) {
        let p = NonNull::new(lo.as_ptr().wrapping_add(off - 16)).unwrap();
        // SAFETY: the heap only reads the header in front of `p`, inside its region.
        assert!(unsafe { r.heap.free(p) }.is_err(), "offset {off}");
    }
    r.heap.check().unwrap();
    assert_eq!(r.heap.stats().free_blocks, 1);
}

#[test]
fn a_second_free_of_an_over_aligned_block_is_a_double_free() {
    // With 32-byte alignment the payload header sits at block + 16, exactly where a free
    // block keeps its list links, so freeing overwrites it. Whether the freed block merges
    // with its buddy or stays alone, a second free or usable_size of the pointer is a double
    // free, not a bad magic number.
    for keep_buddy in [false, true] {
        let mut r = Region::new(4096, 0);
        let a = r.heap.malloc(layout(20, 32)).unwrap();
        let b = r.heap.malloc(layout(20, 32)).unwrap();
        let _keep = r.heap.malloc(layout(200, 16)).unwrap();
        assert_eq!(
            (a.as_ptr() as usize - r.heap.base()) % 64,
            32,
            "payload at block + 32"
        );
        // SAFETY: each pointer is live and freed once.
        unsafe {
            if !keep_buddy {
                r.heap.free(b).unwrap();
            }
            r.heap.free(a).unwrap();
        }
        // SAFETY: nothing changes the region while the header in front of `a` is read.
        assert_eq!(unsafe { r.heap.usable_size(a) }, Err(FreeError::DoubleFree));
        refused(&mut r, a, FreeError::DoubleFree);
        if !keep_buddy {
            refused(&mut r, b, FreeError::DoubleFree);
        }
        r.heap.check().unwrap();
    }
}
