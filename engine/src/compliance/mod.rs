//! Compliance in the host: inbound keywords (STOP, HELP, START), the consent ledger, and the
//! gate every outbound text passes on its one way to a provider (consent, quiet hours,
//! frequency caps, content rules).
//!
//! Two moments matter:
//!
//! - **Ingress.** [`Screener`] (through [`Compliance::screen`]) reads every inbound text before
//!   any flow or plugin sees it, under the conversation's lock, and records opt-outs and
//!   opt-ins in the ledger in the same batch as the text, before the webhook is acknowledged. Its [`Screening`] travels with the text through the inbox, so the runtime
//!   answers a STOP with one confirmation and never hands it to a flow.
//! - **Send.** [`gate::Gate::decide`] runs inside `outbound`'s delivery loop, right before the
//!   provider call, for every text whatever produced it (flow, plugin draft, agent, compliance
//!   reply). See [`crate::outbound`] for why nothing can go around it.

pub mod caps;
pub mod evidence;
pub mod gate;
pub mod keywords;
pub mod ledger;
pub mod quiet_hours;
mod screener;
pub mod texts;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::keywords::{Confidence, KeywordAction, OptOutScope};
use self::ledger::{
    ALL_PROGRAMS, Appending, ConsentClass, ConsentEvent, ConsentSource, ConsentState, Ledger,
    NewConsent,
};
pub use self::screener::{ConversationFacts, FactsSource, ScreenedText, Screener};
use self::texts::{Catalog, HostText};
use crate::store::Batch;
pub use crate::store::inbox::Screening;

/// The `[compliance]` section of `smsflow.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceConfig {
    /// What a plain STOP covers: the program of the conversation (`program`, the default) or
    /// every program on every number (`all`). STOPALL always covers every program.
    #[serde(default)]
    pub opt_out_scope: OptOutScopeSetting,
    /// What a text that may be a revocation ("Stop signs at the intersection?") does: `ask`
    /// once whether the contact wants to opt out (the default; a second such text within a day
    /// opts out), or `opt_out` at once.
    #[serde(default)]
    pub uncertain_revocation: UncertainPolicy,
    /// A classifier plugin consulted on every inbound text, besides the built-in rules. When
    /// it answers one of `revocation_intents` with at least `revocation_min_confidence`, a text
    /// the rules pass becomes a possible revocation and a possible one a certain one. It can
    /// only make the host more careful: it never undoes what the rules found, and a failing
    /// plugin changes nothing.
    #[serde(default)]
    pub revocation_classifier: Option<String>,
    /// The intents of `revocation_classifier` that mean "stop texting me".
    #[serde(default = "default_revocation_intents")]
    pub revocation_intents: Vec<String>,
    /// The confidence `revocation_classifier` needs.
    #[serde(default = "default_revocation_min_confidence")]
    pub revocation_min_confidence: f32,
    /// How long the webhook waits for `revocation_classifier`: it runs before the provider
    /// hears 2xx, so it gets a short budget of its own rather than the plugin's full timeout.
    /// A classifier that takes longer is heard as no (the built-in rules still apply).
    #[serde(default = "default_revocation_timeout", with = "duration_serde")]
    pub revocation_classifier_timeout: Duration,
    /// What to do with a number whose time zone is unknown: `block` (fail closed, the default)
    /// or `send` (treat it as inside the window).
    #[serde(default)]
    pub unknown_time_zone: UnknownZonePolicy,
    /// A quiet-hours policy pack (TOML) to use instead of the built-in one.
    #[serde(default)]
    pub quiet_hours_pack: Option<PathBuf>,
    /// How long a deferred text may wait for its window before it is dropped.
    #[serde(default = "default_deferred_expiry", with = "duration_serde")]
    pub deferred_expiry: Duration,
    /// The most segments one text may take.
    #[serde(default = "default_max_segments")]
    pub max_segments: u32,
    /// Frequency caps and the loop guard.
    #[serde(default)]
    pub caps: caps::CapsConfig,
    /// The brand of texts from a number no program has texted (a HELP from a stranger), and
    /// of programs with no brand of their own or in their flows. `smsflow check --config`
    /// refuses a config where some text would have no brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// How to reach a person (a phone number, an address), for `{contact}` in the HELP answer.
    #[serde(default)]
    pub contact: Option<String>,
    /// The host's texts per locale (`[compliance.texts.es]`), over the built-in en and es
    /// texts: see [`texts`].
    #[serde(default)]
    pub texts: BTreeMap<String, texts::HostTexts>,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            opt_out_scope: OptOutScopeSetting::default(),
            uncertain_revocation: UncertainPolicy::default(),
            revocation_classifier: None,
            revocation_intents: default_revocation_intents(),
            revocation_min_confidence: default_revocation_min_confidence(),
            revocation_classifier_timeout: default_revocation_timeout(),
            unknown_time_zone: UnknownZonePolicy::default(),
            quiet_hours_pack: None,
            deferred_expiry: default_deferred_expiry(),
            max_segments: default_max_segments(),
            caps: caps::CapsConfig::default(),
            brand: None,
            contact: None,
            texts: BTreeMap::new(),
        }
    }
}

