//! The size classes: which object size each small request is rounded up to, how big a span of
//! each class is, and how many objects move per batch. Invariant: above 128 bytes no request is
//! rounded up by more than 12.5% of its size (8 classes per power of two), and every class size is
//! a multiple of 16, so every object is 16-byte aligned.
//!
//! | classes | sizes                                   | step        | worst rounding |
//! |---------|-----------------------------------------|-------------|----------------|
//! | 0..8    | 16, 32, ..., 128                        | 16          | 15 bytes       |
//! | 8..72   | 2^k + j * 2^(k-3), k = 7..14, j = 1..=8 | 2^(k-3)     | < 12.5%        |
//!
//! The largest class is 32 KiB; anything larger, or aligned beyond a page, goes to the core.

/// Number of size classes.
pub const NUM_CLASSES: usize = 72;
/// The largest size served from a size class; larger requests go to the core.
pub const MAX_SMALL: usize = 32 * 1024;
/// The smallest object: room for the free-list link and the free marker.
pub const MIN_SIZE: usize = 16;
/// The page size that spans are made of, and the granule of the page map.
pub const PAGE: usize = 4096;
/// The largest alignment a size class can give (objects sit at multiples of their size from a
/// page-aligned span start).
pub const MAX_SMALL_ALIGN: usize = PAGE;
/// Bytes at the end of every span reserved for its metadata record.
pub const SPAN_META_RESERVE: usize = 128;
/// Upper bound on a thread cache's per-class capacity, in objects.
pub const MAX_BIN_OBJECTS: u32 = 1024;
/// Upper bound on a class's transfer cache (`ClassInfo::transfer_slots`), in batches.
pub const MAX_TRANSFER_SLOTS: usize = 16;

/// The object size of class `c`.
#[inline]
pub const fn class_size(c: usize) -> usize {
    if c < 8 {
        16 * (c + 1)
    } else {
        let k = (c - 8) / 8 + 7;
        let j = (c - 8) % 8 + 1;
        (1 << k) + j * (1 << (k - 3))
    }
}

/// The smallest class whose objects hold `size` bytes, or `None` above [`MAX_SMALL`].
/// Size 0 maps to the smallest class.
#[inline]
pub const fn size_to_class(size: usize) -> Option<usize> {
    if size <= LUT_MAX {
        Some(SMALL_LUT[size.div_ceil(16)] as usize)
    } else {
        size_to_class_computed(size)
    }
}

/// Sizes up to this are mapped through [`SMALL_LUT`], one load instead of a few shifts.
const LUT_MAX: usize = 1024;

/// `SMALL_LUT[(size + 15) / 16]` is the class of `size`, for `size <= LUT_MAX`.
const SMALL_LUT: [u8; LUT_MAX / 16 + 1] = {
    let mut t = [0u8; LUT_MAX / 16 + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = match size_to_class_computed(i * 16) {
            Some(c) => c as u8,
            None => 0,
        };
        i += 1;
    }
    t
};

/// The class of `size` by arithmetic (the definition the lookup table is built from).
const fn size_to_class_computed(size: usize) -> Option<usize> {
    if size <= 128 {
        Some(if size == 0 { 0 } else { size.div_ceil(16) - 1 })
    } else if size <= MAX_SMALL {
        // size lies in (2^k, 2^(k+1)].
        let k = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
        let step_shift = k - 3;
        let j = (size - (1 << k) + (1 << step_shift) - 1) >> step_shift;
        Some(8 + (k - 7) * 8 + j - 1)
    } else {
        None
    }
}

/// The class for a request of `size` bytes aligned to `align` (a power of two), or `None` when
/// the core must serve it. The same `(size, align)` always gives the same answer, which lets a
/// sized deallocation find the class without a lookup.
#[inline]
pub const fn class_for(size: usize, align: usize) -> Option<usize> {
    if align <= MIN_SIZE {
        return size_to_class(size);
    }
    if align > MAX_SMALL_ALIGN {
        return None;
    }
    // Objects of a class whose size is a multiple of `align` are `align`-aligned, because spans
    // start on a page boundary. Powers of two are classes, so the search ends.
    let mut c = match size_to_class(if size < align { align } else { size }) {
        Some(c) => c,
        None => return None,
    };
    while class_size(c) % align != 0 {
        c += 1;
        if c == NUM_CLASSES {
            return None;
        }
    }
    Some(c)
}

