//! Flows: the TOML flow language ([`model`], [`compile`]), its checks against the loaded plugins
//! ([`check`]) and the durable runtime that runs conversations on them ([`runtime`]). The
//! scenario runner flow authors test them with is [`crate::scenario`].
//!
//! A flow file is compiled into a [`Flow`]: typed steps whose routes all lead somewhere, whose
//! templates only use fields the flow defines. Conversations pin the [`Flow::version`] they
//! started on, so editing a file never changes a conversation already under way.

pub mod check;
pub mod compile;
pub mod conversation;
pub mod diagnostic;
pub mod graph;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod suggest;
pub mod unknown;
/// Message templates (a module of their own: canned replies use them too).
pub use crate::template;
pub mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub use self::diagnostic::{Diagnostic, Location};

pub use self::model::FlowKind;
use self::template::Template;

/// Steps one turn (a start, a reply, a timeout) may run before the runtime decides the flow is
/// stuck and hands the conversation off. `check` refuses a flow with a longer path between
/// waits, so in a checked flow only the flow-level `on_error` route (taken on failures, and not
/// followed by the checker) can run into it.
pub const MAX_STEPS_PER_TURN: usize = 100;

/// A compiled flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Unique among the loaded flows.
    pub id: String,
    /// The consent program it sends under.
    pub program: String,
    /// Where `program` is written, for the diagnostics about it.
    pub program_at: Location,
    /// Transactional or marketing.
    pub kind: FlowKind,
    /// What it is for.
    pub description: String,
    /// The brand its texts speak for.
    pub brand: Option<String>,
    /// The locale of the default template variants.
    pub locale: String,
    /// The campaign source its runs carry when no campaign started them.
    pub campaign: Option<String>,
    /// A hash of the file's text: conversations pin it.
    pub version: String,
    /// The file it came from.
    pub path: PathBuf,
    /// The file's text, kept so a pinned version can be rebuilt after a restart.
    pub source: String,
    /// The first step.
    pub start: String,
    /// How conversations begin.
    pub triggers: Triggers,
    /// Rules that hand off from any step.
    pub escalation: Option<Escalation>,
    /// Where failing steps without their own `on_error` go; `None` hands off.
    pub on_error: Option<String>,
    /// The steps by name.
    pub steps: BTreeMap<String, Step>,
    /// What `check` warns about without refusing the flow: branches that may misread a reply.
    pub warnings: Vec<Diagnostic>,
}

impl Flow {
    /// The weights of its first split, by variant (the A/B verdict's sample-ratio check);
    /// empty when it has none.
    pub fn split_weights(&self) -> Vec<(String, f64)> {
        self.steps
            .values()
            .find_map(|step| match &step.action {
                Action::Split { variants } => Some(
                    variants
                        .iter()
                        .map(|variant| (variant.name.clone(), f64::from(variant.weight)))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// How conversations on a flow begin.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// Normalised keywords (lower case, one word).
    pub keywords: Vec<String>,
    /// The flow takes inbound texts from numbers with no active conversation.
    pub catch_all: bool,
    /// The API may start it.
    pub api: bool,
    /// Fields the API start must give.
    pub fields: Vec<String>,
}

/// Escalation rules, checked on every inbound text of a conversation in this flow.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// The queue escalations go to.
    pub queue: String,
    /// Cue phrases, normalised into words.
    pub cue_words: Vec<Vec<String>>,
    /// Sensitive topics.
    pub topics: Vec<Topic>,
    /// Hand off when the same question comes this many times (0: never).
    pub repeated_question: u32,
    /// Hand off when still open this long after the start.
    pub resolve_within_ms: Option<i64>,
}

/// A sensitive topic that needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Refunds, charges, payments, disputes.
    Money,
    /// Passwords, locked accounts, logins.
    Access,
    /// Lawyers, lawsuits, courts.
    Legal,
}

impl Topic {
    /// The topic's name in flow files.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Money => "money",
            Topic::Access => "access",
            Topic::Legal => "legal",
        }
    }

    /// Phrases (English and Spanish) that signal the topic.
    pub fn phrases(self) -> &'static [&'static str] {
        match self {
            Topic::Money => &[
                "refund",
                "refunds",
                "chargeback",
                "charged",
                "overcharged",
                "double charged",
                "money back",
                "dispute",
                "billing",
                "fraud",
                "reembolso",
                "cobro",
                "me cobraron",
                "dinero",
            ],
            Topic::Access => &[
                "password",
                "locked out",
                "cant log in",
                "can t log in",
                "cannot log in",
                "login",
                "sign in",
                "hacked",
                "contrasena",
                "contraseña",
                "bloqueado",
                "bloqueada",
            ],
            Topic::Legal => &[
                "lawyer",
                "attorney",
                "sue",
                "lawsuit",
                "legal action",
                "court",
                "small claims",
                "abogado",
                "demanda",
            ],
        }
    }
}

