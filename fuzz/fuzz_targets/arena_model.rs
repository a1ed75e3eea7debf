//! Differential fuzzing of `freespace_handles::Arena` against a model.
//!
//! The input chooses a compactor (`Sliding` or `TwoFinger`), a growth policy, capacity limits,
//! and a list of operations: inserts of typed values of several sizes and alignments (some
//! with drop glue that owns heap memory, so AddressSanitizer sees a double drop and
//! LeakSanitizer a missed one), byte blocks of any alignment up to a page, writes through
//! `get_mut` and `bytes_mut`, resizes, removes, frees, pins and unpins, full and budgeted
//! compaction, `clear`, `reserve`, `shrink_to_fit`, policy changes, and uses of handles that
//! must be refused: removed ones, and live ones of a second arena.
//!
//! The model is the list of live handles with the exact value or bytes each must hold, its pin
//! count and pinned address. After every operation every live value and block is read back and
//! compared, pinned blocks must still be where they were pinned, the space accounting must
//! add up, and `Arena::check` must pass. Refused calls must leave `stats()` as they were (apart
//! from the compaction pass `CompactThenGrow` may run first), and a full sliding pass with
//! nothing pinned must produce exactly the layout `Arena::compact` documents.
#![no_main]

use std::fmt::Debug;
use std::ptr::NonNull;
use std::time::Duration;

use arbitrary::Arbitrary;
use freespace_handles::{
    Arena, ArenaConfig, ArenaError, ArenaStats, Budget, Compactor, GrowthPolicy, Handle, RawHandle,
    Sliding, TwoFinger, PAGE,
};
use libfuzzer_sys::fuzz_target;

/// Byte blocks are at most this long, so that a run stays small and fast.
const MAX_LEN: usize = 3 * PAGE;

#[derive(Arbitrary, Debug)]
struct Input {
    two_finger: bool,
    policy: PolicyChoice,
    /// The buffer's limit in pages (`None`: unbounded).
    max_pages: Option<u8>,
    initial_pages: u8,
    shrink_after_compaction: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PolicyChoice {
    CompactThenGrow,
    Defrag {
        threshold_percent: u8,
        step: BudgetChoice,
    },
    Manual,
}

impl PolicyChoice {
    fn policy(self) -> GrowthPolicy {
        match self {
            PolicyChoice::CompactThenGrow => GrowthPolicy::CompactThenGrow,
            PolicyChoice::Defrag {
                threshold_percent,
                step,
            } => GrowthPolicy::Defrag {
                threshold: f64::from(threshold_percent % 101) / 100.0,
                step: step.budget(),
            },
            PolicyChoice::Manual => GrowthPolicy::Manual,
        }
    }
}

/// Budgets, all deterministic (a zero time budget is spent after the first move).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum BudgetChoice {
    Bytes(u16),
    Moves(u8),
    NoTime,
    Unlimited,
}

