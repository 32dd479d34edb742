//! Starting runs (an API start, a keyword or catch-all trigger) and firing timers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::turn::{Turn, escalation_queue};
use super::{OnActive, Runtime, RuntimeError, StartRequest, steps};
use crate::flow::conversation::{Conversation, Event, FlowRef, Status, Timer};
use crate::flow::{Action, Flow, FlowKind, Step};

/// An API start: checks the request against the flow and the conversation, then runs it.
/// `false` when it was skipped (the contact is in a run and the request says to skip).
pub(super) async fn start(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    request: StartRequest,
) -> Result<bool, RuntimeError> {
    let flow = runtime
        .registry
        .current()
        .by_id
        .get(&request.flow)
        .cloned()
        .ok_or_else(|| RuntimeError::UnknownFlow(request.flow.clone()))?;
    if !flow.triggers.api {
        return Err(RuntimeError::NotApiStartable(flow.id.clone()));
    }
    check_fields(&flow, &request.fields)?;
    if turn.conversation.is_active() {
        let waiting = matches!(turn.conversation.status, Status::Waiting { .. });
        match request.on_active {
            OnActive::Skip => return Ok(false),
            OnActive::Interrupt if waiting => turn.interrupt(),
            OnActive::Fail | OnActive::Interrupt => {
                return Err(RuntimeError::ConversationActive {
                    contact: turn.conversation.contact.clone(),
                    flow: turn
                        .conversation
                        .flow
                        .as_ref()
                        .map(|flow| flow.id.clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
    if let Some(locale) = request.locale {
        turn.conversation.locale = Some(locale);
    }
    let source = RunSource {
        trigger: "api",
        fields: request.fields,
        campaign: request.campaign,
        valid_for_ms: request.valid_for_ms,
    };
    begin_run(turn, &flow, source);
    steps::run_from(turn, &flow, &flow.start).await;
    Ok(true)
}

/// Every field the flow's API trigger needs is given, and not blank.
fn check_fields(flow: &Flow, fields: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
    let missing: Vec<String> = flow
        .triggers
        .fields
        .iter()
        .filter(|field| {
            fields
                .get(*field)
                .is_none_or(|value| value.trim().is_empty())
        })
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(RuntimeError::MissingFields {
        flow: flow.id.clone(),
        fields: missing,
    })
}

/// What began a run.
pub(super) struct RunSource {
    /// `api`, `keyword` or `catch_all`.
    pub trigger: &'static str,
    /// Fields given with the start.
    pub fields: BTreeMap<String, String>,
    /// The campaign that started it; else the flow's own `campaign` source is carried.
    pub campaign: Option<String>,
    /// How long the run's texts stay worth sending.
    pub valid_for_ms: Option<i64>,
}

impl RunSource {
    /// A run the inbound `text` triggered: its one field is the text, as `reply`.
    pub fn inbound(trigger: &'static str, text: &str) -> Self {
        Self {
            trigger,
            fields: BTreeMap::from([("reply".to_owned(), text.to_owned())]),
            campaign: None,
            valid_for_ms: None,
        }
    }
}

/// Starts a new run of `flow`: its fields, the built-in ones, and its resolution deadline.
pub(super) fn begin_run(turn: &mut Turn<'_>, flow: &Flow, source: RunSource) {
    turn.clear_deadline();
    let now = turn.now;
    let conversation = &mut turn.conversation;
    conversation.run += 1;
    conversation.run_started_at_ms = now;
    conversation.questions.clear();
    conversation.flow = Some(FlowRef {
        id: flow.id.clone(),
        version: flow.version.clone(),
    });
    conversation.program = Some(flow.program.clone());
    conversation.marketing = flow.kind == FlowKind::Marketing;
    conversation.brand.clone_from(&flow.brand);
    // A run from no campaign carries the flow's own source, so its texts attribute to it.
    conversation.campaign = source.campaign.or_else(|| flow.campaign.clone());
    conversation.text_valid_for_ms = source.valid_for_ms;
    let campaign_field = source
        .fields
        .get("campaign")
        .cloned()
        .or_else(|| flow.campaign.clone())
        .unwrap_or_default();
    // Each run starts from its own fields: the last run's answers would otherwise fill this
    // run's templates with stale values, and the map would grow with every start.
    conversation.fields = source.fields;
    set_builtins(conversation, flow, campaign_field);
    let run = conversation.run;
    turn.record(Event::Started {
        flow: flow.id.clone(),
        version: flow.version.clone(),
        trigger: source.trigger.to_owned(),
    });
    if let Some(within) = flow
        .escalation
        .as_ref()
        .and_then(|rules| rules.resolve_within_ms)
    {
        let due = now.saturating_add(within);
        turn.conversation.deadline_timer =
            Some(turn.add_timer(due, Timer::ResolveDeadline { run }));
    }
}

/// The fields every run has, whatever its flow sets ([`crate::flow::compile::BUILTIN_FIELDS`]).
fn set_builtins(conversation: &mut Conversation, flow: &Flow, campaign: String) {
    let builtins = [
        ("contact", conversation.contact.clone()),
        ("our_number", conversation.our_number.clone()),
        (
            "locale",
            conversation
                .locale
                .clone()
                .unwrap_or_else(|| flow.locale.clone()),
        ),
        ("brand", flow.brand.clone().unwrap_or_default()),
        ("campaign", campaign),
    ];
    for (name, value) in builtins {
        conversation.fields.insert(name.to_owned(), value);
    }
}

/// The flow version the conversation's run is pinned to.
pub(super) fn pinned_flow(runtime: &Runtime, turn: &Turn<'_>) -> anyhow::Result<Option<Arc<Flow>>> {
    turn.conversation
        .flow
        .as_ref()
        .map(|flow| runtime.registry.pinned(flow))
        .transpose()
}

/// The wait step `name` of `flow`, which a waiting conversation's flow must have.
pub(super) fn wait_step<'f>(flow: &'f Flow, name: &str) -> anyhow::Result<&'f Step> {
    flow.steps
        .get(name)
        .filter(|step| matches!(step.action, Action::Wait { .. }))
        .with_context(|| format!("wait step `{name}` is missing from flow `{}`", flow.id))
}

/// A timer fired: a wait's timeout resumes the run at `on_timeout`; a resolution deadline
/// hands off. A timer of an earlier run or step does nothing.
pub(super) async fn timer(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    timer: Timer,
) -> Result<(), RuntimeError> {
    let Status::Waiting { step, .. } = turn.conversation.status.clone() else {
        return Ok(());
    };
    let flow = pinned_flow(runtime, turn)?.context("a waiting conversation has no flow")?;
    match timer {
        Timer::WaitTimeout { run, step: timed }
            if run == turn.conversation.run && timed == step =>
        {
            let Action::Wait { on_timeout, .. } = &wait_step(&flow, &step)?.action else {
                return Ok(());
            };
            let on_timeout = on_timeout.clone();
            turn.record(Event::TimedOut { step });
            steps::run_from(turn, &flow, &on_timeout).await;
        }
        Timer::ResolveDeadline { run } if run == turn.conversation.run => {
            turn.clear_wait();
            let within = flow
                .escalation
                .as_ref()
                .and_then(|rules| rules.resolve_within_ms)
                .map(|ms| {
                    humantime::format_duration(Duration::from_millis(ms.cast_unsigned()))
                        .to_string()
                })
                .unwrap_or_default();
            turn.hand_off(
                &escalation_queue(&flow),
                &format!("not resolved within {within}"),
            );
        }
        _ => {}
    }
    Ok(())
}

/// A text the gate blocked, in run `run`: see [`Runtime::end_unsent`].
#[derive(Debug, Clone)]
pub(super) struct Unsent {
    pub(super) run: u64,
    pub(super) message_id: String,
    pub(super) reason: String,
}

/// Ends the run when it is still run `unsent.run` and waiting for a reply (a run that moved
/// on, was handed off or ended is left alone).
pub(super) fn unsent(turn: &mut Turn<'_>, unsent: &Unsent) {
    if turn.conversation.run != unsent.run
        || !matches!(turn.conversation.status, Status::Waiting { .. })
    {
        return;
    }
    turn.record(Event::Error {
        step: "gate".to_owned(),
        message: format!(
            "text {} was blocked, so no reply can come: {}",
            unsent.message_id, unsent.reason
        ),
    });
    turn.end(Some(super::UNSENT_OUTCOME.to_owned()));
}