/// One step of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its name.
    pub name: String,
    /// Where it is defined.
    pub at: Location,
    /// What it does.
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send a text.
    Send {
        /// The text.
        text: LocalizedTemplate,
        /// The next step; `None` ends the run here (the conversation stays open).
        next: Option<String>,
        /// Where a send that cannot be rendered goes.
        on_error: Option<String>,
    },
    /// Wait for a reply.
    Wait {
        /// How long.
        timeout_ms: i64,
        /// Where a reply goes.
        on_reply: String,
        /// Where the timeout goes.
        on_timeout: String,
    },
    /// Classify the last reply and route by intent.
    Classify {
        /// The classifier plugin.
        plugin: String,
        /// Intent to step.
        routes: BTreeMap<String, String>,
        /// Any other intent, or one below `min_confidence`.
        default: String,
        /// The lowest confidence a route is taken at.
        min_confidence: f32,
        /// Where a failing call goes.
        on_error: Option<String>,
    },
    /// Route on fields or text.
    Branch {
        /// Tried in order.
        cases: Vec<Case>,
        /// When no case matches.
        default: String,
    },
    /// Call a connector.
    Connector {
        /// The connector plugin.
        plugin: String,
        /// The entity.
        entity: String,
        /// Lookup or write.
        call: ConnectorAction,
        /// Fields the call is expected to return.
        outputs: Vec<String>,
        /// The next step.
        next: String,
        /// Where a failing call goes.
        on_error: Option<String>,
    },
    /// Ask a reply generator for a draft and send it.
    Reply {
        /// The reply-generator plugin.
        plugin: String,
        /// Drafts below this go to `on_low_confidence`.
        min_confidence: f32,
        /// The next step.
        next: String,
        /// Where an unsure draft goes; `None` hands off.
        on_low_confidence: Option<String>,
        /// Where a failing call goes.
        on_error: Option<String>,
    },
    /// Hand off to people.
    Handoff {
        /// The queue.
        queue: String,
        /// Why.
        reason: String,
        /// A text sent to the contact first.
        text: Option<LocalizedTemplate>,
    },
    /// Set fields.
    Set {
        /// Field name to template.
        fields: BTreeMap<String, Template>,
        /// The next step.
        next: String,
    },
    /// A/B split, sticky per contact.
    Split {
        /// The variants.
        variants: Vec<Variant>,
    },
    /// End the conversation.
    End {
        /// A last text.
        text: Option<LocalizedTemplate>,
        /// The outcome recorded.
        outcome: Option<String>,
        /// Reaching it is a conversion.
        conversion: bool,
    },
}

/// A connector call.
#[derive(Debug, Clone)]
pub enum ConnectorAction {
    /// Read a record.
    Lookup {
        /// The key, rendered from the conversation's fields.
        key: Template,
    },
    /// Write fields.
    Write {
        /// Field name to template.
        fields: BTreeMap<String, Template>,
    },
}

/// One case of a branch.
#[derive(Debug, Clone)]
pub struct Case {
    /// The field tested; `None` tests the last reply.
    pub field: Option<String>,
    /// The test.
    pub condition: Condition,
    /// Phrases that stop the case matching when the value contains any of them
    /// (`not_contains`), negated or not.
    pub except: Vec<Vec<String>>,
    /// Where it leads.
    pub next: String,
}

/// A branch test.
#[derive(Debug, Clone)]
pub enum Condition {
    /// The value, normalised, is one of these.
    OneOf(Vec<String>),
    /// The value's words contain one of these phrases, not right after a negation ("I haven't
    /// paid" does not contain `paid`; see [`words::contains_affirmed`]).
    Contains(Vec<Vec<String>>),
    /// The value is a number at least this.
    AtLeast(f64),
    /// The value is present and not blank (`true`), or not (`false`).
    Present(bool),
}

/// One variant of a split.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Its name.
    pub name: String,
    /// Its weight.
    pub weight: u32,
    /// Where it leads.
    pub next: String,
}

/// A template with a variant per locale.
#[derive(Debug, Clone)]
pub struct LocalizedTemplate {
    /// Locale to template.
    pub variants: BTreeMap<String, Template>,
    /// Where the text is written in the flow file (the `text` value).
    pub at: Location,
    /// The flow's locale, used when the contact's has no variant.
    pub default_locale: String,
}

