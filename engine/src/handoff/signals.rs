//! What the agent page hears live: a change to a handed-off conversation, published after the
//! turn that made it is applied, and fanned out to every `GET /v1/agent/events` stream. Lossy by
//! design: a stream that falls behind is told to reload; it never blocks a turn.

use serde::Serialize;
use tokio::sync::{Notify, broadcast};

/// Events a slow stream may fall behind by before it is told to reload.
const BACKLOG: usize = 1024;

/// One change, as a server-sent event's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeskEvent {
    /// `handoff` (a conversation started waiting), `message` (a text in or out), `case`
    /// (claimed, assigned, snoozed, resolved, released, reopened, late), `viewing`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The contact.
    pub contact: String,
    /// The queue.
    pub queue: String,
    /// The case's state.
    pub state: &'static str,
    /// Who holds it.
    pub assignee: Option<String>,
    /// Who acted (viewing: who is looking).
    pub agent: Option<String>,
    /// Why it was handed off (on `handoff`).
    pub reason: Option<String>,
    /// Whether the viewer is typing (on `viewing`).
    pub typing: Option<bool>,
}

/// The fan-out, and the wake-up of the desk's clock (a new waiting conversation may be
/// assignable now).
#[derive(Debug)]
pub struct Signals {
    sender: broadcast::Sender<DeskEvent>,
    /// Woken when a conversation starts waiting, or capacity frees up.
    pub changed: Notify,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
            changed: Notify::new(),
        }
    }
}

impl Signals {
    /// Tells every stream; nobody listening is fine.
    pub fn publish(&self, event: DeskEvent) {
        let _ = self.sender.send(event);
    }

    /// A new stream's receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<DeskEvent> {
        self.sender.subscribe()
    }
}
