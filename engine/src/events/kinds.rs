//! The events smsflow reports, each with one payload shape, and the `[[webhooks]]` entries
//! that subscribe to them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::sms::DeliveryState;

/// An event type, as `[[webhooks]] events` and the body's `type` name it. A misspelled
/// subscription is refused when the config is read, listing these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// An inbound text was acknowledged.
    #[serde(rename = "message.received")]
    MessageReceived,
    /// A provider reported a delivery state.
    #[serde(rename = "message.status")]
    MessageStatus,
    /// A conversation went to a human queue.
    #[serde(rename = "conversation.handoff")]
    ConversationHandoff,
    /// A contact opted out (a keyword, or the provider's report).
    #[serde(rename = "contact.opted_out")]
    ContactOptedOut,
    /// A run ended with an outcome.
    #[serde(rename = "conversion")]
    Conversion,
    /// A handed-off conversation missed a service-level target.
    #[serde(rename = "conversation.sla_breached")]
    ConversationSlaBreached,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 6] = [
        Self::MessageReceived,
        Self::MessageStatus,
        Self::ConversationHandoff,
        Self::ContactOptedOut,
        Self::Conversion,
        Self::ConversationSlaBreached,
    ];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageReceived => "message.received",
            Self::MessageStatus => "message.status",
            Self::ConversationHandoff => "conversation.handoff",
            Self::ContactOptedOut => "contact.opted_out",
            Self::Conversion => "conversion",
            Self::ConversationSlaBreached => "conversation.sla_breached",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not an event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an event type: write one of message.received, message.status, conversation.handoff, contact.opted_out, conversion, conversation.sla_breached"
)]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownEventKind(text.to_owned()))
    }
}

/// Where an opt-out came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptOutSource {
    /// The contact texted STOP (or another opt-out keyword or phrase).
    Keyword,
    /// The provider reported the number opted out with the carrier (Twilio 21610).
    Provider,
}

/// Where in a conversation an event happened: every event that belongs to a run carries it
/// (flattened into its `data`), so a receiver can attribute it without asking back.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunContext {
    /// The conversation: the contact's number (with our number, its key).
    pub conversation: Option<String>,
    /// The run's flow.
    pub flow: Option<String>,
    /// The step it was at.
    pub step: Option<String>,
    /// The A/B variant the run got, if its flow has a split.
    pub variant: Option<String>,
    /// The campaign that started the run, or the flow's campaign source.
    pub campaign: Option<String>,
}

impl RunContext {
    /// The context of `conversation`'s current run, at `step`.
    pub fn of(
        conversation: &crate::store::conversations::Conversation,
        step: Option<&str>,
    ) -> Self {
        Self {
            conversation: Some(conversation.contact.clone()),
            flow: conversation.flow.as_ref().map(|flow| flow.id.clone()),
            step: step.map(str::to_owned),
            variant: conversation.fields.get("variant").cloned(),
            campaign: conversation.campaign.clone(),
        }
    }

    /// The context of the run that queued `message`.
    pub fn of_message(message: &crate::store::outbox::OutboundMessage) -> Self {
        Self {
            conversation: Some(message.to.clone()),
            flow: message.flow.clone(),
            step: message.step.clone(),
            variant: message.variant.clone(),
            campaign: message.campaign.clone(),
        }
    }
}