/// The geometry of one class: span size, objects per span, batch size and cache bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    /// Object size in bytes.
    pub size: u32,
    /// Span size in pages, once the class is busy (its full-size spans).
    pub span_pages: u32,
    /// Objects carved from one full-size span.
    pub objects: u32,
    /// Pages of the class's first span: the fewest that hold one object and the metadata
    /// record. Each later span doubles the previous one, up to `span_pages`, so a class that is
    /// used a little touches one or two pages rather than a 64 KiB span's first and last page.
    pub first_span_pages: u32,
    /// Objects in a thread's first refill of the class: what fits in one page (at least one, at
    /// most a batch). Each later refill doubles it up to a batch, so a class that is used a
    /// little touches one page of objects rather than a whole batch (up to 32 KiB).
    pub first_fill: u32,
    /// Objects moved per refill or flush between a thread cache and the central list.
    pub batch: u32,
    /// Upper bound on the thread cache's capacity for this class, in objects.
    pub bin_limit: u32,
    /// Batches the central transfer cache holds for this class.
    pub transfer_slots: u32,
    /// `ceil(2^40 / size)`: divides a span offset by the size with a multiply.
    pub recip: u64,
}

/// Objects of `size` bytes that fit in a span of `pages` pages, after its metadata record.
const fn span_objects_of(size: usize, pages: usize) -> usize {
    (pages * PAGE - SPAN_META_RESERVE) / size
}

/// Objects of class `c` in a span of `pages` pages.
pub const fn span_objects(c: usize, pages: usize) -> usize {
    span_objects_of(class_size(c), pages)
}

/// The size in pages of class `c`'s span after one of `pages` pages: double, up to the
/// class's full span size.
pub const fn next_span_pages(c: usize, pages: usize) -> usize {
    let full = CLASSES[c].span_pages as usize;
    if pages * 2 < full {
        pages * 2
    } else {
        full
    }
}

