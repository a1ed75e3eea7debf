//! `freespace gen`: synthetic traces in the classic shapes, each fully determined by its seed.
//!
//! Invariant: every generated trace is well formed ([`crate::trace::Trace::check`] accepts it)
//! and the same shape, parameters and seed always give the same text.
//!
//! The shapes follow Wilson and Johnstone's program behaviours: a *ramp* accumulates data and
//! frees little, a *peak* builds a large structure, uses it, and frees most of it, over and over,
//! and a *plateau* builds up quickly and then holds a steady live set while it churns. *Random*
//! draws sizes and operations uniformly. *Fragment* is the coalesce-versus-compact example:
//! small and large blocks interleaved, every other one freed, then large requests that none of
//! the holes can hold.

use crate::mt19937::PyRandom;
use crate::trace::{write_text, Op, DEFAULT_ALIGN};

/// The trace shapes `freespace gen` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Steady growth: mostly allocations, a few early frees.
    Ramp,
    /// Repeated phases: build a structure, then free most of it.
    Peak,
    /// Quick build-up, then a steady live set with random replacement.
    Plateau,
    /// Uniformly random sizes and operations, with some reallocs.
    Random,
    /// Small and large blocks interleaved, every other one freed, then large requests.
    Fragment,
}

impl Shape {
    /// Every shape, in the order the help lists them.
    pub const ALL: [Shape; 5] = [
        Shape::Ramp,
        Shape::Peak,
        Shape::Plateau,
        Shape::Random,
        Shape::Fragment,
    ];

    /// The shape's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Ramp => "ramp",
            Shape::Peak => "peak",
            Shape::Plateau => "plateau",
            Shape::Random => "random",
            Shape::Fragment => "fragment",
        }
    }

    /// Parses a shape name.
    pub fn parse(text: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == text)
    }
}

/// Parameters of a generated trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// The shape.
    pub shape: Shape,
    /// The number of allocations (roughly; each shape uses it as its scale).
    pub allocs: usize,
    /// The smallest request in bytes.
    pub min_size: usize,
    /// The largest request in bytes.
    pub max_size: usize,
    /// The seed.
    pub seed: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            shape: Shape::Fragment,
            allocs: 1000,
            min_size: 16,
            max_size: 512,
            seed: 1,
        }
    }
}

/// Why the parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenError(pub String);

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GenError {}

/// A seeded source of integers and the set of live ids.
struct Builder {
    rng: PyRandom,
    ops: Vec<Op>,
    live: Vec<u64>,
    next_id: u64,
    min: usize,
    max: usize,
}

impl Builder {
    fn new(o: &GenOptions) -> Self {
        let key = [o.seed as u32, (o.seed >> 32) as u32];
        Builder {
            rng: PyRandom::from_key(&key),
            ops: Vec::new(),
            live: Vec::new(),
            next_id: 1,
            min: o.min_size,
            max: o.max_size,
        }
    }

    /// A uniform integer in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.rng.random() * (hi - lo + 1) as f64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random() < p
    }

    fn size(&mut self) -> usize {
        self.between(self.min, self.max)
    }

    fn alloc(&mut self, size: usize) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.ops.push(Op::Alloc {
            id,
            size,
            align: DEFAULT_ALIGN,
        });
        self.live.push(id);
        id
    }

    fn free_at(&mut self, index: usize) {
        let id = self.live.swap_remove(index);
        self.ops.push(Op::Free { id });
    }

    fn free_random(&mut self) {
        if !self.live.is_empty() {
            let i = self.between(0, self.live.len() - 1);
            self.free_at(i);
        }
    }
}

