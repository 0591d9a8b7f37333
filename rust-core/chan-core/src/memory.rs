//! Storage for the per-bar lists (times, MACD, fractals) and memory hints for them.
//!
//! A session grows its lists one bar at a time. Kept in one `Vec`, each list is copied whole
//! every time it doubles: tens of megabytes moved inside the append that crosses the boundary
//! (a latency spike for that bar) and, over a long stream, about one extra write of every item.
//! A [`Column`] grows in blocks instead: what is stored never moves, and the blocks a closed
//! session frees are reused as they are.
//!
//! A batch over millions of bars writes tens of bytes per bar into fresh memory, and on some
//! machines each first touch of a 4 KiB page costs microseconds. Asking Linux for transparent
//! huge pages on these buffers cuts the number of faults by up to 512. That request is a system
//! call (`madvise`, through `libc`), so it is made only with the crate's `os-memory-hints`
//! feature, which the server, the command line, the Python module and the benchmark turn on;
//! without it the core makes no call to the operating system.

use std::ops::{Index, Range};

/// Advises the kernel to back `v`'s spare capacity with huge pages (Linux with the
/// `os-memory-hints` feature, best effort; elsewhere nothing). Also for the programs' own
/// per-bar buffers (the command line's bars as read from a file).
pub fn prefer_huge_pages<T>(v: &Vec<T>) {
    #[cfg(all(feature = "os-memory-hints", target_os = "linux"))]
    {
        /// Buffers smaller than this gain nothing from the hint.
        const MIN_BYTES: usize = 2 << 20;
        const PAGE: usize = 4096;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        let start = (v.as_ptr() as usize).div_ceil(PAGE) * PAGE;
        let end = (v.as_ptr() as usize + bytes) / PAGE * PAGE;
        if bytes >= MIN_BYTES && end > start {
            // SAFETY: madvise only advises; the range lies inside `v`'s own allocation, which
            // stays alive and is not moved by this call. A refusal (EINVAL where THP is off)
            // is harmless, so its result is ignored.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(all(feature = "os-memory-hints", target_os = "linux")))]
    let _ = v;
}

/// Bytes per block: a few huge pages, small next to a long series.
const BLOCK_BYTES: usize = 8 << 20;

/// A list of per-bar values (列) that grows in blocks and never moves what it holds.
///
/// The first block grows like a `Vec` up to its limit (the capacity asked for, or one block),
/// so a short list costs no more than a `Vec`; after it come blocks of a fixed power-of-two
/// size, each allocated full-size once.
#[derive(Debug, Clone)]
pub struct Column<T> {
    /// Full blocks: the first holds `first` items, every other one `Self::BLOCK`.
    sealed: Vec<Vec<T>>,
    first: usize,
    /// Items in `sealed`.
    sealed_len: usize,
    /// The block being filled, sealed when full at `limit` items or more (the first block grows
    /// to its limit; the others are allocated at `BLOCK`).
    open: Vec<T>,
    limit: usize,
    /// An emptied block kept for the next one (a replaced bar at a block boundary would
    /// otherwise free and allocate a block on every call).
    spare: Vec<T>,
}

impl<T: Copy> Default for Column<T> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<T: Copy> Column<T> {
    /// Items per full block: a power of two, so a position splits with a shift and a mask.
    const BITS: u32 = (BLOCK_BYTES / std::mem::size_of::<T>()).ilog2();
    const BLOCK: usize = 1 << Self::BITS;

    /// An empty column.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty column whose first block holds `n` items without moving.
    pub fn with_capacity(n: usize) -> Self {
        let open = Vec::with_capacity(n);
        prefer_huge_pages(&open);
        Self {
            sealed: Vec::new(),
            first: 0,
            sealed_len: 0,
            open,
            limit: n.max(Self::BLOCK),
            spare: Vec::new(),
        }
    }

    /// Number of items.
    #[inline]
    pub fn len(&self) -> usize {
        self.sealed_len + self.open.len()
    }

    /// Whether the column holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `x`.
    #[inline]
    pub fn push(&mut self, x: T) {
        // One test on the hot path: the `Vec`'s own capacity test below is the same one.
        if self.open.len() == self.open.capacity() {
            self.make_room();
        }
        self.open.push(x);
    }

    /// Grows the first block like a `Vec` up to its limit, or starts a new block.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        let cap = self.open.capacity();
        if cap < self.limit {
            let want = (2 * cap).clamp(16, self.limit);
            self.open.reserve_exact(want - self.open.len());
            return;
        }
        let mut next = std::mem::take(&mut self.spare);
        if next.capacity() != Self::BLOCK {
            // `Vec::with_capacity` gives exactly the capacity asked for: every block after the
            // first holds `BLOCK` items when full.
            next = Vec::with_capacity(Self::BLOCK);
            prefer_huge_pages(&next);
        }
        let full = std::mem::replace(&mut self.open, next);
        if self.sealed.is_empty() {
            self.first = full.len();
        }
        self.sealed_len += full.len();
        self.sealed.push(full);
        self.limit = Self::BLOCK;
    }

    /// Keeps the first `n` items.
    ///
    /// # Panics
    ///
    /// Only if the column's own count of sealed items is wrong (a bug).
    pub fn truncate(&mut self, n: usize) {
        while n < self.sealed_len {
            let block = self.sealed.pop().expect("sealed items are in blocks");
            self.sealed_len -= block.len();
            // A block was sealed full.
            self.limit = block.len();
            let mut emptied = std::mem::replace(&mut self.open, block);
            emptied.clear();
            if emptied.capacity() == Self::BLOCK {
                self.spare = emptied;
            }
        }
        self.open.truncate(n - self.sealed_len);
    }

    /// The item at `i`, if any.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.sealed_len {
            return self.open.get(i - self.sealed_len);
        }
        let (b, k) = self.locate(i);
        self.sealed[b].get(k)
    }

    /// Block and offset of sealed position `i`.
    #[inline]
    fn locate(&self, i: usize) -> (usize, usize) {
        if i < self.first {
            (0, i)
        } else {
            let j = i - self.first;
            (1 + (j >> Self::BITS), j & (Self::BLOCK - 1))
        }
    }

    /// The last item, if any.
    pub fn last(&self) -> Option<&T> {
        self.open
            .last()
            .or_else(|| self.sealed.last().and_then(|b| b.last()))
    }

    /// The items of `r` as contiguous runs, in order (one run unless `r` crosses a block).
    ///
    /// # Panics
    ///
    /// When `r` is not a range of the column.
    pub fn slices(&self, r: Range<usize>) -> Slices<'_, T> {
        assert!(
            r.start <= r.end && r.end <= self.len(),
            "range {r:?} out of a column of {}",
            self.len()
        );
        Slices { column: self, r }
    }

    /// Every item, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.slices(0..self.len()).flatten()
    }

    /// The items of `r`, in order.
    pub fn range(&self, r: Range<usize>) -> impl Iterator<Item = &T> + '_ {
        self.slices(r).flatten()
    }

    /// A copy of every item.
    pub fn to_vec(&self) -> Vec<T> {
        let mut v = Vec::with_capacity(self.len());
        for s in self.slices(0..self.len()) {
            v.extend_from_slice(s);
        }
        v
    }
}