/// An event and its payload: the body's `data`, one shape per type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EngineEvent {
    /// `message.received`.
    MessageReceived {
        /// The provider.
        provider: String,
        /// The provider's message id.
        message_id: String,
        /// The contact.
        from: String,
        /// Our number.
        to: String,
        /// The text.
        body: String,
        /// When it was accepted, RFC 3339.
        received_at: String,
        /// The contact's locale, when known.
        locale: Option<String>,
        /// The contact's consent for the conversation's program: `opted_in`, `opted_out` or
        /// `unknown` (after this text's own keyword, if it was one).
        consent: &'static str,
        /// The conversation's state when the text came: `idle`, `waiting`, `handed_off`,
        /// `ended`.
        conversation_state: &'static str,
        /// The run it came into.
        #[serde(flatten)]
        run: RunContext,
    },
    /// `message.status`.
    MessageStatus {
        /// The provider.
        provider: String,
        /// The provider's id for the outbound text.
        provider_message_id: String,
        /// The reported state.
        status: DeliveryState,
        /// The provider's error code, when it gave one.
        error_code: Option<String>,
        /// The run that sent the text.
        #[serde(flatten)]
        run: RunContext,
    },
    /// `conversation.handoff`.
    ConversationHandoff {
        /// Our number.
        our_number: String,
        /// The contact.
        contact: String,
        /// The run handed off.
        #[serde(flatten)]
        run: RunContext,
        /// The queue.
        queue: String,
        /// Why.
        reason: String,
    },
    /// `contact.opted_out`.
    ContactOptedOut {
        /// The contact.
        phone: String,
        /// The program opted out of (`*`: all).
        program: String,
        /// Where the opt-out came from.
        source: OptOutSource,
        /// The contact's text (keyword) or the provider's words (provider).
        detail: String,
    },
    /// `conversion`.
    Conversion {
        /// Our number.
        our_number: String,
        /// The contact.
        contact: String,
        /// The run: its flow, the end step, the variant and campaign.
        #[serde(flatten)]
        run: RunContext,
        /// The run's outcome.
        outcome: String,
    },
    /// `conversation.sla_breached`.
    ConversationSlaBreached {
        /// Our number.
        our_number: String,
        /// The contact.
        contact: String,
        /// The queue it was in when the target passed.
        queue: String,
        /// The missed target: `first_response`, `next_response` or `resolution`.
        sla: String,
        /// Who holds it, if anyone.
        assignee: Option<String>,
        /// The queue a breach moved it to, if the queue routes breaches.
        moved_to: Option<String>,
    },
}

impl EngineEvent {
    /// Its type.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::MessageReceived { .. } => EventKind::MessageReceived,
            Self::MessageStatus { .. } => EventKind::MessageStatus,
            Self::ConversationHandoff { .. } => EventKind::ConversationHandoff,
            Self::ContactOptedOut { .. } => EventKind::ContactOptedOut,
            Self::Conversion { .. } => EventKind::Conversion,
            Self::ConversationSlaBreached { .. } => EventKind::ConversationSlaBreached,
        }
    }

    /// Its payload.
    pub fn data(&self) -> serde_json::Value {
        // A derived Serialize of plain strings and enums cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// One `[[webhooks]]` entry of `smsflow.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// Where events are posted.
    pub url: String,
    /// The signing secret, `whsec_<base64>`.
    pub secret: String,
    /// The event types sent there; all when empty.
    #[serde(default)]
    pub events: Vec<EventKind>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelled_subscription_is_refused_with_the_valid_names() {
        let error = toml::from_str::<WebhookEndpoint>(
            "url = \"http://x\"\nsecret = \"whsec_x\"\nevents = [\"message.recieved\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("message.recieved"), "{error}");
        assert!(error.contains("message.received"), "{error}");
        assert!(error.contains("contact.opted_out"), "{error}");
    }

    #[test]
    fn kinds_read_back_from_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!("conversions".parse::<EventKind>().is_err());
    }

    #[test]
    fn an_opt_out_has_one_shape_whatever_its_source() {
        let keyword = EngineEvent::ContactOptedOut {
            phone: "+12125550100".into(),
            program: "*".into(),
            source: OptOutSource::Keyword,
            detail: "STOP".into(),
        };
        let provider = EngineEvent::ContactOptedOut {
            phone: "+12125550100".into(),
            program: "*".into(),
            source: OptOutSource::Provider,
            detail: "21610".into(),
        };
        let keys = |event: &EngineEvent| {
            let mut keys: Vec<String> = event.data().as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&keyword), keys(&provider));
        assert_eq!(keyword.data()["source"], "keyword");
        assert_eq!(keyword.kind(), EventKind::ContactOptedOut);
    }
}