impl LocalizedTemplate {
    /// The variant for `locale` (`es-MX` takes `es`), or the default one.
    pub fn for_locale(&self, locale: &str) -> Option<&Template> {
        self.variant(locale).map(|(_, template)| template)
    }

    /// The variant for `locale` as [`Self::for_locale`] finds it, with the locale it is for.
    pub fn variant(&self, locale: &str) -> Option<(&str, &Template)> {
        let language = locale.split(['-', '_']).next().unwrap_or(locale);
        [locale, language, self.default_locale.as_str()]
            .into_iter()
            .find_map(|key| self.variants.get_key_value(key))
            .map(|(key, template)| (key.as_str(), template))
    }
}

impl Action {
    /// The steps this one can lead to.
    pub fn targets(&self) -> Vec<&str> {
        let mut targets: Vec<&str> = Vec::new();
        match self {
            Action::Send { next, on_error, .. } => {
                targets.extend(next.as_deref());
                targets.extend(on_error.as_deref());
            }
            Action::Wait {
                on_reply,
                on_timeout,
                ..
            } => targets.extend([on_reply.as_str(), on_timeout.as_str()]),
            Action::Classify {
                routes,
                default,
                on_error,
                ..
            } => {
                targets.extend(routes.values().map(String::as_str));
                targets.push(default);
                targets.extend(on_error.as_deref());
            }
            Action::Branch { cases, default } => {
                targets.extend(cases.iter().map(|case| case.next.as_str()));
                targets.push(default);
            }
            Action::Connector { next, on_error, .. } => {
                targets.push(next);
                targets.extend(on_error.as_deref());
            }
            Action::Reply {
                next,
                on_low_confidence,
                on_error,
                ..
            } => {
                targets.push(next);
                targets.extend(on_low_confidence.as_deref());
                targets.extend(on_error.as_deref());
            }
            Action::Set { next, .. } => targets.push(next),
            Action::Split { variants } => {
                targets.extend(variants.iter().map(|variant| variant.next.as_str()));
            }
            Action::Handoff { .. } | Action::End { .. } => {}
        }
        targets
    }

    /// Every template the step renders.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Action::Send { text, .. } => text.variants.values().collect(),
            Action::Handoff { text, .. } | Action::End { text, .. } => text
                .iter()
                .flat_map(|text| text.variants.values())
                .collect(),
            Action::Set { fields, .. }
            | Action::Connector {
                call: ConnectorAction::Write { fields },
                ..
            } => fields.values().collect(),
            Action::Connector {
                call: ConnectorAction::Lookup { key },
                ..
            } => vec![key],
            _ => Vec::new(),
        }
    }

    /// The text the step sends, when it sends one of its own (a plugin's draft is not).
    pub fn text(&self) -> Option<&LocalizedTemplate> {
        match self {
            Action::Send { text, .. } => Some(text),
            Action::Handoff { text, .. } | Action::End { text, .. } => text.as_ref(),
            _ => None,
        }
    }

    /// The plugin the step calls.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Action::Classify { plugin, .. }
            | Action::Connector { plugin, .. }
            | Action::Reply { plugin, .. } => Some(plugin),
            _ => None,
        }
    }
}

impl Flow {
    /// Every field some part of the flow defines, plus the built-in ones.
    pub fn defined_fields(&self) -> BTreeSet<&str> {
        let mut fields: BTreeSet<&str> = compile::BUILTIN_FIELDS.iter().copied().collect();
        fields.extend(self.triggers.fields.iter().map(String::as_str));
        for step in self.steps.values() {
            match &step.action {
                Action::Set { fields: set, .. } => fields.extend(set.keys().map(String::as_str)),
                Action::Connector { outputs, .. } => {
                    fields.extend(outputs.iter().map(String::as_str));
                }
                _ => {}
            }
        }
        fields
    }

    /// The `send` steps that can be the first text of a conversation: those reached from the
    /// start before any other text goes out.
    pub fn first_sends(&self) -> Vec<&Step> {
        self.first_texts()
            .into_iter()
            .filter(|step| matches!(step.action, Action::Send { .. }))
            .collect()
    }

    /// The steps whose text can be the first one of a conversation (a `send`, or a `handoff` or
    /// `end` with a text): those reached from the start before any other text goes out.
    pub fn first_texts(&self) -> Vec<&Step> {
        let mut seen = BTreeSet::new();
        let mut pending = vec![self.start.as_str()];
        let mut first = Vec::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name) {
                continue;
            }
            let Some(step) = self.steps.get(name) else {
                continue;
            };
            if step.action.text().is_some() {
                first.push(step);
            } else {
                pending.extend(step.action.targets());
            }
        }
        first
    }
}