impl BudgetChoice {
    fn budget(self) -> Budget {
        match self {
            BudgetChoice::Bytes(b) => Budget::Bytes(usize::from(b)),
            BudgetChoice::Moves(m) => Budget::Moves(usize::from(m)),
            BudgetChoice::NoTime => Budget::Time(Duration::ZERO),
            BudgetChoice::Unlimited => Budget::Unlimited,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Insert {
        kind: Kind,
        seed: u8,
    },
    AllocBytes {
        len: u16,
        align_log: u8,
        seed: u8,
    },
    Write {
        pick: u16,
        seed: u8,
    },
    Resize {
        pick: u16,
        len: u16,
    },
    Remove {
        pick: u16,
    },
    Pin {
        pick: u16,
    },
    Unpin {
        pick: u16,
    },
    Compact,
    CompactWith(BudgetChoice),
    Clear,
    Reserve {
        bytes: u16,
    },
    ShrinkToFit,
    SetPolicy(PolicyChoice),
    /// Uses a removed handle on the arena: every call must refuse it.
    UseRemoved {
        pick: u16,
    },
    /// Puts a value into the second arena.
    OtherInsert {
        kind: Kind,
        seed: u8,
    },
    /// Uses a live handle of the second arena on the first, and the other way round.
    UseForeign {
        pick: u16,
    },
}

/// Values of several sizes and alignments.
#[derive(Clone, Debug, PartialEq)]
#[repr(align(16))]
struct A16([u8; 24]);
#[derive(Clone, Debug, PartialEq)]
#[repr(align(64))]
struct A64([u8; 100]);
#[derive(Clone, Debug, PartialEq)]
#[repr(align(4096))]
struct A4096([u8; 8]);

/// A value the model can make, compare and change.
trait Value: Clone + Debug + PartialEq + 'static {
    fn make(seed: u8) -> Self;
    fn tweak(&mut self, seed: u8);
}

impl Value for u8 {
    fn make(seed: u8) -> Self {
        seed
    }
    fn tweak(&mut self, seed: u8) {
        *self ^= seed | 1;
    }
}
impl Value for u16 {
    fn make(seed: u8) -> Self {
        u16::from(seed) * 257
    }
    fn tweak(&mut self, seed: u8) {
        *self = self.wrapping_add(u16::from(seed) + 1);
    }
}
impl Value for u64 {
    fn make(seed: u8) -> Self {
        u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn tweak(&mut self, seed: u8) {
        *self = self.rotate_left(u32::from(seed) % 63 + 1);
    }
}
impl Value for [u8; 3] {
    fn make(seed: u8) -> Self {
        [seed, !seed, seed ^ 0x5a]
    }
    fn tweak(&mut self, seed: u8) {
        self[usize::from(seed) % 3] ^= seed | 1;
    }
}
impl Value for A16 {
    fn make(seed: u8) -> Self {
        A16(std::array::from_fn(|i| seed.wrapping_add(i as u8)))
    }
    fn tweak(&mut self, seed: u8) {
        self.0[usize::from(seed) % 24] ^= seed | 1;
    }
}
impl Value for A64 {
    fn make(seed: u8) -> Self {
        A64(std::array::from_fn(|i| seed.wrapping_mul(i as u8 | 1)))
    }
    fn tweak(&mut self, seed: u8) {
        self.0[usize::from(seed) % 100] ^= seed | 1;
    }
}
impl Value for A4096 {
    fn make(seed: u8) -> Self {
        A4096([seed; 8])
    }
    fn tweak(&mut self, seed: u8) {
        self.0[usize::from(seed) % 8] ^= seed | 1;
    }
}
impl Value for () {
    fn make(_: u8) -> Self {}
    fn tweak(&mut self, _: u8) {}
}
impl Value for String {
    fn make(seed: u8) -> Self {
        format!("value {seed}: {}", "x".repeat(usize::from(seed % 40)))
    }
    fn tweak(&mut self, seed: u8) {
        self.push(char::from(b'a' + seed % 26));
    }
}
impl Value for Box<[u64]> {
    fn make(seed: u8) -> Self {
        (0..u64::from(seed % 9) + 1).collect()
    }
    fn tweak(&mut self, seed: u8) {
        let n = self.len();
        self[usize::from(seed) % n] ^= u64::from(seed) | 1;
    }
}

macro_rules! kinds {
    ($($name:ident: $t:ty),* $(,)?) => {
        #[derive(Arbitrary, Debug, Clone, Copy)]
        enum Kind { $($name),* }

        /// A typed value and the handle that names it.
        #[derive(Clone, Debug)]
        enum Val { $($name(Handle<$t>, $t)),* }

        impl Val {
            fn insert<C: Compactor>(
                arena: &mut Arena<C>,
                kind: Kind,
                seed: u8,
            ) -> Result<Val, ArenaError> {
                match kind {
                    $(Kind::$name => {
                        let v = <$t as Value>::make(seed);
                        arena.try_insert(v.clone()).map(|h| Val::$name(h, v))
                    })*
                }
            }

            fn raw(&self) -> RawHandle {
                match self { $(Val::$name(h, _) => h.raw()),* }
            }

            /// Bytes the value reserves in the buffer.
            fn reserved(&self) -> usize {
                match self { $(Val::$name(..) => std::mem::size_of::<$t>()),* }
            }

            fn align(&self) -> usize {
                match self { $(Val::$name(..) => std::mem::align_of::<$t>()),* }
            }

            fn assert_live<C: Compactor>(&self, arena: &Arena<C>, step: usize) {
                match self {
                    $(Val::$name(h, v) => {
                        assert_eq!(arena.get(*h), Some(v), "step {step}: value differs");
                    })*
                }
            }

            /// Every typed call refuses the handle, and changes nothing.
            fn assert_refused<C: Compactor>(&self, arena: &mut Arena<C>) {
                match self {
                    $(Val::$name(h, _) => {
                        assert!(arena.get(*h).is_none(), "a refused handle was read");
                        assert!(arena.get_mut(*h).is_none(), "a refused handle was written");
                        let before = arena.stats();
                        assert_eq!(arena.try_remove(*h).err(), Some(ArenaError::Stale));
                        assert_eq!(arena.stats(), before);
                    })*
                }
            }

            fn remove<C: Compactor>(&self, arena: &mut Arena<C>) -> Result<(), ArenaError> {
                match self {
                    $(Val::$name(h, v) => arena.try_remove(*h).map(|got| {
                        assert_eq!(&got, v, "remove returned another value");
                    }),)*
                }
            }

            fn tweak<C: Compactor>(&mut self, arena: &mut Arena<C>, seed: u8) {
                match self {
                    $(Val::$name(h, v) => {
                        v.tweak(seed);
                        arena.get_mut(*h).expect("live").tweak(seed);
                    })*
                }
            }
        }
    };
}

kinds! {
    U8: u8,
    U16: u16,
    U64: u64,
    Triple: [u8; 3],
    Align16: A16,
    Align64: A64,
    Page: A4096,
    Unit: (),
    Text: String,
    Words: Box<[u64]>,
}

/// What a live handle names.
#[derive(Clone, Debug)]
enum Item {
    Value(Val),
    Bytes(Handle<[u8]>, Vec<u8>, usize),
}

impl Item {
    fn raw(&self) -> RawHandle {
        match self {
            Item::Value(v) => v.raw(),
            Item::Bytes(h, ..) => h.raw(),
        }
    }

