//! A person's (or the desk's) change to a handed-off conversation, as a turn: the case changes,
//! and what the change means for the conversation (a reply queued through the gate, the run
//! ended on resolve, resumed at a step on release) is written with it, atomically.

use super::effects::Breach;
use super::lifecycle::pinned_flow;
use super::turn::Turn;
use super::{Runtime, RuntimeError, steps};
use crate::compliance::gate::Origin;
use crate::flow::conversation::Status;
use crate::handoff::{Acted, CaseError, CaseTurns, DeskAction, DeskCommand, DeskError};
use crate::store::conversations::ConversationKey;
use crate::store::funnel::FunnelKind;
use crate::store::handoffs::{CaseState, HandoffCase};

impl CaseTurns for Runtime {
    fn act<'a>(
        &'a self,
        key: &'a ConversationKey,
        command: DeskCommand,
    ) -> futures_util::future::BoxFuture<'a, Result<Acted, DeskError>> {
        Box::pin(async move {
            let outcome = self.desk(&key.ours, &key.contact, command).await?;
            let queued = outcome
                .queued_ids()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let case = outcome
                .case
                .ok_or_else(|| DeskError::Internal(anyhow::anyhow!("a desk turn left no case")))?;
            Ok(Acted { case, queued })
        })
    }
}

impl From<RuntimeError> for DeskError {
    fn from(error: RuntimeError) -> Self {
        match error {
            RuntimeError::Case(error) => Self::Case(error),
            RuntimeError::Store(error) => Self::Store(error),
            other => Self::Internal(anyhow::anyhow!("{other}")),
        }
    }
}

/// Applies `command` to the turn's case; a refusal returns before anything is written.
pub(super) async fn apply(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    command: DeskCommand,
) -> Result<(), RuntimeError> {
    let mut case = turn
        .case
        .clone()
        .ok_or_else(|| CaseError::NotHandedOff(turn.conversation.contact.clone()))?;
    let DeskCommand { agent, action } = command;
    let signal = match (agent.as_deref(), action) {
        (Some(agent), DeskAction::Release { step }) => {
            return release(runtime, turn, case, agent, step).await;
        }
        (_, DeskAction::Wake) => {
            case.wake(turn.now)?;
            "case"
        }
        (_, DeskAction::Requeue) => {
            case.requeue(turn.now)?;
            "case"
        }
        (_, DeskAction::Breach { kinds, route }) => breach(turn, &mut case, &kinds, route)?,
        (_, DeskAction::AutoReply { kind, text }) => {
            case.auto_reply(kind, turn.now)?;
            queue_or_refuse(turn, &format!("handoff:{}", kind.as_str()), text)?;
            "message"
        }
        (by, DeskAction::Assign { to }) => {
            case.assign(by, &to, turn.now)?;
            "case"
        }
        (Some(agent), action) => by_person(turn, &mut case, agent, action)?,
        (None, _) => return Err(CaseError::Invalid("only a person can do this".to_owned()).into()),
    };
    keep(turn, case, signal, agent);
    Ok(())
}

/// Queues a person's (or an auto-) reply; without an outbox id the whole change is refused, so
/// no clock counts an answer that was never queued.
fn queue_or_refuse(turn: &mut Turn<'_>, step: &str, text: String) -> Result<(), RuntimeError> {
    match turn.queue(Origin::Agent, step, text) {
        Some(_) => Ok(()),
        None => Err(RuntimeError::Internal(anyhow::anyhow!(
            "the text could not be queued: the store handed out no id"
        ))),
    }
}

/// The turn writes `case` and tells the agents' pages.
fn keep(turn: &mut Turn<'_>, case: HandoffCase, signal: &'static str, agent: Option<String>) {
    turn.case = Some(case);
    turn.effects.case_changed = true;
    turn.effects.signal = Some((signal, agent));
}

