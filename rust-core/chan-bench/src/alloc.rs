//! A counting global allocator: wraps [`System`] and tracks the bytes in use and their peak.
//!
//! Two peaks are kept. `peak` treats a `realloc` as allocate-new, copy, free-old (the old and
//! new blocks are both counted at the moment of the move), so it is an upper bound. `peak_inplace`
//! counts a `realloc` as growing the block in place (what glibc does for large blocks via
//! `mremap`), a lower bound. The table reports `peak`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static PEAK_INPLACE: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn grow(by: usize) -> usize {
    let now = CURRENT.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
    now
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = grow(layout.size());
            PEAK_INPLACE.fetch_max(now, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = grow(layout.size());
            PEAK_INPLACE.fetch_max(now, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let old = layout.size();
            // Upper bound: both blocks alive at once.
            let both = grow(new_size);
            let now = CURRENT.fetch_sub(old, Relaxed) - old;
            debug_assert!(both >= now);
            PEAK_INPLACE.fetch_max(now, Relaxed);
        }
        p
    }
}

/// Bytes in use now.
pub fn current() -> usize {
    CURRENT.load(Relaxed)
}

/// Starts a new peak window at the bytes in use now; returns them (the baseline).
pub fn reset_peak() -> usize {
    let now = CURRENT.load(Relaxed);
    PEAK.store(now, Relaxed);
    PEAK_INPLACE.store(now, Relaxed);
    now
}

/// The peaks since the last [`reset_peak`]: (upper bound, in-place realloc).
pub fn peaks() -> (usize, usize) {
    (PEAK.load(Relaxed), PEAK_INPLACE.load(Relaxed))
}
