//! The four textbook fits over one explicit, doubly linked free list: [`FirstFit`],
//! [`NextFit`], [`BestFit`] and [`WorstFit`], each with a chosen [`ListOrder`].
//!
//! Invariant: the list holds exactly the free blocks the engine inserted, in the list order
//! (address or size order where the order is sorted), and `tail` is its last element. Searches
//! are O(n) and count every element they examine, as the textbook simulator does.

use super::policy::{ListOrder, Policy};
use crate::error::Corruption;
use crate::space::{Block, FreeLinks, NIL};

/// One explicit free list, shared by the four textbook fits.
#[derive(Clone, Copy, Debug)]
struct FreeList {
    head: Block,
    tail: Block,
    order: ListOrder,
    /// Where the next search of next fit starts ([`NIL`] = the head).
    rover: Block,
}

impl FreeList {
    const fn new(order: ListOrder) -> Self {
        FreeList {
            head: NIL,
            tail: NIL,
            order,
            rover: NIL,
        }
    }

    /// The element the new block goes in front of ([`NIL`] = append).
    fn position<L: FreeLinks>(&self, links: &L, block: Block, size: usize) -> Block {
        let goes_before: fn(Block, usize, Block, usize) -> bool = match self.order {
            ListOrder::Lifo => return self.head,
            ListOrder::Fifo => return NIL,
            ListOrder::AddressOrdered => |x, _, b, _| x > b,
            ListOrder::SizeAscending => |_, xs, _, s| xs > s,
            ListOrder::SizeDescending => |_, xs, _, s| xs < s,
        };
        let mut x = self.head;
        while x != NIL && !goes_before(x, links.block_size(x), block, size) {
            x = links.next(x);
        }
        x
    }

    fn insert<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize) {
        let before = self.position(links, block, size);
        let after = if before == NIL {
            self.tail
        } else {
            links.prev(before)
        };
        links.set_next(block, before);
        links.set_prev(block, after);
        if after == NIL {
            self.head = block;
        } else {
            links.set_next(after, block);
        }
        if before == NIL {
            self.tail = block;
        } else {
            links.set_prev(before, block);
        }
    }

    fn remove<L: FreeLinks>(&mut self, links: &mut L, block: Block) {
        let next = links.next(block);
        let prev = links.prev(block);
        if prev == NIL {
            self.head = next;
        } else {
            links.set_next(prev, next);
        }
        if next == NIL {
            self.tail = prev;
        } else {
            links.set_prev(next, prev);
        }
        if self.rover == block {
            self.rover = next;
        }
    }

    fn first_fit<L: FreeLinks>(&self, links: &L, size: usize, searched: &mut u64) -> Option<Block> {
        let mut x = self.head;
        while x != NIL {
            *searched += 1;
            if links.block_size(x) >= size {
                return Some(x);
            }
            x = links.next(x);
        }
        None
    }

    fn next_fit<L: FreeLinks>(
        &mut self,
        links: &L,
        size: usize,
        searched: &mut u64,
    ) -> Option<Block> {
        let start = if self.rover == NIL {
            self.head
        } else {
            self.rover
        };
        let mut x = start;
        while x != NIL {
            *searched += 1;
            if links.block_size(x) >= size {
                self.rover = x;
                return Some(x);
            }
            x = links.next(x);
            if x == NIL {
                x = self.head;
            }
            if x == start {
                break;
            }
        }
        None
    }

    /// Best fit (`better = <`) or worst fit (`better = >`): the whole list is searched and the
    /// first of equally good blocks wins.
    fn extreme_fit<L: FreeLinks>(
        &self,
        links: &L,
        size: usize,
        searched: &mut u64,
        better: fn(usize, usize) -> bool,
    ) -> Option<Block> {
        let mut best: Option<(Block, usize)> = None;
        let mut x = self.head;
        while x != NIL {
            *searched += 1;
            let s = links.block_size(x);
            if s >= size && best.map_or(true, |(_, bs)| better(s, bs)) {
                best = Some((x, s));
            }
            x = links.next(x);
        }
        best.map(|(b, _)| b)
    }

    fn verify<L: FreeLinks>(&self, links: &L) -> Result<(), Corruption> {
        let mut x = self.head;
        let mut last = NIL;
        while x != NIL {
            if last != NIL {
                let ok = match self.order {
                    ListOrder::AddressOrdered => last < x,
                    ListOrder::SizeAscending => links.block_size(last) <= links.block_size(x),
                    ListOrder::SizeDescending => links.block_size(last) >= links.block_size(x),
                    ListOrder::Lifo | ListOrder::Fifo => true,
                };
                if !ok {
                    return Err(Corruption::FreeListMismatch { addr: x.addr() });
                }
            }
            last = x;
            x = links.next(x);
        }
        if last != self.tail {
            return Err(Corruption::BadLink { addr: last.addr() });
        }
        if self.rover != NIL {
            // The rover must name a block on the list.
            let mut x = self.head;
            while x != NIL && x != self.rover {
                x = links.next(x);
            }
            if x == NIL {
                return Err(Corruption::BadLink {
                    addr: self.rover.addr(),
                });
            }
        }
        Ok(())
    }
}

