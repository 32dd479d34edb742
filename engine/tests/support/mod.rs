//! Test components written in WAT, shared by the tests and the benchmarks.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

/// A bump allocator over the global `$heap`, exported as the canonical ABI's `cabi_realloc`
/// (the host asks it for room for what it passes in).
pub const REALLOC: &str = r#"(func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
  (local $ptr i32)
  (local.set $ptr
    (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get 2))))
  (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
  (local.get $ptr))"#;

/// A classifier core module: `intents()` returns an empty list, `classify` runs `body`, and a
/// return area at 200 holds `ok(intent { name: "confirm", confidence: 1.0 })`.
pub fn classifier_module(classify_body: &str) -> String {
    format!(
        r#"(module
          (memory (export "memory") 1)
          (global $heap (mut i32) (i32.const 4096))
          (data (i32.const 100) "confirm")
          (data (i32.const 200) "\00\00\00\00\64\00\00\00\07\00\00\00\00\00\80\3f\00\00\00\00\00\00\00\00")
          {REALLOC}
          (func (export "intents") (result i32) (i32.const 64))
          (func (export "classify")
            (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
            {classify_body}))"#
    )
}

/// Wraps a core module into a component of `world`, as `wasm-tools component new` does.
pub fn component(world: &str, core_wat: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk/wit/v0.1.0"))
        .unwrap();
    let world = resolve.select_world(&[package], Some(world)).unwrap();
    let mut module = wat::parse_str(core_wat).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}