fn default_revocation_intents() -> Vec<String> {
    vec![
        "opt_out".to_owned(),
        "stop".to_owned(),
        "unsubscribe".to_owned(),
    ]
}

fn default_revocation_min_confidence() -> f32 {
    0.8
}

fn default_revocation_timeout() -> Duration {
    // Twilio waits 15 s for a webhook answer; a keyword classifier answers in well under a
    // millisecond (BENCHMARKS.md), so 300 ms only cuts off a plugin that is stuck.
    Duration::from_millis(300)
}

fn default_deferred_expiry() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_max_segments() -> u32 {
    6
}

/// `humantime` durations (`"24h"`, `"90m"`) in the config.
pub(crate) mod duration_serde {
    use std::time::Duration;

    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// What a plain STOP covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptOutScopeSetting {
    /// The program of the conversation the STOP answers.
    #[default]
    Program,
    /// Every program.
    All,
}

/// What a possible revocation does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UncertainPolicy {
    /// Ask once; a second possible revocation within a day opts out.
    #[default]
    Ask,
    /// Opt out at once.
    OptOut,
}

/// What to do when a number's time zone is unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownZonePolicy {
    /// Do not send (fail closed).
    #[default]
    Block,
    /// Send as if inside the window.
    Send,
}

/// A messaging program's `[programs.<id>]` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// The brand its texts identify (defaults to the flows' `brand`).
    #[serde(default)]
    pub brand: Option<String>,
    /// The answer to HELP in English: brand, how to reach a person, how to opt out. The same
    /// as `help` in `[programs.<id>.texts.en]`, which wins when both are set.
    #[serde(default)]
    pub help: Option<String>,
    /// The host's texts for this program per locale, over `[compliance.texts]`.
    #[serde(default)]
    pub texts: BTreeMap<String, texts::HostTexts>,
    /// Sends at any hour. Only for texts the law does not restrict (a fraud alert, a
    /// one-time code); say why in a comment next to it.
    #[serde(default)]
    pub quiet_hours_exempt: bool,
    /// The message frequency promised at opt-in, recorded in the ledger.
    #[serde(default)]
    pub frequency: Option<String>,
    /// Attribution: a conversion goes to this program's text the contact clicked this
    /// recently (over `[measurement] click_window`).
    #[serde(default, with = "optional_duration")]
    pub click_window: Option<Duration>,
    /// Else to one delivered this recently (over `[measurement] delivery_window`).
    #[serde(default, with = "optional_duration")]
    pub delivery_window: Option<Duration>,
}

/// An optional duration written as text (`5d`).
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, out: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => out.serialize_str(&humantime::format_duration(*duration).to_string()),
            None => out.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(input)?
            .map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// What [`Compliance::screen`] needs to know about an inbound text.
