//! Screening at ingress: what an inbound text means for consent, decided before any flow or
//! plugin sees it and before the provider hears 2xx.
//!
//! The pipeline ([`crate::ingress::accept`]) holds the conversation's lock while it reads the
//! [`ConversationFacts`] and applies the screening's ledger records with the text, so a
//! screening and a turn of the same conversation never interleave: every turn either
//! committed before the STOP (whose scope is then that turn's program) or runs after it (and
//! its texts meet the opt-out at the gate).

use std::sync::Arc;
use std::time::Duration;

use super::ledger::{Appending, ConsentClass};
use super::{Compliance, InboundFacts, Screening};
use crate::plugin::{Context, PluginCalls};
use crate::store::Batch;
use crate::store::conversations::ConversationKey;

/// What screening needs to know about the contact's conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFacts {
    /// The program of its latest run: what a plain STOP opts out of.
    pub program: Option<String>,
    /// That program's consent class.
    pub class: Option<ConsentClass>,
    /// When the contact was last asked whether a text meant "stop".
    pub revocation_asked_at_ms: Option<i64>,
}

/// The narrow read screening takes of conversations (implemented by the flow runtime).
pub trait FactsSource: Send + Sync {
    /// The facts of the conversation at `key`; the default facts when there is none.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    fn facts(&self, key: &ConversationKey) -> anyhow::Result<ConversationFacts>;
}

/// An inbound text to screen.
#[derive(Debug, Clone, Copy)]
pub struct ScreenedText<'a> {
    /// `<provider>:<message id>`: the ledger's evidence.
    pub message_id: &'a str,
    /// The contact.
    pub from: &'a str,
    /// The text.
    pub text: &'a str,
}

/// Screens inbound texts: the keyword rules, and the optional revocation classifier.
pub struct Screener {
    compliance: Arc<Compliance>,
    plugins: Option<Arc<dyn PluginCalls>>,
}

impl std::fmt::Debug for Screener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screener")
            .field(
                "classifier",
                &self.compliance.config().revocation_classifier,
            )
            .finish_non_exhaustive()
    }
}

impl Screener {
    /// A screener for `compliance`'s policy; `plugins` runs its revocation classifier, if the
    /// policy names one.
    pub fn new(compliance: Arc<Compliance>, plugins: Option<Arc<dyn PluginCalls>>) -> Self {
        Self {
            compliance,
            plugins,
        }
    }

    /// The policy and ledger.
    pub fn compliance(&self) -> &Arc<Compliance> {
        &self.compliance
    }

    /// Whether the revocation classifier hears "stop texting me" in `text`, within its budget
    /// (`revocation_classifier_timeout`). Run it before taking the conversation's lock: it
    /// needs no conversation state. A failing or slow plugin is logged and heard as no: the
    /// built-in rules still apply.
    pub async fn classifier_says_stop(&self, text: &str) -> bool {
        let config = self.compliance.config();
        let (Some(plugin), Some(plugins)) = (&config.revocation_classifier, &self.plugins) else {
            return false;
        };
        let context = Context::default();
        let call = plugins.classify(plugin, text, &context);
        match tokio::time::timeout(budget(config.revocation_classifier_timeout), call).await {
            Ok(Ok(intent)) => {
                config.revocation_intents.contains(&intent.name)
                    && intent.confidence >= config.revocation_min_confidence
            }
            Ok(Err(error)) => {
                tracing::warn!("revocation classifier `{plugin}` failed: {error}");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "revocation classifier `{plugin}` took longer than {:?}; the keyword rules decide alone",
                    config.revocation_classifier_timeout
                );
                false
            }
        }
    }

    /// Screens `text` for the conversation whose `facts` the caller read under its lock, adding
    /// the ledger records it makes to `batch` (see [`Compliance::screen`]).
    ///
    /// # Errors
    ///
    /// When the ledger cannot be read or a record encoded: the webhook must then fail.
    pub fn screen(
        &self,
        ledger: &mut Appending<'_>,
        batch: &mut Batch,
        text: ScreenedText<'_>,
        facts: &ConversationFacts,
        classifier_says_stop: bool,
        now_ms: i64,
    ) -> anyhow::Result<Screening> {
        self.compliance.screen(
            ledger,
            batch,
            &InboundFacts {
                message_id: text.message_id,
                from: text.from,
                text: text.text,
                program: facts.program.as_deref(),
                class: facts.class.unwrap_or(ConsentClass::Transactional),
                revocation_asked_at_ms: facts.revocation_asked_at_ms,
                classifier_says_stop,
                now_ms,
            },
        )
    }
}

/// The classifier's budget, never zero (a zero timeout would skip the call entirely).
fn budget(configured: Duration) -> Duration {
    configured.max(Duration::from_millis(1))
}