macro_rules! list_fit {
    ($(#[$doc:meta])* $name:ident, $label:literal, |$l:ident, $links:ident, $size:ident, $searched:ident| $find:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            list: FreeList,
        }

        impl $name {
            /// A new, empty policy whose list is kept in `order`.
            pub const fn new(order: ListOrder) -> Self {
                $name { list: FreeList::new(order) }
            }

            /// The order of the free list.
            pub const fn order(&self) -> ListOrder {
                self.list.order
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new(ListOrder::AddressOrdered)
            }
        }

        // SAFETY: the list only ever names blocks the engine inserted and has not removed, and
        // `find` returns one of them with at least the requested size.
        unsafe impl Policy for $name {
            fn insert<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize) {
                self.list.insert(links, block, size)
            }
            fn remove<L: FreeLinks>(&mut self, links: &mut L, block: Block, _size: usize) {
                self.list.remove(links, block)
            }
            fn find<L: FreeLinks>(&mut self, $links: &L, $size: usize, $searched: &mut u64) -> Option<Block> {
                let $l = &mut self.list;
                $find
            }
            fn list_count(&self) -> usize {
                1
            }
            fn list_head(&self, _list: usize) -> Block {
                self.list.head
            }
            fn verify<L: FreeLinks>(&self, links: &L) -> Result<(), Corruption> {
                self.list.verify(links)
            }
            fn name(&self) -> &'static str {
                $label
            }
        }
    };
}

