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

/// How glibc's malloc treats large blocks during the runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heap {
    /// Large blocks (≥ 128 KiB) always come from fresh `mmap`s and go back on free, so every run
    /// pays the kernel's page faults and zeroing for its output, as a one-shot analysis does.
    /// Fixing the threshold also turns off glibc's adaptive threshold, which otherwise makes
    /// the figures depend on what ran before.
    Cold,
    /// Nothing is ever returned to the kernel: after the first run the pages are mapped already,
    /// as in a long-running process that analyses again and again. Figures without page faults.
    Warm,
    /// glibc's defaults (adaptive threshold): figures may vary with the order of the runs.
    System,
}

impl Heap {
    pub fn as_str(self) -> &'static str {
        match self {
            Heap::Cold => "cold",
            Heap::Warm => "warm",
            Heap::System => "system",
        }
    }
}

/// Applies the heap policy (glibc only; elsewhere a no-op that returns false).
pub fn set_heap(heap: Heap) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_MMAP_THRESHOLD: c_int = -3;
        const M_MMAP_MAX: c_int = -4;
        // SAFETY: mallopt only changes malloc tunables; called before the measured runs.
        unsafe {
            match heap {
                Heap::Cold => mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1,
                Heap::Warm => {
                    mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, c_int::MAX) == 1
                }
                Heap::System => true,
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        heap == Heap::System
    }
}