#[derive(Debug, Clone)]
pub struct InboundFacts<'a> {
    /// The provider's message id (`<provider>:<id>`).
    pub message_id: &'a str,
    /// The contact.
    pub from: &'a str,
    /// The text.
    pub text: &'a str,
    /// The program of the contact's conversation, when there is one.
    pub program: Option<&'a str>,
    /// That program's consent class.
    pub class: ConsentClass,
    /// When we last asked whether a text was a revocation.
    pub revocation_asked_at_ms: Option<i64>,
    /// Whether the revocation classifier plugin heard "stop texting me".
    pub classifier_says_stop: bool,
    /// Now.
    pub now_ms: i64,
}

/// Ingress screening and the texts compliance sends.
#[derive(Debug, Clone)]
pub struct Compliance {
    config: ComplianceConfig,
    programs: BTreeMap<String, ProgramConfig>,
    catalog: Catalog,
    ledger: Ledger,
}

const ASK_AGAIN_AFTER_MS: i64 = 24 * 3600 * 1000;

impl Compliance {
    /// Compliance over `ledger` with the operator's policy.
    pub fn new(
        config: ComplianceConfig,
        programs: BTreeMap<String, ProgramConfig>,
        ledger: Ledger,
    ) -> Self {
        let catalog = catalog(&config, &programs);
        Self {
            config,
            programs,
            catalog,
            ledger,
        }
    }

