//! Any node's ingress in cluster mode: a verified webhook or an API start is published to its
//! contact's partition, and answered 2xx only on the stream's acknowledgement (a quorum of
//! servers stored it). The provider's message id is the stream's dedup id, so a retry that
//! reaches another node is a duplicate at the stream, before any node sees it.
//!
//! A STOP is fenced before its 2xx too: its input sequence is written under the number in
//! `smsflow_optouts`, and a sender drops a text the owner cleared before it applied that input
//! (see [`super::send`]). The owner's gate stays the authority; the fence only covers the
//! moment between the 2xx and the owner applying the STOP.

use std::collections::BTreeMap;

use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ClusterError;
use super::bus::Bus;
use super::partition::{input_subject, partition_of, token};
use super::rpc::{self, Answer, Read};
use crate::compliance::keywords::{self, KeywordAction};
use crate::flow::runtime::{OnActive, StartRequest};
use crate::ingress::accept::{AcceptError, check_limits};
use crate::sms::InboundText;

/// One input of a contact, as the input stream carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// An inbound text, verified and parsed by the node that received it.
    Inbound {
        /// `twilio` or `telnyx`.
        provider: String,
        /// The provider's id for it.
        message_id: String,
        /// The contact.
        from: String,
        /// Our number.
        to: String,
        /// The text.
        body: String,
        /// Attached media.
        num_media: u32,
    },
    /// A flow start through the API.
    Start {
        /// The flow.
        flow: String,
        /// Our number.
        from: String,
        /// The contact.
        to: String,
        /// The run's fields.
        fields: BTreeMap<String, String>,
        /// The contact's locale.
        locale: Option<String>,
        /// What to do when the contact is in a run.
        on_active: OnActive,
        /// Makes the start happen once, also when replayed.
        event_id: String,
    },
    /// A consent record through the API (`POST /v1/consent`), validated by the node that
    /// received it: the request's body as sent, and when it was received (the record's time).
    Consent {
        /// The contact.
        contact: String,
        /// The request body (JSON).
        body: String,
        /// When it was received.
        at_ms: i64,
    },
}

impl Input {
    /// The contact it is about.
    pub fn contact(&self) -> &str {
        match self {
            Self::Inbound { from, .. } => from,
            Self::Start { to, .. } => to,
            Self::Consent { contact, .. } => contact,
        }
    }

    /// The inbound text it carries, if it is one.
    pub fn inbound_text(&self) -> Option<InboundText> {
        let Self::Inbound {
            provider,
            message_id,
            from,
            to,
            body,
            num_media,
        } = self
        else {
            return None;
        };
        Some(InboundText {
            provider: match provider.as_str() {
                "telnyx" => "telnyx",
                _ => "twilio",
            },
            message_id: message_id.clone(),
            from: from.clone(),
            to: to.clone(),
            body: body.clone(),
            num_media: *num_media,
        })
    }

    /// The start it carries, if it is one.
    pub fn start_request(&self) -> Option<StartRequest> {
        let Self::Start {
            flow,
            from,
            to,
            fields,
            locale,
            on_active,
            event_id,
        } = self
        else {
            return None;
        };
        Some(StartRequest {
            flow: flow.clone(),
            from: from.clone(),
            to: to.clone(),
            fields: fields.clone(),
            locale: locale.clone(),
            on_active: *on_active,
            event_id: Some(event_id.clone()),
            ..StartRequest::default()
        })
    }
}

/// Where an input went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Published {
    /// Its partition.
    pub partition: u32,
    /// Its sequence in the input stream.
    pub seq: u64,
    /// Whether the stream had it already (a retry).
    pub duplicate: bool,
}

/// The cluster's ingress.
#[derive(Debug, Clone)]
pub struct ClusterIngress {
    bus: Bus,
    partitions: u32,
}

impl ClusterIngress {
    /// Ingress over `bus` with `partitions`.
    pub fn new(bus: Bus, partitions: u32) -> Self {
        Self { bus, partitions }
    }

