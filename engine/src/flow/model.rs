//! A flow file as written: serde types that mirror the TOML, keeping where each value sits in
//! the file so that every mistake can be reported at its line and column.
//!
//! These types accept any combination of step keys; [`super::compile`] turns them into the
//! typed [`super::Flow`], refusing keys that do not belong to a step's type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The whole flow file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// The flow's id, unique among the loaded flows; the API starts flows by it.
    pub id: Spanned<String>,
    /// The consent program the flow sends under.
    pub program: Spanned<String>,
    /// Transactional or marketing.
    pub kind: Spanned<FlowKind>,
    /// What the flow is for, for people reading the file or the API.
    #[serde(default)]
    pub description: String,
    /// The brand the texts speak for; a marketing flow must name it in its first text.
    #[serde(default)]
    pub brand: Option<Spanned<String>>,
    /// The locale of the default template variant.
    #[serde(default = "default_locale")]
    pub locale: String,
    /// The campaign source its runs carry (`{{campaign}}` in templates, `campaign` on its
    /// texts and events) when no campaign started them, so metrics can attribute by it.
    #[serde(default)]
    pub campaign: Option<Spanned<String>>,
    /// The step a new conversation starts at.
    pub start: Spanned<String>,
    /// How conversations on this flow begin.
    #[serde(default)]
    pub triggers: TriggersFile,
    /// Rules that hand a conversation to a person whatever step it is at.
    #[serde(default)]
    pub escalation: Option<Spanned<EscalationFile>>,
    /// Where a failing step goes when it names no `on_error` of its own.
    #[serde(default)]
    pub on_error: Option<Spanned<String>>,
    /// The steps, by name.
    pub steps: BTreeMap<String, Spanned<StepFile>>,
}

fn default_locale() -> String {
    "en".to_owned()
}

/// Whether a flow's texts are transactional or marketing, which decides the consent they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// Texts the contact expects from a relationship: appointments, orders, billing.
    Transactional,
    /// Offers and promotions: need marketing consent.
    Marketing,
}

/// The `[triggers]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggersFile {
    /// Inbound keywords (the first or only word of a text) that start the flow.
    #[serde(default)]
    pub keywords: Vec<Spanned<String>>,
    /// The flow takes any inbound text from a number with no active conversation.
    #[serde(default)]
    pub catch_all: bool,
    /// The flow can be started by the API (an outbound-initiated conversation).
    #[serde(default)]
    pub api: bool,
    /// Fields the API must give when it starts the flow.
    #[serde(default)]
    pub fields: Vec<Spanned<String>>,
}

/// The `[escalation]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationFile {
    /// The human queue escalated conversations go to.
    pub queue: String,
    /// Words that hand off at once, matched as whole words after normalising case.
    #[serde(default)]
    pub cue_words: Vec<String>,
    /// Topics that hand off at once: `money`, `access`, `legal`.
    #[serde(default)]
    pub topics: Vec<Spanned<String>>,
    /// Hand off when the contact asks the same question this many times (0: never).
    #[serde(default)]
    pub repeated_question: u32,
    /// Hand off when the conversation is still open this long after it started (`"2h"`).
    #[serde(default)]
    pub resolve_within: Option<Spanned<String>>,
}

/// One step, with every key any step type may have.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    /// The step's type.
    #[serde(rename = "type")]
    pub kind: Spanned<StepKind>,
    /// `send`, `handoff`, `end`: the text to send.
    pub text: Option<Spanned<LocalizedText>>,
    /// The step after this one.
    pub next: Option<Spanned<String>>,
    /// `wait`: how long to wait for a reply (`"24h"`, `"30m"`).
    pub timeout: Option<Spanned<String>>,
    /// `wait`: the step a reply goes to.
    pub on_reply: Option<Spanned<String>>,
    /// `wait`: the step taken when no reply came in time.
    pub on_timeout: Option<Spanned<String>>,
    /// `classify`, `connector`, `reply`: the plugin to call.
    pub plugin: Option<Spanned<String>>,
    /// `classify`: intent name to step.
    pub routes: Option<BTreeMap<String, Spanned<String>>>,
    /// `classify`, `reply`: below this confidence the default (or low-confidence) route is taken.
    pub min_confidence: Option<f32>,
    /// `classify`, `branch`: the step when nothing else matched.
    pub default: Option<Spanned<String>>,
    /// Plugin steps and `send`: where a failure goes.
    pub on_error: Option<Spanned<String>>,
    /// `reply`: where a draft below `min_confidence` goes.
    pub on_low_confidence: Option<Spanned<String>>,
    /// `branch`: the cases, tried in order.
    pub cases: Option<Vec<Spanned<CaseFile>>>,
    /// `connector`: `lookup` or `write`.
    pub operation: Option<ConnectorOperation>,
    /// `connector`: the entity (`order`, `contact`).
    pub entity: Option<Spanned<String>>,
    /// `connector` lookup: the key, a template (`"{{order_id}}"`).
    pub key: Option<Spanned<String>>,
    /// `connector` write and `set`: field name to template.
    pub fields: Option<BTreeMap<String, Spanned<String>>>,
    /// `connector`: the fields the call is expected to return, for the validator.
    pub outputs: Option<Vec<String>>,
    /// `handoff`: the human queue.
    pub queue: Option<Spanned<String>>,
    /// `handoff`: why, shown to the agent.
    pub reason: Option<String>,
    /// `split`: the variants.
    pub variants: Option<Vec<Spanned<VariantFile>>>,
    /// `end`: the outcome recorded for the funnel (`converted`, `confirmed`, ...).
    pub outcome: Option<String>,
    /// `end`: reaching it is a conversion in the funnel (counted, attributed to the run's
    /// campaign and variant).
    pub conversion: Option<bool>,
}

