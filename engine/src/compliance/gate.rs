//! The send gate: the last word on every outbound text, asked by `outbound` right before the
//! provider call.
//!
//! In order, the first rule that says no decides:
//!
//! 1. **Consent.** Nothing goes to a number the provider reports as opted out, or whose ledger
//!    shows an opt-out of the text's program (or of all programs). Marketing needs a marketing
//!    opt-in for its program. Compliance replies have their own rules: the opt-out
//!    confirmation goes once, within 5 minutes of the opt-out; a HELP answer always goes.
//! 2. **Loop guard** and **content**: the first text of a program to a number names the brand
//!    and says how to opt out (added when the flow's text lacks them); no text may exceed the
//!    segment limit.
//! 3. **Quiet hours** in every time zone the number may be in, unless the program is exempt.
//!    An unknown zone fails closed unless configured otherwise. Compliance replies answer the
//!    contact's own text and go at any hour.
//! 4. **Frequency caps.**
//!
//! A text held by quiet hours or a full cap is deferred to the instant it may go, unless that
//! is past its expiry (queued time + `deferred_expiry`), when it is blocked instead.

use std::sync::Arc;

use anyhow::Context as _;

use super::caps::{self, CapCheck, SendLog, SentText, WINDOW_MS};
use super::keywords;
use super::ledger::{
    ALL_PROGRAMS, Appending, ConsentClass, ConsentEvent, ConsentSource, ConsentState, Ledger,
    NewConsent,
};
use super::quiet_hours::{self, QuietHours, WindowCheck};
use super::{Compliance, UnknownZonePolicy};
use crate::sms::segments::segments;
pub use crate::store::outbox::{GateRecord, Origin};
use crate::store::send_log::ProgramContacts;
use crate::store::suppressions::Suppressions;
use crate::store::{Batch, Tables};

/// How long after an opt-out its confirmation may still go.
pub const CONFIRMATION_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Words that already tell the contact how to opt out, in match form: a first text with one
/// needs no wording added.
const SAYS_HOW_TO_OPT_OUT: &[&str] = &["stop", "baja"];

/// A program's first text as the gate sends it: `body` with `brand` in front when it does not
/// name it, and `wording` (the locale's opt-out wording, [`super::texts`]) at the end when it
/// does not say how to opt out; and what was added. `smsflow check` counts the segments of a
/// flow's first texts with it too.
pub fn with_first_text_wording(
    body: &str,
    brand: Option<&str>,
    wording: &str,
) -> (String, Vec<&'static str>) {
    let mut body = body.to_owned();
    let mut added = Vec::new();
    let normalized = keywords::normalize(&body);
    // A flow with no brand anywhere cannot be helped here; `smsflow check` asks marketing
    // flows for one.
    if let Some(brand) = brand
        && !normalized.contains(&keywords::normalize(brand))
    {
        body = format!("{brand}: {body}");
        added.push("the brand");
    }
    if !normalized
        .split(' ')
        .any(|word| SAYS_HOW_TO_OPT_OUT.contains(&word))
    {
        body = format!("{} {wording}", body.trim_end());
        added.push("the opt-out wording");
    }
    (body, added)
}

/// What the gate needs to know about a text.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The recipient.
    pub to: &'a str,
    /// The text.
    pub body: &'a str,
    /// Its program.
    pub program: Option<&'a str>,
    /// Marketing or transactional.
    pub class: ConsentClass,
    /// Who asked for it.
    pub origin: Origin,
    /// Its subject (the flow).
    pub subject: Option<&'a str>,
    /// The brand it speaks for.
    pub brand: Option<&'a str>,
    /// The locale it is written in, for the wording the content rules add.
    pub locale: Option<&'a str>,
    /// The contact's US state from their address, when known.
    pub address_state: Option<&'a str>,
    /// When it was queued.
    pub queued_at_ms: i64,
    /// When it stops being worth sending, if its run said (else `deferred_expiry` after
    /// it was queued).
    pub valid_until_ms: Option<i64>,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send `body` (the text, with any wording the content rules add).
    Send {
        /// What to send.
        body: String,
        /// What the content rules added, if anything.
        note: Option<String>,
    },
    /// Not now: try again at `until_ms`.
    Defer {
        /// When.
        until_ms: i64,
        /// Why.
        reason: String,
    },
    /// Never.
    Block {
        /// Why.
        reason: String,
    },
}