impl<T: Copy> Index<usize> for Column<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(x) => x,
            None => panic!("index {i} out of a column of {}", self.len()),
        }
    }
}

impl<T: Copy> FromIterator<T> for Column<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut c = Column::new();
        for x in items {
            c.push(x);
        }
        c
    }
}

/// Contiguous runs of a [`Column`] range; see [`Column::slices`].
pub struct Slices<'a, T> {
    column: &'a Column<T>,
    r: Range<usize>,
}

impl<'a, T: Copy> Iterator for Slices<'a, T> {
    type Item = &'a [T];

    #[inline]
    fn next(&mut self) -> Option<&'a [T]> {
        let Range { start, end } = self.r;
        if start >= end {
            return None;
        }
        let c = self.column;
        let run = if start >= c.sealed_len {
            &c.open[start - c.sealed_len..end - c.sealed_len]
        } else {
            let (b, k) = c.locate(start);
            let block = &c.sealed[b];
            &block[k..block.len().min(k + end - start)]
        };
        self.r.start += run.len();
        Some(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column with tiny blocks would need another type; u64 blocks hold 2^20 items, so the
    /// tests cross real block boundaries with a first block of a few items.
    fn filled(first: usize, n: usize) -> Column<u64> {
        let mut c = Column::with_capacity(first);
        c.limit = first;
        for i in 0..n as u64 {
            c.push(i * 3);
        }
        c
    }

    #[test]
    fn indexes_runs_and_truncates_across_blocks() {
        let block = Column::<u64>::BLOCK;
        let n = 2 * block + 10;
        let mut c = filled(5, n);
        assert_eq!(c.len(), n);
        // 5 + block + block sealed, 5 open.
        assert_eq!(c.sealed.len(), 3);
        for i in [
            0,
            4,
            5,
            6,
            block + 4,
            block + 5,
            2 * block + 4,
            2 * block + 5,
            n - 1,
        ] {
            assert_eq!(c[i], i as u64 * 3, "item {i}");
        }
        assert_eq!(c.get(n), None);
        let r = 3..block + 9;
        let runs: Vec<usize> = c.slices(r.clone()).map(<[u64]>::len).collect();
        assert_eq!(runs, vec![2, block, 4]);
        let got: Vec<u64> = c.range(r.clone()).copied().collect();
        let want: Vec<u64> = r.map(|i| i as u64 * 3).collect();
        assert_eq!(got, want);
        assert_eq!(c.to_vec().len(), n);
        assert!(c.iter().copied().eq((0..n as u64).map(|i| i * 3)));

        // Back across two boundaries, then forward again: the same items at the same places.
        c.truncate(4);
        assert_eq!(c.len(), 4);
        assert_eq!(c.last(), Some(&9));
        assert!(c.sealed.is_empty());
        for i in 4..n as u64 {
            c.push(i * 3);
        }
        assert!(c.iter().copied().eq((0..n as u64).map(|i| i * 3)));
        c.truncate(block + 5);
        assert_eq!(c.last(), Some(&((block as u64 + 4) * 3)));
        c.truncate(0);
        assert!(c.is_empty());
        assert_eq!(c.last(), None);
    }
}
