//! A conversation's stored state, its transcript entries and its timers.
//!
//! There is one conversation per (our number, contact number): every flow run with that contact
//! appends to the same transcript, so an agent taking over sees the whole history. The types
//! are the store's (it owns their codecs and key layouts); they are named here for flow code.

pub use crate::store::conversations::{
    Conversation, ConversationKey, FlowRef, MAX_INTENTS, Status,
};
pub use crate::store::handoffs::{CaseState, HandoffCase};
pub use crate::store::timers::{Timer, TimerKey, TimerRecord};
pub use crate::store::transcript::{Entry, Event};