impl GateRecord {
    /// The record of `decision`, taken at `now_ms`.
    pub fn of(decision: &Decision, now_ms: i64) -> Self {
        let (name, reason, until) = match decision {
            Decision::Send { note, .. } => ("sent", note.clone(), None),
            Decision::Defer { until_ms, reason } => {
                ("deferred", Some(reason.clone()), Some(rfc3339(*until_ms)))
            }
            Decision::Block { reason } => ("blocked", Some(reason.clone()), None),
        };
        Self {
            decision: name.to_owned(),
            reason,
            until,
            at: rfc3339(now_ms),
        }
    }
}

/// `ms` as RFC 3339 UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    let seconds = u64::try_from(ms.div_euclid(1000)).unwrap_or(0);
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    )
    .to_string()
}

/// The gate.
#[derive(Debug, Clone)]
pub struct Gate {
    compliance: Arc<Compliance>,
    quiet_hours: Arc<QuietHours>,
    send_log: SendLog,
    program_contacts: ProgramContacts,
    suppressions: Suppressions,
    contacts: crate::store::contacts::ContactsTable,
    contact_addresses: crate::store::contacts::ContactAddresses,
    /// Whether a contact's own time zone replaces its number's (else both must be open).
    zone_authoritative: bool,
}

impl Gate {
    /// A gate over the store's compliance tables.
    pub fn new(compliance: Arc<Compliance>, quiet_hours: Arc<QuietHours>, tables: &Tables) -> Self {
        Self {
            compliance,
            quiet_hours,
            send_log: tables.send_log.clone(),
            program_contacts: tables.program_contacts.clone(),
            suppressions: tables.suppressions.clone(),
            contacts: tables.contacts.clone(),
            contact_addresses: tables.contact_addresses.clone(),
            zone_authoritative: false,
        }
    }

    /// The gate with a contact's own time zone replacing its number's for quiet hours
    /// (`[contacts] time_zone_authoritative`).
    #[must_use]
    pub fn with_authoritative_zones(mut self, authoritative: bool) -> Self {
        self.zone_authoritative = authoritative;
        self
    }

    /// Where the recipient is, beyond the number: the address state (the text's, else the
    /// contact's `state` field) and the contact's own time zone.
    fn place(
        &self,
        to: &str,
        text_state: Option<&str>,
    ) -> anyhow::Result<(Option<&'static str>, Option<jiff::tz::TimeZone>)> {
        use crate::store::contacts::FieldValue;
        let contact = self.contact(to)?;
        let contact_state =
            contact
                .as_ref()
                .and_then(|contact| match contact.fields.get("state") {
                    Some(FieldValue::State { state } | FieldValue::Text(state)) => {
                        Some(state.as_str())
                    }
                    _ => None,
                });
        let address_state = text_state
            .or(contact_state)
            .and_then(quiet_hours::normalize_us_state);
        let own_zone = contact
            .as_ref()
            .and_then(|contact| contact.time_zone.as_deref())
            .and_then(|name| jiff::tz::TimeZone::get(name).ok());
        Ok((address_state, own_zone))
    }

    fn quiet_window(
        &self,
        to: &str,
        address_state: Option<&str>,
        own_zone: Option<&jiff::tz::TimeZone>,
        now_ms: i64,
    ) -> WindowCheck {
        let own = own_zone.map(|zone| quiet_hours::OwnZone {
            zone,
            authoritative: self.zone_authoritative,
        });
        self.quiet_hours.check_for(to, address_state, own, now_ms)
    }