/// The type of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Send a text.
    Send,
    /// Wait for a reply, with a timeout.
    Wait,
    /// Classify the last reply with a classifier plugin and route by intent.
    Classify,
    /// Route on fields or on the last reply's text.
    Branch,
    /// Call a connector plugin and keep its result in the conversation's fields.
    Connector,
    /// Ask a reply-generator plugin for a draft and send it.
    Reply,
    /// Hand the conversation to a human queue.
    Handoff,
    /// Set fields.
    Set,
    /// A weighted A/B split, sticky per contact.
    Split,
    /// End the conversation.
    End,
}

impl StepKind {
    /// The keys a step of this type may have besides `type`.
    pub fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            StepKind::Send => &["text", "next", "on_error"],
            StepKind::Wait => &["timeout", "on_reply", "on_timeout"],
            StepKind::Classify => &["plugin", "routes", "min_confidence", "default", "on_error"],
            StepKind::Branch => &["cases", "default"],
            StepKind::Connector => &[
                "plugin",
                "operation",
                "entity",
                "key",
                "fields",
                "outputs",
                "next",
                "on_error",
            ],
            StepKind::Reply => &[
                "plugin",
                "min_confidence",
                "next",
                "on_low_confidence",
                "on_error",
            ],
            StepKind::Handoff => &["queue", "reason", "text"],
            StepKind::Set => &["fields", "next"],
            StepKind::Split => &["variants"],
            StepKind::End => &["text", "outcome", "conversion"],
        }
    }
}

impl StepFile {
    /// The keys this step has, besides `type`, with the byte range of each value when known.
    pub fn present_keys(&self) -> Vec<(&'static str, Option<std::ops::Range<usize>>)> {
        fn spanned<T>(
            name: &'static str,
            value: Option<&Spanned<T>>,
        ) -> Option<(&'static str, Option<std::ops::Range<usize>>)> {
            value.map(|value| (name, Some(value.span())))
        }
        fn plain<T>(
            name: &'static str,
            value: Option<&T>,
        ) -> Option<(&'static str, Option<std::ops::Range<usize>>)> {
            value.map(|_| (name, None))
        }
        [
            spanned("text", self.text.as_ref()),
            spanned("next", self.next.as_ref()),
            spanned("timeout", self.timeout.as_ref()),
            spanned("on_reply", self.on_reply.as_ref()),
            spanned("on_timeout", self.on_timeout.as_ref()),
            spanned("plugin", self.plugin.as_ref()),
            plain("routes", self.routes.as_ref()),
            plain("min_confidence", self.min_confidence.as_ref()),
            spanned("default", self.default.as_ref()),
            spanned("on_error", self.on_error.as_ref()),
            spanned("on_low_confidence", self.on_low_confidence.as_ref()),
            plain("cases", self.cases.as_ref()),
            plain("operation", self.operation.as_ref()),
            spanned("entity", self.entity.as_ref()),
            spanned("key", self.key.as_ref()),
            plain("fields", self.fields.as_ref()),
            plain("outputs", self.outputs.as_ref()),
            spanned("queue", self.queue.as_ref()),
            plain("reason", self.reason.as_ref()),
            plain("variants", self.variants.as_ref()),
            plain("outcome", self.outcome.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// A text with one variant per locale, or a single text for every locale.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LocalizedText {
    /// The same text for every locale.
    Single(String),
    /// Locale (`en`, `es`) to text.
    PerLocale(BTreeMap<String, String>),
}

/// A connector call's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorOperation {
    /// Read a record by key.
    Lookup,
    /// Write fields to a record.
    Write,
}

/// One case of a `branch` step: a condition and the step it leads to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// A field to test; without it the case tests the last reply's text.
    pub field: Option<String>,
    /// Equal to this (case-insensitive).
    pub equals: Option<String>,
    /// Equal to one of these (case-insensitive).
    pub one_of: Option<Vec<String>>,
    /// Contains one of these words or phrases (case-insensitive), not right after a negation.
    pub contains: Option<Vec<String>>,
    /// Contains none of these words or phrases: refines any other condition
    /// (`contains = ["paid"], not_contains = ["not yet"]`).
    pub not_contains: Option<Vec<String>>,
    /// A number at least this.
    pub at_least: Option<f64>,
    /// The field has a non-blank value (`true`) or has none (`false`).
    pub present: Option<bool>,
    /// Where the case leads.
    pub next: Spanned<String>,
}

/// One variant of a `split` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantFile {
    /// The variant's name, recorded in the conversation and in the funnel.
    pub name: String,
    /// Relative weight (the weights need not add to 100).
    pub weight: u32,
    /// Where the variant leads.
    pub next: Spanned<String>,
}