    /// The host's texts.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The policy.
    pub fn config(&self) -> &ComplianceConfig {
        &self.config
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A program's configuration, when it has one.
    pub fn program(&self, program: &str) -> Option<&ProgramConfig> {
        self.programs.get(program)
    }

    /// Decides what an inbound text means for consent and adds the opt-outs and opt-ins it
    /// makes to `batch`, through `ledger`. The caller applies the batch with the inbound text
    /// and flushes before acknowledging the webhook. Screening the same message id twice (a
    /// provider's retry) records nothing new.
    ///
    /// # Errors
    ///
    /// When the ledger cannot be read or a record encoded: the webhook must then fail.
    pub fn screen(
        &self,
        ledger: &mut Appending<'_>,
        batch: &mut Batch,
        facts: &InboundFacts<'_>,
    ) -> anyhow::Result<Screening> {
        let scope_program = facts.program.unwrap_or(ALL_PROGRAMS);
        let opted_out = matches!(
            ledger.state(facts.from, scope_program, facts.class)?,
            ConsentState::OptedOut { .. }
        );
        let action = match keywords::classify(facts.text, opted_out) {
            KeywordAction::None if facts.classifier_says_stop => KeywordAction::Revocation {
                confidence: Confidence::Uncertain,
                phrase: keywords::normalize(facts.text),
            },
            KeywordAction::Revocation {
                confidence: Confidence::Uncertain,
                phrase,
            } if facts.classifier_says_stop => KeywordAction::Revocation {
                confidence: Confidence::Certain,
                phrase,
            },
            action => action,
        };
        let (scope, keyword) = match action {
            KeywordAction::None => return Ok(Screening::Pass),
            KeywordAction::Help { keyword } => {
                self.record(
                    ledger,
                    batch,
                    facts,
                    scope_program,
                    ConsentEvent::Help,
                    &keyword,
                )?;
                return Ok(Screening::Help {
                    program: facts.program.map(str::to_owned),
                });
            }
            KeywordAction::OptIn { keyword } => {
                // An opt-in restores the program the contact left (all of them after STOPALL
                // from a number with no conversation is still only that program: we ask no
                // more than was given).
                let program = facts.program.unwrap_or(ALL_PROGRAMS).to_owned();
                if program == ALL_PROGRAMS {
                    // No program to opt back in to: the text goes to the flows, which cannot
                    // send until a program has consent.
                    return Ok(Screening::Pass);
                }
                self.record(
                    ledger,
                    batch,
                    facts,
                    &program,
                    ConsentEvent::OptIn,
                    &keyword,
                )?;
                return Ok(Screening::OptedIn { program });
            }
            KeywordAction::OptOut { scope, keyword } => (scope, keyword),
            KeywordAction::Revocation {
                confidence: Confidence::Certain,
                ..
            } => (OptOutScope::Program, "REVOCATION".to_owned()),
            KeywordAction::Revocation {
                confidence: Confidence::Uncertain,
                ..
            } => {
                let asked_recently = facts
                    .revocation_asked_at_ms
                    .is_some_and(|at| facts.now_ms - at < ASK_AGAIN_AFTER_MS);
                if self.config.uncertain_revocation == UncertainPolicy::Ask && !asked_recently {
                    return Ok(Screening::AskRevocation {
                        program: facts.program.map(str::to_owned),
                    });
                }
                (OptOutScope::Program, "REVOCATION".to_owned())
            }
        };
        let program = match (scope, self.config.opt_out_scope, facts.program) {
            (OptOutScope::Program, OptOutScopeSetting::Program, Some(program)) => program,
            _ => ALL_PROGRAMS,
        };
        self.record(
            ledger,
            batch,
            facts,
            program,
            ConsentEvent::OptOut,
            &keyword,
        )?;
        Ok(Screening::OptedOut {
            program: program.to_owned(),
            keyword,
            confirm: !opted_out,
        })
    }

    /// Appends a keyword record unless this message id already has one.
    fn record(
        &self,
        ledger: &mut Appending<'_>,
        batch: &mut Batch,
        facts: &InboundFacts<'_>,
        program: &str,
        event: ConsentEvent,
        keyword: &str,
    ) -> anyhow::Result<()> {
        let already = ledger.records_for(facts.from)?.iter().any(|record| {
            matches!(&record.source, ConsentSource::Keyword { message_id, .. } if message_id == facts.message_id)
        });
        if already {
            return Ok(());
        }
        ledger.append(
            batch,
            NewConsent {
                number: facts.from.to_owned(),
                program: program.to_owned(),
                class: facts.class,
                event,
                source: ConsentSource::Keyword {
                    keyword: keyword.to_owned(),
                    message_id: facts.message_id.to_owned(),
                },
                disclosure: None,
                frequency: self
                    .programs
                    .get(program)
                    .and_then(|config| config.frequency.clone()),
                raw_text: Some(facts.text.to_owned()),
                at_ms: facts.now_ms,
            },
        )?;
        Ok(())
    }

    /// The brand to name for `program`: its configured brand, else `fallback` (the flow's),
    /// else the operator's default brand.
    pub fn brand(&self, program: Option<&str>, fallback: Option<&str>) -> Option<String> {
        program
            .and_then(|program| self.programs.get(program))
            .and_then(|config| config.brand.clone())
            .or_else(|| fallback.map(str::to_owned))
            .or_else(|| self.config.brand.clone())
    }

    /// The text that answers `screening` in `locale`, if it needs one.
    pub fn reply_text(
        &self,
        screening: &Screening,
        brand: Option<&str>,
        locale: &str,
    ) -> Option<String> {
        let which = match screening {
            Screening::Pass | Screening::OptedOut { confirm: false, .. } => return None,
            Screening::OptedOut { .. } => HostText::OptOutConfirmation,
            Screening::OptedIn { .. } => HostText::OptInConfirmation,
            Screening::AskRevocation { .. } => HostText::RevocationQuestion,
            Screening::Help { .. } => HostText::Help,
        };
        Some(
            self.catalog
                .render(which, screening.program(), locale, brand),
        )
    }
}

/// The catalog of `config` and `programs`: a program's `help` is its English HELP text.
pub fn catalog(config: &ComplianceConfig, programs: &BTreeMap<String, ProgramConfig>) -> Catalog {
    let programs = programs
        .iter()
        .map(|(id, program)| {
            let mut texts = program.texts.clone();
            if let Some(help) = &program.help {
                let english = texts.entry(texts::FALLBACK_LOCALE.to_owned()).or_default();
                english.help.get_or_insert_with(|| help.clone());
            }
            (id.clone(), texts)
        })
        .collect();
    Catalog {
        contact: config.contact.clone(),
        texts: config.texts.clone(),
        programs,
    }
}
