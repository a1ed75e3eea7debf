//! `ThreadCached`'s C-style entry points on one thread, against a model of the live blocks.
//!
//! `malloc`, `calloc`, `aligned_alloc`, `realloc` (checked, as `try_realloc`), `free` and
//! `usable_size`, with requests the allocator must refuse (overflowing, impossible alignments)
//! and bad pointers mixed in: double frees, pointers inside blocks, slots of a span next to
//! the ones handed out, stale pointers, and foreign stack and heap pointers. A model keeps every
//! live block (address, size asked, usable size, its bytes).
//!
//! Every allocation is aligned, holds at least what was asked and overlaps no live block;
//! every live block keeps its bytes; every bad pointer is refused with an error and changes no
//! counter of the allocator; and once everything is freed and the caches are released, no span,
//! large object or cached byte is left. The allocator is process-wide: every size class is
//! made busy once (past its cold objects) before the first input, and every input frees all it
//! allocated, so that each input starts from the same kind of state.
#![no_main]

use arbitrary::Arbitrary;
use freespace_tcache::size_class::{class_size, NUM_CLASSES};
use freespace_tcache::{FreeError, ReallocError, TcacheStats, ThreadCached, COLD_OBJECTS};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::Once;

const MAX_OPS: usize = 128;
const A: ThreadCached = ThreadCached::new();

#[derive(Arbitrary, Debug)]
enum Op {
    Malloc {
        size: Size,
        seed: u8,
    },
    Calloc {
        count: u8,
        size: Size,
    },
    AlignedAlloc {
        align: u8,
        size: Size,
        seed: u8,
    },
    Realloc {
        which: u8,
        size: Size,
        seed: u8,
    },
    /// `realloc(NULL, size)`: an allocation.
    ReallocNull {
        size: Size,
        seed: u8,
    },
    Free {
        which: u8,
    },
    /// `free(NULL)`: nothing.
    FreeNull,
    UsableSize {
        which: u8,
    },
    /// A request no allocator can serve: refused, and nothing changes.
    Impossible {
        kind: Impossible,
        which: u8,
    },
    Bad {
        call: BadCall,
        at: BadPtr,
    },
    FlushThreadCache,
    ReleaseMemory,
}

/// A request size: around every size class, and large and huge ones for the core.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Tiny(u8),
    Small(u16),
    /// A size class's object size, minus one, exactly, or plus one.
    Class(u8, u8),
    Large(u16),
    Huge(u8),
}

/// Bytes one input may ask for in all; past it, requests are cut down to small ones, so that an
/// input stays fast (pages of huge blocks are faulted in, written and checked).
const BUDGET: usize = 3 << 19;

impl Size {
    fn get(self, spent: &mut usize) -> usize {
        let n = self.raw();
        if *spent + n > BUDGET {
            return n % 4097;
        }
        *spent += n;
        n
    }