list_fit!(
    /// First fit: the first block on the list that is big enough. O(n).
    FirstFit, "first fit", |l, links, size, searched| l.first_fit(links, size, searched)
);
list_fit!(
    /// Next fit: first fit that starts where the last search stopped, wrapping around. O(n).
    ///
    /// When the block the search stopped at leaves the list, the next search starts at the
    /// block that followed it.
    NextFit, "next fit", |l, links, size, searched| l.next_fit(links, size, searched)
);
list_fit!(
    /// Best fit: the smallest block that is big enough; the whole list is searched. O(n).
    BestFit, "best fit", |l, links, size, searched| l.extreme_fit(links, size, searched, |a, b| a < b)
);
list_fit!(
    /// Worst fit: the largest block; the whole list is searched. O(n).
    WorstFit, "worst fit", |l, links, size, searched| l.extreme_fit(links, size, searched, |a, b| a > b)
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks as (size, next, prev) in a small array, addressed by index * 100.
    struct Table([(usize, Block, Block); 8]);

    /// The block at `addr` (no memory behind it).
    fn b(addr: usize) -> Block {
        Block::from_addr(addr)
    }

    impl FreeLinks for Table {
        fn block_size(&self, b: Block) -> usize {
            self.0[b.addr() / 100].0
        }
        fn next(&self, b: Block) -> Block {
            self.0[b.addr() / 100].1
        }
        fn prev(&self, b: Block) -> Block {
            self.0[b.addr() / 100].2
        }
        fn set_next(&mut self, b: Block, n: Block) {
            self.0[b.addr() / 100].1 = n
        }
        fn set_prev(&mut self, b: Block, p: Block) {
            self.0[b.addr() / 100].2 = p
        }
    }

    fn list_of<P: Policy>(p: &P, t: &Table) -> [usize; 8] {
        let mut out = [NIL.addr(); 8];
        let mut x = p.list_head(0);
        let mut i = 0;
        while x != NIL {
            out[i] = x.addr();
            i += 1;
            x = t.next(x);
        }
        out
    }

    fn table(sizes: [usize; 8]) -> Table {
        Table(sizes.map(|s| (s, NIL, NIL)))
    }

    #[test]
    fn orders_file_blocks_where_the_textbook_does() {
        let sizes = [10, 30, 20, 30, 0, 0, 0, 0];
        let order_of = |order| {
            let mut t = table(sizes);
            let mut p = FirstFit::new(order);
            for x in [200, 0, 300, 100] {
                let s = t.block_size(b(x));
                p.insert(&mut t, b(x), s);
            }
            p.verify(&t).unwrap();
            list_of(&p, &t)
        };
        assert_eq!(order_of(ListOrder::Lifo)[..4], [100, 300, 0, 200]);
        assert_eq!(order_of(ListOrder::Fifo)[..4], [200, 0, 300, 100]);
        assert_eq!(order_of(ListOrder::AddressOrdered)[..4], [0, 100, 200, 300]);
        assert_eq!(order_of(ListOrder::SizeAscending)[..4], [0, 200, 300, 100]);
        assert_eq!(order_of(ListOrder::SizeDescending)[..4], [300, 100, 200, 0]);
    }

    #[test]
    fn the_four_fits_pick_the_textbook_blocks_and_count_the_search() {
        // The chapter's list: 10, 30, 20 and a request of 15.
        let mut t = table([10, 30, 20, 0, 0, 0, 0, 0]);
        let mut first = FirstFit::new(ListOrder::AddressOrdered);
        let mut best = BestFit::new(ListOrder::AddressOrdered);
        let mut worst = WorstFit::new(ListOrder::AddressOrdered);
        let mut next = NextFit::new(ListOrder::AddressOrdered);
        for x in [0, 100, 200] {
            let s = t.block_size(b(x));
            first.insert(&mut t, b(x), s);
        }
        // The other policies read the same links, so they share the one list.
        best.list = first.list;
        worst.list = first.list;
        next.list = first.list;
        let mut n = 0;
        assert_eq!(first.find(&t, 15, &mut n), Some(b(100)));
        assert_eq!(n, 2);
        n = 0;
        assert_eq!(best.find(&t, 15, &mut n), Some(b(200)));
        assert_eq!(n, 3);
        n = 0;
        assert_eq!(worst.find(&t, 15, &mut n), Some(b(100)));
        assert_eq!(n, 3);
        n = 0;
        assert_eq!(best.find(&t, 31, &mut n), None);
        assert_eq!(n, 3);
        // Next fit resumes at the block it stopped at, and wraps.
        n = 0;
        assert_eq!(next.find(&t, 15, &mut n), Some(b(100)));
        assert_eq!(next.find(&t, 5, &mut n), Some(b(100)));
        next.remove(&mut t, b(100), 30);
        assert_eq!(next.find(&t, 5, &mut n), Some(b(200)));
        assert_eq!(next.find(&t, 10, &mut n), Some(b(200)));
        assert_eq!(next.find(&t, 25, &mut n), None);
    }

    #[test]
    fn verify_catches_a_broken_order() {
        let mut t = table([10, 30, 20, 0, 0, 0, 0, 0]);
        let mut p = BestFit::new(ListOrder::SizeAscending);
        for x in [0, 100, 200] {
            let s = t.block_size(b(x));
            p.insert(&mut t, b(x), s);
        }
        p.verify(&t).unwrap();
        t.0[1].0 = 5; // a size changed behind the list's back
        assert!(p.verify(&t).is_err());
    }
}
