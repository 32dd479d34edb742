//! An allocator for plugins whose memory need is small: [`PerCall`].
//!
//! The host runs every call in a fresh instance and throws the instance away after it, so a
//! plugin never needs memory back for a later call. The standard library's allocator does not
//! know that: its first allocation in every fresh instance grows the linear memory by a page,
//! even when the memory the module starts with has room to spare, and the host pays for the
//! growth twice (it makes the page accessible, then makes it inaccessible again before the
//! next instance), about a third of a small classifier's call (see BENCHMARKS.md).
//!
//! [`PerCall`] hands out memory from the end of the module's data up, in the memory the module
//! already has, and grows it only when that runs out. Freeing the most recent allocation takes
//! it back (a `Vec` that grows in place, a `String` built and dropped); anything else is left
//! until the instance goes. So it suits a plugin whose allocations in one call add up to little
//! (a classifier of one text); one that builds and drops large values many times in a call
//! (parsing big JSON bodies) should keep the standard allocator.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: smsflow_plugin_sdk::alloc::PerCall = smsflow_plugin_sdk::alloc::PerCall::new();
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::Cell;

/// The WebAssembly page size.
const PAGE: usize = 64 << 10;

unsafe extern "C" {
    /// Where the linker put the end of the module's data (and its stack): the heap starts here.
    static __heap_base: u8;
}

/// A bump allocator over the instance's linear memory; see the module documentation.
#[derive(Debug)]
pub struct PerCall {
    /// The next free byte; 0 until the first allocation.
    next: Cell<usize>,
    /// The end of the linear memory, as far as this allocator has seen it.
    end: Cell<usize>,
}

// SAFETY: a plugin instance runs on one thread (wasm32-unknown-unknown has no threads), so the
// cells are never touched from two threads.
unsafe impl Sync for PerCall {}

impl PerCall {
    /// The allocator, with nothing handed out yet.
    pub const fn new() -> Self {
        Self {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    /// Makes `[.., stop)` part of the memory, growing it if needed.
    fn reach(&self, stop: usize) -> bool {
        if self.end.get() == 0 {
            self.end.set(wasm32::memory_size(0) * PAGE);
        }
        let end = self.end.get();
        if stop <= end {
            return true;
        }
        let pages = (stop - end).div_ceil(PAGE);
        if wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        self.end.set(end + pages * PAGE);
        true
    }

    /// Whether `ptr..ptr + size` is the most recent allocation.
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.next.get()
    }
}

impl Default for PerCall {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out lies in linear memory the instance owns (below `end`, which
// `reach` grows first), above the module's data, and no two live blocks overlap: `next` only
// moves back over a block that is being freed or resized and is the last one.
unsafe impl GlobalAlloc for PerCall {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.next.get() == 0 {
            self.next.set(&raw const __heap_base as usize);
        }
        let Some(start) = self.next.get().checked_next_multiple_of(layout.align()) else {
            return core::ptr::null_mut();
        };
        let Some(stop) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if !self.reach(stop) {
            return core::ptr::null_mut();
        }
        self.next.set(stop);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.is_last(ptr, layout.size()) {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.is_last(ptr, layout.size()) {
            let Some(stop) = (ptr as usize).checked_add(new_size) else {
                return core::ptr::null_mut();
            };
            if !self.reach(stop) {
                return core::ptr::null_mut();
            }
            self.next.set(stop);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: `new_layout` has a non-zero size, as `realloc`'s contract makes `new_size`.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, at least this long, and distinct (`moved` is new).
            unsafe { core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size)) };
        }
        moved
    }
}