/// A person's claim, reply, note, snooze or resolve; returns the signal.
fn by_person(
    turn: &mut Turn<'_>,
    case: &mut HandoffCase,
    agent: &str,
    action: DeskAction,
) -> Result<&'static str, RuntimeError> {
    let now = turn.now;
    match action {
        DeskAction::Claim => {
            let reopening = case.state == CaseState::Resolved;
            case.claim(agent, now)?;
            if reopening {
                // The case goes in first: the handoff entry names its queue and reason.
                turn.case = Some(case.clone());
                turn.back_to_people(&format!("reopened by {agent}"));
            }
        }
        DeskAction::Reply {
            text,
            version,
            confirm,
        } => {
            let length = turn.conversation.transcript_len;
            if let Some(seen) = version
                && seen < length
                && !confirm
            {
                return Err(CaseError::ThreadChanged { seen, now: length }.into());
            }
            let first = case.first_response_at_ms.is_none();
            case.reply(agent, now)?;
            if first {
                turn.effects
                    .funnel
                    .push((FunnelKind::FirstResponse, Some(agent.to_owned())));
            }
            queue_or_refuse(turn, &format!("agent:{agent}"), text)?;
            return Ok("message");
        }
        DeskAction::Note { text } => case.note(agent, &text, now),
        DeskAction::Snooze { until_ms } => case.snooze(agent, until_ms, now)?,
        DeskAction::Resolve => {
            case.resolve(agent, now)?;
            turn.effects
                .funnel
                .push((FunnelKind::Resolved, Some(agent.to_owned())));
            turn.end(None);
        }
        _ => return Err(CaseError::Invalid("not a person's change".to_owned()).into()),
    }
    Ok("case")
}

/// Missed targets: recorded for the `conversation.sla_breached` webhook; a move to the
/// breach route is the conversation's new queue.
fn breach(
    turn: &mut Turn<'_>,
    case: &mut HandoffCase,
    kinds: &[crate::store::handoffs::SlaKind],
    route: Option<String>,
) -> Result<&'static str, RuntimeError> {
    let queue = case.queue.clone();
    case.breach(kinds, route.as_deref(), turn.now)?;
    let moved_to = (case.queue != queue).then(|| case.queue.clone());
    turn.effects
        .breaches
        .extend(kinds.iter().map(|&sla| Breach {
            sla,
            queue: queue.clone(),
            moved_to: moved_to.clone(),
        }));
    if let Some(queue) = moved_to
        && let Status::HandedOff { queue: current, .. } = &mut turn.conversation.status
    {
        *current = queue;
    }
    Ok("case")
}

/// Back to the bot: the case is released first, then the flow resumes at `step` (it may hand
/// the conversation off again) or the run ends.
async fn release(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    mut case: HandoffCase,
    agent: &str,
    step: Option<String>,
) -> Result<(), RuntimeError> {
    let flow = release_target(runtime, turn, step.as_deref())?;
    case.release(agent, step.as_deref(), turn.now)?;
    keep(turn, case, "case", Some(agent.to_owned()));
    match (flow, step) {
        (Some(flow), Some(step)) => {
            turn.conversation.status = Status::Idle;
            steps::run_from(turn, &flow, &step).await;
        }
        _ => turn.end(None),
    }
    Ok(())
}

/// The flow a release to `step` resumes: the one the conversation is pinned to, which must
/// have the step. No step: none (the run ends).
fn release_target(
    runtime: &Runtime,
    turn: &Turn<'_>,
    step: Option<&str>,
) -> Result<Option<std::sync::Arc<crate::flow::Flow>>, RuntimeError> {
    let Some(step) = step else {
        return Ok(None);
    };
    let flow = pinned_flow(runtime, turn)?.ok_or_else(|| {
        CaseError::Invalid(
            "this conversation has no flow to release to: release without a step".to_owned(),
        )
    })?;
    if !flow.steps.contains_key(step) {
        return Err(CaseError::UnknownStep {
            flow: flow.id.clone(),
            step: step.to_owned(),
        }
        .into());
    }
    Ok(Some(flow))
}