/// Generates the operations of a trace.
pub fn generate_ops(o: &GenOptions) -> Result<Vec<Op>, GenError> {
    if o.min_size == 0 || o.min_size > o.max_size {
        return Err(GenError(format!(
            "sizes must satisfy 1 <= min <= max, got min {} and max {}",
            o.min_size, o.max_size
        )));
    }
    if o.max_size > crate::trace::MAX_SIZE / 8 {
        return Err(GenError(format!(
            "max size {} is too large (at most {})",
            o.max_size,
            crate::trace::MAX_SIZE / 8
        )));
    }
    if o.allocs == 0 || o.allocs > 10_000_000 {
        return Err(GenError(format!(
            "allocations must be between 1 and 10000000, got {}",
            o.allocs
        )));
    }
    let mut b = Builder::new(o);
    match o.shape {
        Shape::Ramp => {
            // Nine allocations in ten survive: the live set grows steadily.
            for _ in 0..o.allocs {
                let s = b.size();
                b.alloc(s);
                if b.chance(0.1) {
                    b.free_random();
                }
            }
        }
        Shape::Peak => {
            // Phases of build-up, each followed by freeing about nine tenths of the structure.
            let phases = (o.allocs / 100).clamp(1, 10);
            let per_phase = o.allocs / phases;
            for phase in 0..phases {
                let count = if phase == phases - 1 {
                    o.allocs - per_phase * (phases - 1)
                } else {
                    per_phase
                };
                let start = b.live.len();
                for _ in 0..count {
                    let s = b.size();
                    b.alloc(s);
                }
                let mut i = start;
                while i < b.live.len() {
                    if b.chance(0.9) {
                        // Free in allocation order: `live` keeps that order past `start`.
                        let id = b.live.remove(i);
                        b.ops.push(Op::Free { id });
                    } else {
                        i += 1;
                    }
                }
            }
        }
        Shape::Plateau => {
            // A fifth of the allocations build the plateau; the rest replace live blocks.
            let build = (o.allocs / 5).max(1);
            for _ in 0..build {
                let s = b.size();
                b.alloc(s);
            }
            for _ in build..o.allocs {
                b.free_random();
                let s = b.size();
                b.alloc(s);
            }
        }
        Shape::Random => {
            let mut made = 0;
            while made < o.allocs {
                let roll = b.rng.random();
                if roll < 0.55 || b.live.is_empty() {
                    let s = b.size();
                    b.alloc(s);
                    made += 1;
                } else if roll < 0.9 {
                    b.free_random();
                } else {
                    let i = b.between(0, b.live.len() - 1);
                    let id = b.live[i];
                    let size = b.size();
                    b.ops.push(Op::Realloc { id, size });
                }
            }
        }
        Shape::Fragment => {
            // Interleave small blocks with a large one every eighth slot, free every other
            // one, then ask for blocks larger than any hole: 3/4 of the budget goes to the
            // interleaved phase, 1/4 to the late requests. Holes are single blocks of at most
            // max/2 bytes (their neighbours stay live), and the late requests are max bytes.
            let small_max = (o.min_size * 2).min(o.max_size);
            let large = (o.max_size / 2).max(o.min_size);
            let first = (o.allocs * 3 / 4).max(2);
            let mut ids = Vec::with_capacity(first);
            for i in 0..first {
                let s = if i % 8 == 7 {
                    large
                } else {
                    b.between(o.min_size, small_max)
                };
                ids.push(b.alloc(s));
            }
            for (i, id) in ids.iter().enumerate() {
                if i % 2 == 0 {
                    b.ops.push(Op::Free { id: *id });
                }
            }
            b.live = ids.iter().skip(1).step_by(2).copied().collect();
            for _ in first..o.allocs {
                b.alloc(o.max_size);
            }
        }
    }
    Ok(b.ops)
}

