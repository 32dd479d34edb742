//! Host-side bindings generated from `plugins/sdk/wit/v0.1.0`.
//!
//! The `host` world carries every import once; each plugin world reuses those modules, so one
//! implementation of the imports serves all plugin kinds.

#![allow(missing_docs)]

/// The imports shared by every world, and the shared `types` interface.
pub mod host {
    wasmtime::component::bindgen!({
        path: "../plugins/sdk/wit/v0.1.0",
        world: "host",
        imports: {
            "smsflow:plugin/http.send": async,
        },
    });
}

/// The `classifier` world.
pub mod classifier {
    wasmtime::component::bindgen!({
        path: "../plugins/sdk/wit/v0.1.0",
        world: "classifier",
        exports: { default: async },
        with: {
            "smsflow:plugin": super::host::smsflow::plugin,
        },
    });
}

/// The `connector` world.
pub mod connector {
    wasmtime::component::bindgen!({
        path: "../plugins/sdk/wit/v0.1.0",
        world: "connector",
        exports: { default: async },
        with: {
            "smsflow:plugin": super::host::smsflow::plugin,
        },
    });
}

/// The `reply-generator` world.
pub mod reply_generator {
    wasmtime::component::bindgen!({
        path: "../plugins/sdk/wit/v0.1.0",
        world: "reply-generator",
        exports: { default: async },
        with: {
            "smsflow:plugin": super::host::smsflow::plugin,
        },
    });
}