    /// When quiet hours let a text of `program` reach `to`, if they hold it back now (an
    /// exempt program, an open window or an unknown zone: `None`, the gate decides at send
    /// time). Campaigns ask, so a long blast starts each contact inside their window.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn quiet_until(&self, to: &str, program: &str, now_ms: i64) -> anyhow::Result<Option<i64>> {
        let exempt = self
            .compliance
            .program(program)
            .is_some_and(|program| program.quiet_hours_exempt);
        if exempt {
            return Ok(None);
        }
        let (address_state, own_zone) = self.place(to, None)?;
        Ok(
            match self.quiet_window(to, address_state, own_zone.as_ref(), now_ms) {
                WindowCheck::ClosedUntil { opens_at_ms, .. } => Some(opens_at_ms),
                _ => None,
            },
        )
    }

    /// The recipient's contact record, when there is one: its time zone and address state.
    fn contact(&self, number: &str) -> anyhow::Result<Option<crate::store::contacts::Contact>> {
        let Some(seq) = self.contact_addresses.get(number)? else {
            return Ok(None);
        };
        Ok(self.contacts.get(seq)?)
    }

    /// The gate the operator configured: `config`'s policy (and its quiet-hours pack, if it
    /// names one) for `programs`, over the store's tables.
    ///
    /// # Errors
    ///
    /// When the quiet-hours pack cannot be read or is invalid.
    pub fn from_config(
        config: &super::ComplianceConfig,
        programs: &std::collections::BTreeMap<String, super::ProgramConfig>,
        tables: &Tables,
    ) -> anyhow::Result<Self> {
        let quiet_hours = match &config.quiet_hours_pack {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                QuietHours::from_toml(&text, &path.display().to_string())?
            }
            None => QuietHours::builtin(),
        };
        let compliance = Compliance::new(
            config.clone(),
            programs.clone(),
            Ledger::new(tables.consent.clone()),
        );
        Ok(Self::new(
            Arc::new(compliance),
            Arc::new(quiet_hours),
            tables,
        ))
    }

    /// The gate with the default policy and the built-in quiet hours.
    ///
    /// # Errors
    ///
    /// Never in practice: the built-in policy is valid.
    pub fn with_defaults(tables: &Tables) -> anyhow::Result<Self> {
        Self::from_config(
            &super::ComplianceConfig::default(),
            &std::collections::BTreeMap::new(),
            tables,
        )
    }

    /// The ledger and policy the gate applies.
    pub fn compliance(&self) -> &Arc<Compliance> {
        &self.compliance
    }

    fn ledger(&self) -> &Ledger {
        self.compliance.ledger()
    }

    /// Decides whether `text` may go now.
    ///
    /// # Errors
    ///
    /// When the store cannot be read: the caller must not send.
    pub fn decide(&self, text: &Candidate<'_>, now_ms: i64) -> anyhow::Result<Decision> {
        let block = |reason: String| Ok(Decision::Block { reason });
        if let Some(why) = self.suppression(text.to)?
            && text.origin != Origin::OptOutConfirmation
        {
            return block(format!("the recipient is suppressed: {why}"));
        }
        if text.origin == Origin::OptOutConfirmation {
            return self.decide_confirmation(text, now_ms);
        }
        let program = text.program.unwrap_or(ALL_PROGRAMS);
        let consent = self.ledger().state(text.to, program, text.class)?;
        match text.origin {
            Origin::Help => {}
            _ => {
                if let ConsentState::OptedOut { since_ms } = consent {
                    return block(format!(
                        "the recipient opted out of {} at {}",
                        describe_program(text.program),
                        rfc3339(since_ms)
                    ));
                }
                if text.class == ConsentClass::Marketing
                    && !matches!(consent, ConsentState::OptedIn { .. })
                {
                    return block(format!(
                        "marketing without marketing consent for {}",
                        describe_program(text.program)
                    ));
                }
            }
        }

        let (body, note) = self.apply_content_rules(text)?;
        let segment_count = segments(&body).segments;
        let max_segments = self.compliance.config().max_segments;
        if segment_count > max_segments as usize {
            return block(format!(
                "too long: {segment_count} segments, the limit is {max_segments}"
            ));
        }

        let config = self.compliance.config();
        let area_state = quiet_hours::us_state_for(text.to);
        let (address_state, own_zone) = self.place(text.to, text.address_state)?;
        let sent = SentText::new(
            now_ms,
            text.program,
            text.subject,
            text.class == ConsentClass::Marketing,
            &body,
        );
        let states: Vec<&str> = area_state.into_iter().chain(address_state).collect();
        let recent = self.send_log.since(text.to, now_ms - WINDOW_MS + 1)?;
        let caps = caps::check(&config.caps, &recent, &sent, &states);
        if let CapCheck::Loop { reason } = caps {
            return block(reason);
        }
        if text.origin.is_compliance_reply() {
            return Ok(Decision::Send { body, note });
        }

        let expires_at = text.valid_until_ms.unwrap_or_else(|| {
            text.queued_at_ms.saturating_add(
                i64::try_from(config.deferred_expiry.as_millis()).unwrap_or(i64::MAX),
            )
        });
        let exempt = text
            .program
            .and_then(|program| self.compliance.program(program))
            .is_some_and(|program| program.quiet_hours_exempt);
        if !exempt {
            match self.quiet_window(text.to, address_state, own_zone.as_ref(), now_ms) {
                WindowCheck::Open => {}
                WindowCheck::ClosedUntil {
                    opens_at_ms,
                    reason,
                } => {
                    return Ok(defer_or_expire(opens_at_ms, reason, expires_at));
                }
                WindowCheck::UnknownZone => {
                    if config.unknown_time_zone == UnknownZonePolicy::Block {
                        return block(
                            "quiet hours: the recipient's time zone is unknown (fails closed)"
                                .into(),
                        );
                    }
                }
                WindowCheck::NeverOpens { reason } => return block(reason),
            }
        }
        match caps {
            CapCheck::FullUntil { until_ms, reason } => {
                Ok(defer_or_expire(until_ms, reason, expires_at))
            }
            CapCheck::Under | CapCheck::Loop { .. } => Ok(Decision::Send { body, note }),
        }
    }

    /// The opt-out confirmation: once, within [`CONFIRMATION_WINDOW_MS`] of the opt-out.
    fn decide_confirmation(&self, text: &Candidate<'_>, now_ms: i64) -> anyhow::Result<Decision> {
        let records = self.ledger().records_for(text.to)?;
        let latest_opt_out = records
            .iter()
            .filter(|record| record.event == ConsentEvent::OptOut)
            .map(|record| record.at_ms)
            .max();
        let Some(opted_out_at) = latest_opt_out else {
            return Ok(Decision::Block {
                reason: "an opt-out confirmation with no opt-out".into(),
            });
        };
        if now_ms - opted_out_at > CONFIRMATION_WINDOW_MS {
            return Ok(Decision::Block {
                reason: "the opt-out confirmation is more than 5 minutes late".into(),
            });
        }
        let already = records.iter().any(|record| {
            record.event == ConsentEvent::ConfirmationSent && record.at_ms >= opted_out_at
        });
        if already {
            return Ok(Decision::Block {
                reason: "the opt-out was already confirmed".into(),
            });
        }
        Ok(Decision::Send {
            body: text.body.to_owned(),
            note: None,
        })
    }

    /// The text with the brand and opt-out wording the first text of a program must have, and
    /// a note of what was added.
    fn apply_content_rules(
        &self,
        text: &Candidate<'_>,
    ) -> anyhow::Result<(String, Option<String>)> {
        let unchanged = || Ok((text.body.to_owned(), None));
        let Some(program) = text.program else {
            return unchanged();
        };
        if text.origin.is_compliance_reply() || self.program_contacts.contains(text.to, program)? {
            return unchanged();
        }
        let brand = self.compliance.brand(Some(program), text.brand);
        let locale = text.locale.unwrap_or(super::texts::FALLBACK_LOCALE);
        let wording = self
            .compliance
            .catalog()
            .opt_out_wording(Some(program), locale);
        let (body, added) = with_first_text_wording(text.body, brand.as_deref(), &wording);
        let note = (!added.is_empty())
            .then(|| format!("first text of the program: added {}", added.join(" and ")));
        Ok((body, note))
    }

    /// Adds the record of a text the provider took to `batch`: the send log for caps, the
    /// program's first contact, and the ledger's record of an opt-out confirmation.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a record encoded.
    pub fn record_sent_in(
        &self,
        batch: &mut Batch,
        ledger: &mut Appending<'_>,
        seq: u64,
        text: &Candidate<'_>,
        message_id: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let sent = SentText::new(
            now_ms,
            text.program,
            text.subject,
            text.class == ConsentClass::Marketing,
            text.body,
        );
        self.send_log
            .record_in(batch, text.to, seq, &sent, now_ms - WINDOW_MS)?;
        if let Some(program) = text.program {
            self.program_contacts
                .put_in(batch, text.to, program, now_ms)?;
        }
        if text.origin == Origin::OptOutConfirmation {
            ledger.append(
                batch,
                NewConsent {
                    number: text.to.to_owned(),
                    program: text.program.unwrap_or(ALL_PROGRAMS).to_owned(),
                    class: text.class,
                    event: ConsentEvent::ConfirmationSent,
                    source: ConsentSource::Keyword {
                        keyword: "CONFIRMATION".to_owned(),
                        message_id: message_id.to_owned(),
                    },
                    disclosure: None,
                    frequency: None,
                    raw_text: Some(text.body.to_owned()),
                    at_ms: now_ms,
                },
            )?;
        }
        Ok(())
    }

    /// Whether the provider reported `number` as opted out.
    /// Why `number` is suppressed (a carrier opt-out, an erasure), when it is.
    fn suppression(&self, number: &str) -> anyhow::Result<Option<String>> {
        Ok(self.suppressions.get(number)?)
    }

    /// Adds a carrier-level opt-out (Twilio 21610) to `batch`: suppression and a ledger
    /// opt-out of every program.
    ///
    /// # Errors
    ///
    /// When a record cannot be encoded or the ledger's end read.
    pub fn record_carrier_opt_out_in(
        &self,
        batch: &mut Batch,
        ledger: &mut Appending<'_>,
        number: &str,
        provider: &str,
        reason: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let why = format!("they opted out with the carrier (provider error 21610): {reason}");
        self.suppressions.put_in(batch, number, &why)?;
        ledger.append(
            batch,
            NewConsent {
                number: number.to_owned(),
                program: ALL_PROGRAMS.to_owned(),
                class: ConsentClass::Transactional,
                event: ConsentEvent::OptOut,
                source: ConsentSource::Provider {
                    provider: provider.to_owned(),
                    detail: reason.to_owned(),
                },
                disclosure: None,
                frequency: None,
                raw_text: None,
                at_ms: now_ms,
            },
        )?;
        Ok(())
    }
}

fn defer_or_expire(until_ms: i64, reason: String, expires_at_ms: i64) -> Decision {
    if until_ms > expires_at_ms {
        Decision::Block {
            reason: format!(
                "{reason}; the text would wait past its expiry at {}",
                rfc3339(expires_at_ms)
            ),
        }
    } else {
        Decision::Defer { until_ms, reason }
    }
}

fn describe_program(program: Option<&str>) -> String {
    match program {
        Some(program) => format!("program `{program}`"),
        None => "every program".to_owned(),
    }
}
