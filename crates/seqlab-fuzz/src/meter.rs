//! The allocation meter: a global allocator around [`std::alloc::System`] that, while armed on
//! a thread, counts the bytes that thread holds and their peak, and refuses any single request
//! above the limit. A loader must size its buffers by what its input can hold; a length field
//! of 2^60 that turns into `Vec::with_capacity` is a finding, even where the operating system
//! would have overcommitted it.
//!
//! A refused request aborts the process (Rust's allocation-error handler); before refusing, the
//! meter writes the current input to its crash file (see [`crate::run`]) and prints where.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The metered allocator. Install it in a test binary that fuzzes:
/// `#[global_allocator] static ALLOC: seqlab_fuzz::MeteredAlloc = seqlab_fuzz::MeteredAlloc;`
#[derive(Debug)]
pub struct MeteredAlloc;

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Byte limit while armed; 0 when not armed.
    static LIMIT: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// Set while the meter itself runs code that allocates (writing the crash file).
    static BYPASS: Cell<bool> = const { Cell::new(false) };
    /// Called with the refused size before a refused request aborts the process.
    static ON_REFUSE: Cell<Option<fn(usize)>> = const { Cell::new(None) };
}

/// Whether [`MeteredAlloc`] is this process's global allocator.
pub fn installed() -> bool {
    // Any allocation through the meter sets the flag; make one.
    drop(std::hint::black_box(Box::new(0u8)));
    INSTALLED.load(Ordering::Relaxed)
}

/// Arms the meter on this thread with a limit of `limit` bytes; `on_refuse` runs (allocations
/// inside it are not metered) before a request above the limit is refused.
pub fn arm(limit: usize, on_refuse: fn(usize)) {
    LIVE.with(|c| c.set(0));
    PEAK.with(|c| c.set(0));
    ON_REFUSE.with(|c| c.set(Some(on_refuse)));
    LIMIT.with(|c| c.set(limit.max(1)));
}

/// Disarms the meter on this thread; returns the peak of bytes held while armed.
pub fn disarm() -> usize {
    LIMIT.with(|c| c.set(0));
    PEAK.with(|c| c.get()).max(0) as usize
}

/// Records `size` more bytes held for a request of `request` bytes; false when the request
/// must be refused.
fn charge(size: usize, request: usize) -> bool {
    INSTALLED.store(true, Ordering::Relaxed);
    let limit = LIMIT.try_with(|c| c.get()).unwrap_or(0);
    if limit == 0 || BYPASS.try_with(|c| c.get()).unwrap_or(true) {
        return true;
    }
    if request > limit {
        BYPASS.with(|c| c.set(true));
        if let Some(f) = ON_REFUSE.with(|c| c.get()) {
            f(size);
        }
        BYPASS.with(|c| c.set(false));
        return false;
    }
    let live = LIVE.with(|c| {
        let v = c.get().saturating_add(size as isize);
        c.set(v);
        v
    });
    PEAK.with(|c| c.set(c.get().max(live)));
    true
}

fn release(size: usize) {
    if LIMIT.try_with(|c| c.get()).unwrap_or(0) != 0 {
        LIVE.with(|c| c.set(c.get().saturating_sub(size as isize)));
    }
}

// SAFETY: every request is forwarded unchanged to `System`; a refused request returns null,
// which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for MeteredAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !charge(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !charge(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        release(layout.size());
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !charge(new_size - layout.size(), new_size) {
            return std::ptr::null_mut();
        }
        if new_size < layout.size() {
            release(layout.size() - new_size);
        }
        // SAFETY: `ptr` came from `System` with `layout`; the caller guarantees `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
