//! The calls flows and compliance make, behind a trait: the host makes them in the sandbox,
//! unit tests answer them with stand-ins (no wasm, no store).

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;

use super::{CallError, ConnectorCall, Context, Draft, Intent, PluginHost};

/// Plugin calls, by plugin name.
pub trait PluginCalls: Send + Sync {
    /// [`PluginHost::classify`].
    fn classify<'a>(
        &'a self,
        plugin: &'a str,
        text: &'a str,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<Intent, CallError>>;

    /// [`PluginHost::draft_reply`].
    fn draft_reply<'a>(
        &'a self,
        plugin: &'a str,
        text: &'a str,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<Draft, CallError>>;

    /// [`PluginHost::connect`].
    fn connect<'a>(
        &'a self,
        plugin: &'a str,
        call: &'a ConnectorCall,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, CallError>>;
}

impl PluginCalls for PluginHost {
    fn classify<'a>(
        &'a self,
        plugin: &'a str,
        text: &'a str,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<Intent, CallError>> {
        Box::pin(PluginHost::classify(self, plugin, text, context))
    }

    fn draft_reply<'a>(
        &'a self,
        plugin: &'a str,
        text: &'a str,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<Draft, CallError>> {
        Box::pin(PluginHost::draft_reply(self, plugin, text, context))
    }

    fn connect<'a>(
        &'a self,
        plugin: &'a str,
        call: &'a ConnectorCall,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, CallError>> {
        Box::pin(PluginHost::connect(self, plugin, call))
    }
}