/// Generates a trace in the text format, with a comment header that records how it was made.
pub fn generate_text(o: &GenOptions) -> Result<String, GenError> {
    let ops = generate_ops(o)?;
    let header = vec![
        format!(
            "freespace gen {} --allocs {} --min {} --max {} --seed {}",
            o.shape.name(),
            o.allocs,
            o.min_size,
            o.max_size,
            o.seed
        ),
        "a ID SIZE [ALIGN] | f ID | r ID SIZE".to_string(),
    ];
    Ok(write_text(&header, &ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::read_trace;

    fn opts(shape: Shape, seed: u64) -> GenOptions {
        GenOptions {
            shape,
            allocs: 400,
            min_size: 16,
            max_size: 256,
            seed,
        }
    }

    #[test]
    fn every_shape_is_well_formed_and_reproducible() {
        for shape in Shape::ALL {
            let text = generate_text(&opts(shape, 7)).unwrap();
            let trace = read_trace("gen", text.as_bytes()).unwrap();
            assert_eq!(trace.allocations(), 400, "{shape:?}");
            assert_eq!(text, generate_text(&opts(shape, 7)).unwrap());
            for e in &trace.events {
                if let Op::Alloc { size, .. } | Op::Realloc { size, .. } = e.op {
                    assert!((16..=256).contains(&size), "{shape:?}: {size}");
                }
            }
        }
    }

    #[test]
    fn seeds_change_the_random_shapes() {
        for shape in [Shape::Ramp, Shape::Plateau, Shape::Random, Shape::Peak] {
            assert_ne!(
                generate_text(&opts(shape, 1)).unwrap(),
                generate_text(&opts(shape, 2)).unwrap(),
                "{shape:?}"
            );
        }
    }

    /// Live bytes at each step, to check the shapes have the profile they claim.
    fn live_profile(ops: &[Op]) -> Vec<usize> {
        let mut sizes = std::collections::HashMap::new();
        let mut live = 0usize;
        let mut out = Vec::new();
        for op in ops {
            match *op {
                Op::Alloc { id, size, .. } => {
                    sizes.insert(id, size);
                    live += size;
                }
                Op::Free { id } => live -= sizes.remove(&id).unwrap(),
                Op::Realloc { id, size } => {
                    live = live - sizes[&id] + size;
                    sizes.insert(id, size);
                }
            }
            out.push(live);
        }
        out
    }

    #[test]
    fn shapes_have_their_profiles() {
        let ramp = live_profile(&generate_ops(&opts(Shape::Ramp, 3)).unwrap());
        let n = ramp.len();
        assert!(ramp[n / 4] < ramp[n / 2] && ramp[n / 2] < ramp[n - 1]);

        let peak = live_profile(&generate_ops(&opts(Shape::Peak, 3)).unwrap());
        let top = *peak.iter().max().unwrap();
        assert!(*peak.last().unwrap() < top / 2, "peaks are torn down");

        let plateau = live_profile(&generate_ops(&opts(Shape::Plateau, 3)).unwrap());
        let n = plateau.len();
        let (lo, hi) = (plateau[n / 2] as f64, plateau[n - 1] as f64);
        assert!(
            (hi / lo - 1.0).abs() < 0.5,
            "plateau holds steady: {lo} vs {hi}"
        );
    }

    #[test]
    fn fragment_leaves_holes_smaller_than_the_late_requests() {
        let ops = generate_ops(&opts(Shape::Fragment, 1)).unwrap();
        let late = ops
            .iter()
            .rev()
            .take_while(|op| matches!(op, Op::Alloc { .. }))
            .count();
        assert_eq!(late, 100);
        let freed = ops
            .iter()
            .filter(|op| matches!(op, Op::Free { .. }))
            .count();
        assert_eq!(freed, 150);
        if let Op::Alloc { size, .. } = ops[ops.len() - 1] {
            assert_eq!(size, 256);
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut o = opts(Shape::Random, 1);
        o.min_size = 0;
        assert!(generate_ops(&o).is_err());
        o.min_size = 300;
        assert!(generate_ops(&o).is_err());
        let mut o = opts(Shape::Random, 1);
        o.allocs = 0;
        assert!(generate_ops(&o).is_err());
    }
}
