//! Links the wasm build with a 64 KiB stack instead of the linker's 1 MiB default.
//!
//! The classifier does not recurse and needs a few KiB; a 1 MiB stack made the instance's
//! memory 17 pages, which the host scans for pages to reset after every call (BENCHMARKS.md).
//! With the stack first in memory, as Rust lays it out for wasm32, overflowing it traps.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=65536");
    }
}