const fn clamp(v: usize, lo: usize, hi: usize) -> usize {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Spans hold at least 8 objects and are at least 64 KiB.
const fn class_info(c: usize) -> ClassInfo {
    let size = class_size(c);
    let min_bytes = 8 * size + SPAN_META_RESERVE;
    let min_bytes = if min_bytes < 64 * 1024 {
        64 * 1024
    } else {
        min_bytes
    };
    let span_pages = min_bytes.div_ceil(PAGE);
    let objects = span_objects_of(size, span_pages);
    let first_span_pages = (size + SPAN_META_RESERVE).div_ceil(PAGE);
    let batch = clamp(32 * 1024 / size, 2, 32);
    let first_fill = clamp(PAGE / size, 1, batch);
    let bin_limit = clamp(512 * 1024 / size, 2 * batch, MAX_BIN_OBJECTS as usize);
    let transfer_slots = clamp(128 * 1024 / (batch * size), 2, MAX_TRANSFER_SLOTS);
    ClassInfo {
        size: size as u32,
        span_pages: span_pages as u32,
        objects: objects as u32,
        first_span_pages: first_span_pages as u32,
        first_fill: first_fill as u32,
        batch: batch as u32,
        bin_limit: bin_limit as u32,
        transfer_slots: transfer_slots as u32,
        recip: (1u64 << 40).div_ceil(size as u64),
    }
}

/// The table of every class's geometry, computed at compile time.
pub const CLASSES: [ClassInfo; NUM_CLASSES] = {
    let mut t = [ClassInfo {
        size: 0,
        span_pages: 0,
        objects: 0,
        first_span_pages: 0,
        first_fill: 0,
        batch: 0,
        bin_limit: 0,
        transfer_slots: 0,
        recip: 0,
    }; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = class_info(c);
        c += 1;
    }
    t
};

/// Splits a byte offset inside a span of class `c` into (object index, remainder) with a
/// multiply instead of a division. Exact for every offset inside a span (checked by a test).
#[inline]
pub fn split_offset(c: usize, offset: usize) -> (usize, usize) {
    let info = &CLASSES[c];
    let idx = ((offset as u64 * info.recip) >> 40) as usize;
    (idx, offset - idx * info.size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_increasing_multiples_of_16_up_to_32k() {
        for c in 0..NUM_CLASSES {
            assert_eq!(class_size(c) % 16, 0, "class {c}");
            if c > 0 {
                assert!(class_size(c) > class_size(c - 1));
            }
        }
        assert_eq!(class_size(NUM_CLASSES - 1), MAX_SMALL);
    }

    #[test]
    fn every_size_gets_the_smallest_fitting_class_and_waste_is_bounded() {
        let mut worst = 0.0f64;
        for size in 0..=MAX_SMALL {
            let c = size_to_class(size).unwrap();
            let cs = class_size(c);
            assert!(cs >= size, "size {size} class {c}");
            if c > 0 {
                assert!(
                    class_size(c - 1) < size.max(1),
                    "size {size} not in smallest class {c}"
                );
            }
            if size > 128 {
                let waste = (cs - size) as f64 / size as f64;
                assert!(waste <= 0.125, "size {size} -> {cs}: waste {waste}");
                worst = worst.max(waste);
            } else {
                assert!(cs - size.max(1) < 16);
            }
        }
        assert!(worst > 0.1, "the bound is tight, not vacuous: {worst}");
        assert_eq!(size_to_class(MAX_SMALL + 1), None);
        for size in 0..=LUT_MAX + 64 {
            assert_eq!(
                size_to_class(size),
                size_to_class_computed(size),
                "size {size}"
            );
        }
    }

    #[test]
    fn aligned_classes_are_aligned_and_deterministic() {
        for align_shift in 0..=16 {
            let align = 1usize << align_shift;
            for size in (0..=MAX_SMALL).step_by(7).chain([1, 4096, 4097, MAX_SMALL]) {
                match class_for(size, align) {
                    Some(c) => {
                        assert!(align <= MAX_SMALL_ALIGN);
                        assert!(class_size(c) >= size);
                        assert_eq!(
                            class_size(c) % align.max(16),
                            0,
                            "size {size} align {align}"
                        );
                        assert_eq!(class_for(size, align), Some(c));
                    }
                    None => assert!(
                        align > MAX_SMALL_ALIGN || size > MAX_SMALL,
                        "size {size} align {align}"
                    ),
                }
            }
        }
    }

    #[test]
    fn span_geometry_fits() {
        for (c, info) in CLASSES.iter().enumerate() {
            let span = info.span_pages as usize * PAGE;
            assert!(info.objects >= 7, "class {c}");
            assert!(info.objects as usize * info.size as usize + SPAN_META_RESERVE <= span);
            assert!(info.batch >= 2 && info.batch <= 32);
            assert!(info.bin_limit >= info.batch && info.bin_limit <= MAX_BIN_OBJECTS);
            assert!(info.transfer_slots >= 2);
        }
    }

    #[test]
    fn spans_start_small_and_double_to_full_size() {
        for (c, info) in CLASSES.iter().enumerate() {
            let first = info.first_span_pages as usize;
            // The first span is the smallest that holds an object: one page fewer holds none.
            assert!(span_objects(c, first) >= 1, "class {c}");
            assert!(
                first == 1 || (first - 1) * PAGE < info.size as usize + SPAN_META_RESERVE,
                "class {c}: first span of {first} pages is not the smallest"
            );
            let mut pages = first;
            let mut steps = 0;
            while pages < info.span_pages as usize {
                let next = next_span_pages(c, pages);
                assert!(
                    next > pages && next <= 2 * pages,
                    "class {c}: {pages} -> {next}"
                );
                assert!(span_objects(c, next) >= span_objects(c, pages));
                pages = next;
                steps += 1;
            }
            assert_eq!(pages, info.span_pages as usize, "class {c}");
            assert_eq!(
                next_span_pages(c, pages),
                pages,
                "full size is the last step"
            );
            assert!(
                steps <= 5,
                "class {c} takes {steps} spans to reach full size"
            );
            assert_eq!(span_objects(c, pages), info.objects as usize);
            // The first refill fits in a page, or is a single object.
            let fill = info.first_fill as usize;
            assert!(fill >= 1 && fill <= info.batch as usize);
            assert!(fill == 1 || fill * info.size as usize <= PAGE, "class {c}");
        }
        // Small classes start with one page; a 32 KiB class with one object and its record.
        assert_eq!(CLASSES[0].first_span_pages, 1);
        assert_eq!(CLASSES[NUM_CLASSES - 1].first_span_pages, 9);
        assert_eq!(CLASSES[31].first_fill, 4);
    }

    #[test]
    fn reciprocal_division_is_exact_inside_every_span() {
        for (c, info) in CLASSES.iter().enumerate() {
            let span = info.span_pages as usize * PAGE;
            for offset in 0..span {
                let (idx, rem) = split_offset(c, offset);
                let size = info.size as usize;
                assert_eq!(
                    (idx, rem),
                    (offset / size, offset % size),
                    "class {c} offset {offset}"
                );
            }
        }
    }
}