    fn raw(self) -> usize {
        match self {
            Size::Tiny(b) => b as usize % 65,
            Size::Small(s) => s as usize % 4097,
            Size::Class(c, d) => (class_size(c as usize % NUM_CLASSES) + d as usize % 3).max(1) - 1,
            Size::Large(s) => 32 * 1024 + s as usize,
            Size::Huge(b) => 512 * 1024 + (b as usize % 64) * 4112,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Impossible {
    Malloc,
    CallocOverflow,
    AlignedAllocHuge,
    AlignedAllocNotPowerOfTwo,
    ReallocHuge,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum BadCall {
    Free,
    Realloc,
    UsableSize,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BadPtr {
    /// A pointer freed before, plus `off16` 16-byte steps.
    Freed { which: u8, off16: u8 },
    /// Inside a live block, at any offset.
    Interior { which: u8, off: u32 },
    /// The slots `k` objects of a block's size class away from it (`k` from -4 to 11, not 0):
    /// slots of its span never handed out among them.
    Slot { which: u8, k: u8 },
    /// A pointer into a local array.
    Stack { off: u8 },
    /// A pointer into a block of the system allocator.
    SystemHeap { off: u8 },
    /// Addresses nobody maps.
    Wild { high: bool, off: u16 },
}

/// Expected bytes: offset `i` of a segment with phase `p` holds `TABLE[(i + p) % TABLE.len()]`
/// (a prime period, so shifted copies differ), or 0 for a zeroed segment.
const PERIOD: usize = 4093;

fn table() -> &'static [u8] {
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut x = 0x2545_F491u32;
        let period: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        // Twice over, so that any `PERIOD` bytes from any phase are one slice.
        period.repeat(2)
    })
}

const ZERO: u16 = u16::MAX;

struct Live {
    size: usize,
    usable: usize,
    /// Segments of the contents: (end offset, phase), in order; they cover `0..size`.
    segs: Vec<(usize, u16)>,
}

/// The expected contents of `[from, to)` of segment phase `phase`, in chunks.
fn expected(phase: u16, from: usize, to: usize, mut f: impl FnMut(usize, &[u8])) {
    static ZEROS: [u8; PERIOD] = [0; PERIOD];
    let t = table();
    let mut i = from;
    while i < to {
        let n = (to - i).min(PERIOD);
        let chunk = if phase == ZERO {
            &ZEROS[..n]
        } else {
            let s = (i + phase as usize) % PERIOD;
            &t[s..s + n]
        };
        f(i, chunk);
        i += n;
    }
}

impl Live {
    /// Checks the bytes in `[from, to)` (clamped to the block).
    fn check(&self, p: usize, from: usize, to: usize) {
        let mut start = 0;
        for &(end, phase) in &self.segs {
            let (a, b) = (start.max(from), end.min(to));
            if a < b {
                expected(phase, a, b, |i, want| {
                    // SAFETY: `p` is a live block of at least `self.size` bytes.
                    let got =
                        unsafe { std::slice::from_raw_parts((p + i) as *const u8, want.len()) };
                    if got != want {
                        let at = got.iter().zip(want).position(|(x, y)| x != y).unwrap();
                        panic!(
                            "the live block {p:#x} ({} B) lost its byte at offset {}",
                            self.size,
                            i + at
                        );
                    }
                });
            }
            start = end;
        }
    }

    fn check_all(&self, p: usize) {
        self.check(p, 0, self.size);
    }

    /// Checks the first and last bytes, where allocator metadata would land.
    fn check_ends(&self, p: usize) {
        self.check(p, 0, 512);
        self.check(p, self.size.saturating_sub(512), self.size);
    }
}

#[derive(Default)]
struct Model {
    live: BTreeMap<usize, Live>,
    /// Freed pointers with their usable size, most recent last.
    freed: Vec<(usize, usize)>,
}

impl Model {
    fn nth_live(&self, which: u8) -> Option<usize> {
        (!self.live.is_empty()).then(|| {
            *self
                .live
                .keys()
                .nth(which as usize % self.live.len())
                .unwrap()
        })
    }

    fn note_freed(&mut self, p: usize, usable: usize) {
        self.freed.push((p, usable));
        if self.freed.len() > 64 {
            self.freed.remove(0);
        }
    }

    /// Records a new block at `p` of `size` bytes aligned to `align`: checks it, then writes
    /// its pattern past the `segs` it kept (a realloc's copied prefix) and files it.
    /// `seed` None: the new bytes are zeros (calloc).
    fn adopt(
        &mut self,
        p: *mut u8,
        size: usize,
        align: usize,
        mut segs: Vec<(usize, u16)>,
        seed: Option<u8>,
    ) {
        assert!(
            !p.is_null(),
            "allocation of {size} B (align {align}) failed"
        );
        let p = p as usize;
        assert_eq!(
            p % align.max(16),
            0,
            "{p:#x} ({size} B) not aligned to {align}"
        );
        // SAFETY: `p` is live.
        let usable = unsafe { A.usable_size(p as *const u8) }
            .unwrap_or_else(|| panic!("usable_size of the new block {p:#x}"));
        assert!(usable >= size, "usable_size {usable} < {size}");
        if let Some((&q, b)) = self.live.range(..=p).next_back() {
            assert!(
                q + b.usable <= p,
                "{p:#x} overlaps the live block {q:#x} ({} B)",
                b.usable
            );
        }
        if let Some((&q, _)) = self.live.range(p..).next() {
            assert!(
                p + usable <= q,
                "{p:#x} ({usable} B) overlaps the live block {q:#x}"
            );
        }
        let kept = segs.last().map_or(0, |s| s.0);
        if size > kept {
            let phase = seed.map_or(ZERO, |s| (s as u16 * 37) % PERIOD as u16);
            if phase != ZERO {
                expected(phase, kept, size, |i, bytes| {
                    // SAFETY: `p` is live with at least `size` bytes.
                    unsafe { ((p + i) as *mut u8).copy_from(bytes.as_ptr(), bytes.len()) }
                });
            }
            segs.push((size, phase));
        }
        let b = Live { size, usable, segs };
        b.check_all(p);
        self.live.insert(p, b);
    }

    fn free(&mut self, p: usize) {
        let b = self.live.remove(&p).unwrap();
        b.check_all(p);
        // SAFETY: `p` is live and freed once.
        let r = unsafe { A.free(p as *mut u8) };
        assert_eq!(r, Ok(()), "free of the live block {p:#x}");
        self.note_freed(p, b.usable);
    }
}

fn verify(m: &Model) {
    for (&p, b) in &m.live {
        b.check_ends(p);
    }
}

fn stats() -> TcacheStats {
    A.stats()
}

/// The bad pointer an op names, or None (nothing to name, or a live block's start).
fn bad_address(m: &Model, at: BadPtr, stack: &[u8], boxed: &[u8]) -> Option<usize> {
    let addr = match at {
        BadPtr::Freed { which, off16 } => {
            let &(p, _) = m.freed.get(which as usize % m.freed.len().max(1))?;
            p + 16 * (off16 as usize % 4)
        }
        BadPtr::Interior { which, off } => {
            let p = m.nth_live(which)?;
            p + 1 + off as usize % m.live[&p].usable
        }
        BadPtr::Slot { which, k } => {
            let (p, usable) = if which % 2 == 0 || m.freed.is_empty() {
                let p = m.nth_live(which / 2)?;
                (p, m.live[&p].usable)
            } else {
                m.freed[(which / 2) as usize % m.freed.len()]
            };
            let k = (k % 16) as isize - 4;
            let k = if k == 0 { 1 } else { k };
            p.checked_add_signed(k * usable as isize)?
        }
        BadPtr::Stack { off } => stack.as_ptr() as usize + 16 + off as usize % (stack.len() - 32),
        BadPtr::SystemHeap { off } => {
            boxed.as_ptr() as usize + 16 + off as usize % (boxed.len() - 32)
        }
        BadPtr::Wild { high, off } => {
            if high {
                usize::MAX - 4095 - off as usize * 16
            } else {
                4096 + off as usize * 16
            }
        }
    };
    (addr != 0 && !m.live.contains_key(&addr)).then_some(addr)
}

fn bad_call(m: &Model, call: BadCall, at: BadPtr, addr: usize, size: usize) {
    let before = stats();
    let foreign = matches!(
        at,
        BadPtr::Stack { .. } | BadPtr::SystemHeap { .. } | BadPtr::Wild { .. }
    );
    let p = addr as *mut u8;
    let what = format!("{call:?} of the bad pointer {addr:#x} ({at:?})");
    let first = match call {
        BadCall::Free => None,
        // SAFETY: `p` is no live block of ours; the refusal checks read only memory that the
        // allocator owns or that `p` points into (our own stack and heap buffers).
        BadCall::UsableSize => Some(Err(unsafe { A.usable_size(p) })),
        // SAFETY: as above.
        BadCall::Realloc => Some(Ok(unsafe { A.try_realloc(p, size) })),
    };
    // SAFETY: as above.
    let err = match unsafe { A.free(p) } {
        Ok(()) => panic!("{what} was accepted by free"),
        Err(e) => e,
    };
    if foreign {
        assert_eq!(err, FreeError::NotInHeap, "{what}");
    }
    match first {
        Some(Err(n)) if err != FreeError::DoubleFree => {
            assert_eq!(
                n, None,
                "{what}: usable_size answered for a pointer free refuses ({err:?})"
            )
        }
        Some(Ok(r)) => match r {
            Ok(q) => panic!("{what}: realloc accepted it and gave {q:p}"),
            Err(e) => assert_eq!(
                e,
                ReallocError::Invalid(err),
                "{what}: realloc and free disagree"
            ),
        },
        _ => {}
    }
    assert_eq!(stats(), before, "{what} changed the allocator's counters");
    verify(m);
}

/// Makes every size class busy (past its cold objects) and leaves nothing cached.
fn warm_up() {
    for c in 0..NUM_CLASSES {
        let ptrs: Vec<*mut u8> = (0..=COLD_OBJECTS)
            .map(|_| A.malloc(class_size(c)))
            .collect();
        for p in ptrs {
            // SAFETY: allocated just above, freed once.
            unsafe { A.free(p) }.unwrap();
        }
    }
    A.release_memory();
}

fuzz_target!(|ops: Vec<Op>| {
    static WARM: Once = Once::new();
    WARM.call_once(warm_up);
    let mut m = Model::default();
    let mut spent = 0;
    let stack = [0x5Au8; 256];
    let boxed = vec![0xA5u8; 256];
    for op in ops.iter().take(MAX_OPS) {
        match *op {
            Op::Malloc { size, seed } => {
                let n = size.get(&mut spent);
                m.adopt(A.malloc(n), n, 16, Vec::new(), Some(seed));
            }
            Op::Calloc { count, size } => {
                let (count, size) = (count as usize % 9, size.get(&mut spent) / 8);
                let p = A.calloc(count, size);
                m.adopt(p, count * size, 16, Vec::new(), None);
            }
            Op::AlignedAlloc { align, size, seed } => {
                let (align, n) = (1usize << (align % 17), size.get(&mut spent));
                m.adopt(A.aligned_alloc(align, n), n, align, Vec::new(), Some(seed));
            }
            Op::Realloc { which, size, seed } => {
                let Some(p) = m.nth_live(which) else { continue };
                let n = size.get(&mut spent);
                let old = m.live.remove(&p).unwrap();
                old.check_all(p);
                // SAFETY: `p` is live.
                let q = unsafe { A.try_realloc(p as *mut u8, n) }
                    .unwrap_or_else(|e| panic!("realloc of the live block {p:#x} to {n}: {e}"))
                    .as_ptr();
                let mut segs = old.segs.clone();
                let keep = old.size.min(n);
                segs.retain(|s| s.0 < keep);
                if keep > segs.last().map_or(0, |s| s.0) {
                    let phase = old.segs.iter().find(|s| s.0 >= keep).unwrap().1;
                    segs.push((keep, phase));
                }
                m.adopt(q, n, 16, segs, Some(seed));
                if q as usize != p {
                    m.note_freed(p, old.usable);
                }
            }
            Op::ReallocNull { size, seed } => {
                let n = size.get(&mut spent);
                // SAFETY: a null pointer allocates.
                let q = unsafe { A.realloc(std::ptr::null_mut(), n) };
                m.adopt(q, n, 16, Vec::new(), Some(seed));
            }
            Op::Free { which } => {
                let Some(p) = m.nth_live(which) else { continue };
                m.free(p);
            }
            // SAFETY: null is a no-op.
            Op::FreeNull => assert_eq!(unsafe { A.free(std::ptr::null_mut()) }, Ok(())),
            Op::UsableSize { which } => {
                let Some(p) = m.nth_live(which) else { continue };
                // SAFETY: `p` is live.
                let n = unsafe { A.usable_size(p as *const u8) };
                assert_eq!(n, Some(m.live[&p].usable), "usable_size of {p:#x} changed");
            }
            Op::Impossible { kind, which } => {
                let before = stats();
                match kind {
                    Impossible::Malloc => assert!(A.malloc(usize::MAX - 4096).is_null()),
                    Impossible::CallocOverflow => {
                        assert!(A.calloc(usize::MAX / 2 + 1, 2).is_null())
                    }
                    Impossible::AlignedAllocHuge => {
                        assert!(A.aligned_alloc(1 << 50, 16).is_null())
                    }
                    Impossible::AlignedAllocNotPowerOfTwo => {
                        assert!(A.aligned_alloc(48 * (which as usize % 3), 64).is_null())
                    }
                    Impossible::ReallocHuge => {
                        let Some(p) = m.nth_live(which) else { continue };
                        // SAFETY: `p` is live; a refused realloc leaves it so.
                        let r = unsafe { A.try_realloc(p as *mut u8, usize::MAX - 4096) };
                        assert_eq!(r, Err(ReallocError::OutOfMemory), "realloc to a huge size");
                    }
                }
                let after = stats();
                assert_eq!(
                    (after.spans, after.large_objects, after.large_bytes),
                    (before.spans, before.large_objects, before.large_bytes),
                    "a refused {kind:?} changed the allocator"
                );
            }
            Op::Bad { call, at } => {
                let Some(addr) = bad_address(&m, at, &stack, &boxed) else {
                    continue;
                };
                bad_call(&m, call, at, addr, 100);
            }
            Op::FlushThreadCache => A.flush_thread_cache(),
            Op::ReleaseMemory => A.release_memory(),
        }
        verify(&m);
    }
    let live: Vec<usize> = m.live.keys().copied().collect();
    for p in live {
        m.free(p);
    }
    A.release_memory();
    let s = stats();
    assert_eq!(
        (
            s.spans,
            s.span_bytes,
            s.large_objects,
            s.large_bytes,
            s.transfer_bytes,
            s.thread_cache_bytes
        ),
        (0, 0, 0, 0, 0, 0),
        "everything freed and released, yet the allocator holds something: {s:?}"
    );
});
