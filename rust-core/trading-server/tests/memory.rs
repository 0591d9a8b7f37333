//! Heap per bar of a streaming session (`docs/GRPC.md`, limits): a session fed 100,000 bars
//! through the exactly-once layer, the heap it holds counted by a counting allocator. The
//! figure is printed (`--nocapture`) and bounded, so a regression is seen where it happens.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use chan_core::{Bar, EngineConfig};
use trading_server::pb;
use trading_server::sessions::SessionState;

struct Counting;

static CURRENT: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CURRENT.fetch_add(layout.size().cast_signed(), Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size().cast_signed(), Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CURRENT.fetch_add(
            new_size.cast_signed() - layout.size().cast_signed(),
            Relaxed,
        );
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A random walk with a bar every minute (a small xorshift: no dependency).
fn walk(n: usize) -> Vec<Bar> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut price = 100.0;
    (0..n)
        .map(|i| {
            let open = price;
            price = (price + (next() - 0.5) * 2.0).max(1.0);
            let (hi, lo) = (open.max(price) + next(), open.min(price) - next());
            Bar::new(
                i64::try_from(i).unwrap() * 60_000,
                open,
                hi,
                lo.max(0.5),
                price,
                1.0,
            )
        })
        .collect()
}

/// Bytes the session holds per bar after `n` bars.
fn bytes_per_bar(n: usize, window: usize, with_macd: bool) -> f64 {
    let bars = walk(n);
    let before = CURRENT.load(Relaxed);
    let mut s =
        SessionState::new("M/1m".into(), EngineConfig::default(), with_macd, window).unwrap();
    for (i, b) in bars.iter().enumerate() {
        let m = pb::BarMessage {
            seq: i as u64 + 1,
            op: pb::Op::Append as i32,
            bar: Some(pb::Bar {
                time: b.time,
                open: b.open,
                high: b.high,
                low: b.low,
                close: b.close,
                volume: b.volume,
            }),
        };
        let _ = s.handle(&m);
    }
    let held = CURRENT.load(Relaxed) - before;
    assert_eq!(s.session().bars(), n);
    drop(s);
    held as f64 / n as f64
}

#[test]
fn heap_per_bar_of_a_streaming_session() {
    // One test in this binary: the counter sees no other thread's allocations.
    let n = 100_000;
    let default = bytes_per_bar(n, 256, false);
    let macd = bytes_per_bar(n, 256, true);
    let old_window = bytes_per_bar(n, 4096, false);
    eprintln!(
        "heap per bar, {n} bars: {default:.1} B (replay_window 256), {macd:.1} B (with MACD \
         series), {old_window:.1} B (replay_window 4096)"
    );
    // About 44 B/bar here (times and MACD histogram 16 B, fractals, pens, growth slack); the
    // old default window of 4096 answers made it about 66 B/bar.
    assert!(default < 55.0, "{default:.1} B/bar");
    assert!(default < old_window);
}