    fn reserved(&self) -> usize {
        match self {
            Item::Value(v) => v.reserved(),
            Item::Bytes(_, bytes, align) => bytes.len().next_multiple_of(*align),
        }
    }

    fn align(&self) -> usize {
        match self {
            Item::Value(v) => v.align(),
            Item::Bytes(_, _, align) => *align,
        }
    }

    /// Every call refuses the handle and changes nothing.
    fn assert_refused<C: Compactor>(&self, arena: &mut Arena<C>) {
        let raw = self.raw();
        let before = arena.stats();
        assert!(!arena.contains(raw));
        assert!(arena.address_of(raw).is_none());
        assert!(arena.pin_count(raw).is_none());
        assert_eq!(arena.pin(raw).err(), Some(ArenaError::Stale));
        assert_eq!(arena.unpin(raw).err(), Some(ArenaError::Stale));
        match self {
            Item::Value(v) => v.assert_refused(arena),
            Item::Bytes(h, ..) => {
                assert!(arena.bytes(*h).is_none());
                assert!(arena.bytes_mut(*h).is_none());
                assert_eq!(arena.resize(*h, 5), Err(ArenaError::Stale));
                assert_eq!(arena.free_bytes(*h), Err(ArenaError::Stale));
            }
        }
        assert_eq!(arena.stats(), before, "a refused handle changed the arena");
    }
}

#[derive(Clone, Debug)]
struct Entry {
    item: Item,
    pins: u32,
    /// Where the block was pinned.
    addr: Option<NonNull<u8>>,
}

/// Checks a refused call against the arena's promise: nothing changed, except for the
/// compaction pass `CompactThenGrow` may run before it gives up.
fn assert_unchanged_after_refusal(before: &ArenaStats, after: &ArenaStats, policy: GrowthPolicy) {
    if policy == GrowthPolicy::CompactThenGrow {
        let kept = |s: &ArenaStats| {
            (
                s.live_blocks,
                s.live_bytes,
                s.footprint,
                s.table_bytes,
                s.pinned_blocks,
                s.retired_slots,
            )
        };
        assert_eq!(
            kept(after),
            kept(before),
            "a refused call changed the arena"
        );
        assert!(after.passes_completed <= before.passes_completed + 1);
        if after.passes_completed == before.passes_completed {
            assert_eq!(after, before, "a refused call changed the arena");
        }
    } else {
        assert_eq!(after, before, "a refused call changed the arena");
    }
}

fn is_growth_failure(e: ArenaError) -> bool {
    matches!(e, ArenaError::OutOfMemory | ArenaError::BufferPinned)
}

/// Each live block's offset, from its address: the lowest address is the lowest offset.
fn offsets<C: Compactor>(arena: &Arena<C>, live: &[Entry]) -> Vec<(usize, usize, usize)> {
    let addr = |e: &Entry| arena.address_of(e.item.raw()).unwrap().as_ptr() as usize;
    let placed: Vec<&Entry> = live.iter().filter(|e| e.item.reserved() > 0).collect();
    let Some(lowest) = placed.iter().map(|e| addr(e)).min() else {
        return Vec::new();
    };
    let base = lowest - arena.blocks().next().expect("a block").0;
    let mut v: Vec<(usize, usize, usize)> = placed
        .iter()
        .map(|e| (addr(e) - base, e.item.reserved(), e.item.align()))
        .collect();
    v.sort_unstable();
    v
}

/// The layout a full sliding pass with nothing pinned promises (see `Arena::compact`).
fn assert_slid<C: Compactor>(arena: &Arena<C>, live: &[Entry], initial: usize, shrink: bool) {
    let blocks = offsets(arena, live);
    let mut end = 0usize;
    let mut padding = Vec::new();
    for &(off, len, align) in &blocks {
        assert_eq!(
            off,
            end.next_multiple_of(align),
            "a block could slide further"
        );
        if off > end {
            padding.push((end, off - end));
        }
        end = off + len;
    }
    assert_eq!(
        arena.holes().collect::<Vec<_>>(),
        padding,
        "holes beyond padding"
    );
    let s = arena.stats();
    assert_eq!(s.used_span, end);
    if shrink {
        assert_eq!(s.footprint, end.next_multiple_of(PAGE).max(initial));
    }
}

fn verify<C: Compactor>(arena: &Arena<C>, live: &[Entry], step: usize) {
    arena.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
    let s = arena.stats();
    assert_eq!(s.live_blocks, live.len(), "step {step}");
    assert_eq!(arena.len(), live.len());
    let reserved: usize = live.iter().map(|e| e.item.reserved()).sum();
    assert_eq!(s.live_bytes, reserved, "step {step}: live bytes");
    assert_eq!(s.live_bytes + s.hole_bytes, s.used_span, "step {step}");
    assert!(s.used_span <= s.footprint);
    assert_eq!(s.holes, arena.holes().count());
    assert_eq!(s.hole_bytes, arena.holes().map(|h| h.1).sum::<usize>());
    assert_eq!(
        s.largest_hole,
        arena.holes().map(|h| h.1).max().unwrap_or(0)
    );
    let pinned = live.iter().filter(|e| e.pins > 0).count();
    assert_eq!(s.pinned_blocks, pinned, "step {step}");
    for e in live {
        match &e.item {
            Item::Value(v) => v.assert_live(arena, step),
            Item::Bytes(h, bytes, align) => {
                assert_eq!(
                    arena.bytes(*h),
                    Some(&bytes[..]),
                    "step {step}: bytes differ"
                );
                let addr = arena.address_of(*h).unwrap().as_ptr() as usize;
                assert_eq!(addr % align, 0, "step {step}: misaligned block");
            }
        }
        let raw = e.item.raw();
        assert!(arena.contains(raw));
        assert_eq!(arena.pin_count(raw), Some(e.pins), "step {step}");
        if e.pins > 0 {
            assert_eq!(
                arena.address_of(raw),
                e.addr,
                "step {step}: a pinned block moved"
            );
        }
    }
}

fn pick<T>(list: &[T], i: u16) -> Option<usize> {
    (!list.is_empty()).then(|| usize::from(i) % list.len())
}

fn run<C: Compactor>(input: &Input, compactor: C, sliding: bool) {
    let mut config = ArenaConfig::new()
        .policy(input.policy.policy())
        .initial_capacity(usize::from(input.initial_pages % 4) * PAGE)
        .shrink_after_compaction(input.shrink_after_compaction);
    if let Some(pages) = input.max_pages {
        config = config.max_capacity((usize::from(pages % 16) + 1) * PAGE);
    }
    let mut arena = Arena::with_config(config, compactor);
    let initial = arena.config().initial_capacity;
    let mut other = Arena::new();
    let mut live: Vec<Entry> = Vec::new();
    let mut removed: Vec<Item> = Vec::new();
    let mut foreign: Vec<Val> = Vec::new();

    for (step, op) in input.ops.iter().enumerate() {
        let policy = arena.config().policy;
        match *op {
            Op::Insert { kind, seed } => {
                let before = arena.stats();
                match Val::insert(&mut arena, kind, seed) {
                    Ok(v) => live.push(Entry {
                        item: Item::Value(v),
                        pins: 0,
                        addr: None,
                    }),
                    Err(e) => {
                        assert!(is_growth_failure(e), "step {step}: {e}");
                        assert_unchanged_after_refusal(&before, &arena.stats(), policy);
                    }
                }
            }
            Op::AllocBytes {
                len,
                align_log,
                seed,
            } => {
                let len = usize::from(len) % (MAX_LEN + 1);
                let align = 1 << (align_log % 14);
                let before = arena.stats();
                match arena.try_alloc_bytes(len, align) {
                    Ok(h) => {
                        assert!(
                            arena.bytes(h).unwrap().iter().all(|&b| b == 0),
                            "not zeroed"
                        );
                        let fill: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
                        arena.bytes_mut(h).unwrap().copy_from_slice(&fill);
                        live.push(Entry {
                            item: Item::Bytes(h, fill, align),
                            pins: 0,
                            addr: None,
                        });
                    }
                    Err(ArenaError::BadAlignment(a)) => {
                        assert!(a > freespace_handles::MAX_ALIGN);
                        assert_eq!(arena.stats(), before);
                    }
                    Err(e) => {
                        assert!(is_growth_failure(e), "step {step}: {e}");
                        assert_unchanged_after_refusal(&before, &arena.stats(), policy);
                    }
                }
            }
            Op::Write { pick: i, seed } => {
                if let Some(i) = pick(&live, i) {
                    match &mut live[i].item {
                        Item::Value(v) => v.tweak(&mut arena, seed),
                        Item::Bytes(h, bytes, _) => {
                            let got = arena.bytes_mut(*h).expect("live");
                            for (k, (b, m)) in got.iter_mut().zip(bytes.iter_mut()).enumerate() {
                                if k % 7 == usize::from(seed) % 7 {
                                    *b ^= seed | 1;
                                    *m ^= seed | 1;
                                }
                            }
                        }
                    }
                }
            }
            Op::Resize { pick: i, len } => {
                let Some(i) = pick(&live, i) else { continue };
                let pins = live[i].pins;
                let at = live[i].addr;
                if let Item::Bytes(h, bytes, _) = &mut live[i].item {
                    let new_len = usize::from(len) % (MAX_LEN + 1);
                    let before = arena.stats();
                    match arena.resize(*h, new_len) {
                        Ok(()) => bytes.resize(new_len, 0),
                        Err(ArenaError::Pinned) => {
                            assert!(pins > 0, "step {step}: Pinned for an unpinned block");
                            assert_eq!(arena.stats(), before);
                        }
                        Err(e) => {
                            assert!(is_growth_failure(e), "step {step}: {e}");
                            assert_unchanged_after_refusal(&before, &arena.stats(), policy);
                        }
                    }
                    if pins > 0 {
                        assert_eq!(
                            arena.address_of(*h),
                            at,
                            "step {step}: a pinned block moved"
                        );
                    }
                }
            }
            Op::Remove { pick: i } => {
                let Some(i) = pick(&live, i) else { continue };
                let before = arena.stats();
                let result = match &live[i].item {
                    Item::Value(v) => v.remove(&mut arena),
                    Item::Bytes(h, ..) => arena.free_bytes(*h),
                };
                if live[i].pins > 0 {
                    assert_eq!(result, Err(ArenaError::Pinned), "step {step}");
                    assert_eq!(arena.stats(), before);
                } else {
                    result.unwrap_or_else(|e| panic!("step {step}: {e}"));
                    removed.push(live.swap_remove(i).item);
                }
            }
            Op::Pin { pick: i } => {
                let Some(i) = pick(&live, i) else { continue };
                let addr = arena.pin(live[i].item.raw()).expect("live");
                if live[i].pins > 0 {
                    assert_eq!(Some(addr), live[i].addr, "step {step}: pin moved");
                }
                live[i].pins += 1;
                live[i].addr = Some(addr);
            }
            Op::Unpin { pick: i } => {
                let Some(i) = pick(&live, i) else { continue };
                let before = arena.stats();
                match arena.unpin(live[i].item.raw()) {
                    Ok(()) => live[i].pins -= 1,
                    Err(e) => {
                        assert_eq!((e, live[i].pins), (ArenaError::NotPinned, 0), "step {step}");
                        assert_eq!(arena.stats(), before);
                    }
                }
            }
            Op::Compact => {
                let before = arena.stats();
                let r = arena.compact();
                assert!(r.finished);
                let after = arena.stats();
                assert_eq!(
                    r.bytes_moved as u64,
                    after.total_bytes_moved - before.total_bytes_moved
                );
                assert_eq!(
                    r.blocks_moved as u64,
                    after.total_blocks_moved - before.total_blocks_moved
                );
                assert_eq!((r.holes_before, r.holes_after), (before.holes, after.holes));
                assert_eq!(r.footprint_after, after.footprint);
                if sliding && after.pinned_blocks == 0 {
                    assert_slid(
                        &arena,
                        &live,
                        initial,
                        arena.config().shrink_after_compaction,
                    );
                }
            }
            Op::CompactWith(b) => {
                let budget = b.budget();
                let r = arena.compact_with(budget);
                match budget {
                    Budget::Moves(m) => assert!(r.blocks_moved <= m.max(1), "step {step}"),
                    Budget::Time(_) => assert!(r.blocks_moved <= 1, "step {step}"),
                    Budget::Unlimited => assert!(r.finished),
                    Budget::Bytes(_) => {}
                }
                assert_eq!(arena.compaction_in_progress(), !r.finished);
            }
            Op::Clear => {
                arena.clear();
                let (kept, gone): (Vec<Entry>, Vec<Entry>) =
                    live.drain(..).partition(|e| e.pins > 0);
                live = kept;
                removed.extend(gone.into_iter().map(|e| e.item));
            }
            Op::Reserve { bytes } => {
                let before = arena.stats();
                if let Err(e) = arena.reserve(usize::from(bytes)) {
                    assert!(is_growth_failure(e), "step {step}: {e}");
                    assert_eq!(arena.stats(), before);
                } else {
                    let s = arena.stats();
                    assert!(s.footprint - s.used_span >= usize::from(bytes));
                }
            }
            Op::ShrinkToFit => {
                arena.shrink_to_fit();
            }
            Op::SetPolicy(p) => arena.set_policy(p.policy()),
            Op::UseRemoved { pick: i } => {
                if let Some(i) = pick(&removed, i) {
                    removed[i].assert_refused(&mut arena);
                }
            }
            Op::OtherInsert { kind, seed } => {
                if let Ok(v) = Val::insert(&mut other, kind, seed) {
                    foreign.push(v);
                }
            }
            Op::UseForeign { pick: i } => {
                if let Some(i) = pick(&foreign, i) {
                    Item::Value(foreign[i].clone()).assert_refused(&mut arena);
                    foreign[i].assert_live(&other, step);
                }
                if let Some(i) = pick(&live, i) {
                    live[i].item.assert_refused(&mut other);
                }
                other
                    .check()
                    .unwrap_or_else(|e| panic!("step {step}: other arena: {e}"));
            }
        }
        verify(&arena, &live, step);
    }
    // Unpin everything: a full pass must then leave only padding (sliding) and every value.
    for e in &mut live {
        while e.pins > 0 {
            arena.unpin(e.item.raw()).unwrap();
            e.pins -= 1;
        }
    }
    arena.compact();
    verify(&arena, &live, usize::MAX);
    if sliding {
        assert_slid(
            &arena,
            &live,
            initial,
            arena.config().shrink_after_compaction,
        );
    }
}

fuzz_target!(|input: Input| {
    if input.two_finger {
        run(&input, TwoFinger::new(), false);
    } else {
        run(&input, Sliding::new(), true);
    }
});