    /// Publishes an inbound text to its contact's partition; a STOP is fenced first.
    ///
    /// # Errors
    ///
    /// [`AcceptError::Refused`] for a text over a limit; [`AcceptError::Store`] when the stream
    /// did not acknowledge it: the provider should retry.
    pub async fn accept(&self, text: InboundText) -> Result<Published, AcceptError> {
        check_limits(&text)?;
        let opts_out = matches!(
            keywords::classify(&text.body, false),
            KeywordAction::OptOut { .. }
        );
        let id = format!("{}:{}", text.provider, text.message_id);
        let input = Input::Inbound {
            provider: text.provider.to_owned(),
            message_id: text.message_id,
            from: text.from,
            to: text.to,
            body: text.body,
            num_media: text.num_media,
        };
        let published = self
            .publish(&id, &input)
            .await
            .map_err(anyhow::Error::from)?;
        if opts_out {
            let seq = Bytes::from(published.seq.to_string());
            self.bus
                .optouts
                .put(token(input.contact()), seq)
                .await
                .map_err(|error| anyhow::Error::from(ClusterError::js("fencing a STOP", error)))?;
        }
        Ok(published)
    }

    /// Publishes a flow start to its contact's partition; the owner runs it.
    ///
    /// # Errors
    ///
    /// When the stream did not acknowledge it.
    pub async fn start(
        &self,
        request: StartRequest,
        event_id: String,
    ) -> Result<Published, ClusterError> {
        let input = Input::Start {
            flow: request.flow,
            from: request.from,
            to: request.to,
            fields: request.fields,
            locale: request.locale,
            on_active: request.on_active,
            event_id: event_id.clone(),
        };
        self.publish(&format!("start:{event_id}"), &input).await
    }

    /// Publishes a consent record to its contact's partition; its owner appends it to the
    /// ledger. `id` makes a retried request record once.
    ///
    /// # Errors
    ///
    /// When the stream did not acknowledge it.
    pub async fn consent(
        &self,
        contact: String,
        body: String,
        at_ms: i64,
        id: &str,
    ) -> Result<Published, ClusterError> {
        let input = Input::Consent {
            contact,
            body,
            at_ms,
        };
        self.publish(&format!("consent:{id}"), &input).await
    }

    /// Asks the owner of the contact's partition (see [`super::rpc`]).
    ///
    /// # Errors
    ///
    /// When no owner answers within [`rpc::READ_TIMEOUT`] (none holds the partition: a
    /// failover is in progress), or its answer does not decode.
    pub async fn read(&self, read: &Read) -> Result<Answer, ClusterError> {
        let partition = partition_of(read.contact(), self.partitions);
        let what = || format!("reading partition {partition}");
        let payload = serde_json::to_vec(read).map_err(|error| ClusterError::js(what(), error))?;
        let client = self.bus.js.client();
        let asked = client.request(rpc::subject(partition), Bytes::from(payload));
        let reply = tokio::time::timeout(rpc::READ_TIMEOUT, asked)
            .await
            .map_err(|_| {
                ClusterError::js(
                    what(),
                    "its owner did not answer in time (a failover in progress?); retry",
                )
            })?
            .map_err(|error| ClusterError::js(what(), error))?;
        serde_json::from_slice(&reply.payload).map_err(|error| ClusterError::js(what(), error))
    }

    async fn publish(&self, id: &str, input: &Input) -> Result<Published, ClusterError> {
        let partition = partition_of(input.contact(), self.partitions);
        let payload = serde_json::to_vec(input)
            .map_err(|error| ClusterError::js("encoding an input", error))?;
        let ack = self
            .bus
            .js
            .send_publish(
                input_subject(partition, input.contact()),
                Publish::build()
                    .payload(Bytes::from(payload))
                    .message_id(id),
            )
            .await
            .map_err(|error| ClusterError::js("publishing an input", error))?
            .await
            .map_err(|error| ClusterError::js("publishing an input", error))?;
        Ok(Published {
            partition,
            seq: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}
