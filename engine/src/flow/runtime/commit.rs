//! A turn's effects, written in one batch: the conversation, its transcript entries, timers,
//! queued texts, the conversation's case, consent records, event webhooks, the processed mark and the
//! inbound text's inbox row. All of it or none of it survives a crash.

use super::effects::TimerOp;
use super::turn::Turn;
use super::{Outcome, Runtime};
use crate::compliance::ledger::NewConsent;
use crate::events::{EngineEvent, RunContext};
use crate::flow::conversation::{CaseState, Event};
use crate::handoff::DeskEvent;
use crate::store::Batch;
use crate::store::contacts::Direction;
use crate::store::funnel::{FunnelEvent, FunnelKind};
use crate::store::outbox::Due;

/// Applies `turn`'s effects (not flushed: see the runtime's documentation) and wakes the
/// workers that have new work.
pub(super) fn commit(runtime: &Runtime, mut turn: Turn<'_>) -> anyhow::Result<Outcome> {
    turn.conversation.updated_at_ms = turn.now;
    let tables = &runtime.tables;
    let effects = &turn.effects;
    let key = turn.conversation.key();
    let mut batch = Batch::new();
    tables
        .conversations
        .put_in(&mut batch, &turn.conversation)?;
    tables
        .transcript
        .put_turn_in(&mut batch, &key, &effects.entries)?;
    for op in &effects.timer_ops {
        match op {
            TimerOp::Add(key, record) => tables.timers.put_in(&mut batch, key, record)?,
            TimerOp::Remove(key) => tables.timers.remove_in(&mut batch, key),
        }
    }
    queue_texts(runtime, &mut batch, &turn)?;
    if effects.case_changed
        && let Some(case) = &turn.case
    {
        tables.handoffs.put_in(&mut batch, case)?;
    }
    if let Some(id) = &effects.processed {
        // A text from the inbox has a dedup key, whose expiry takes its mark along.
        if effects.inbox_seq.is_some() {
            tables.processed.put_inbound_in(&mut batch, id, turn.now)?;
        } else {
            tables.processed.put_in(&mut batch, id, turn.now)?;
        }
    }
    if let Some(seq) = effects.inbox_seq {
        tables.inbox.remove_in(&mut batch, seq);
    }
    record_activity(runtime, &mut batch, &turn)?;
    record_funnel(runtime, &mut batch, &turn)?;
    let events = prepare_events(runtime, &mut batch, &turn)?;
    apply(runtime, batch, &effects.consents)?;
    signal(runtime, &turn);
    log_handoff(&turn);
    if !effects.outgoing.is_empty() {
        runtime.notifiers.outbox.notify_one();
    }
    if effects.adds_timers() {
        runtime.timers_changed.notify_one();
    }
    if events > 0
        && let Some(events) = &runtime.notifiers.events
    {
        events.notify();
    }
    Ok(Outcome {
        conversation: turn.conversation,
        entries: turn.effects.entries,
        case: turn.case,
        duplicate: false,
        skipped: false,
    })
}

/// The turn's texts into the outbox, due now.
fn queue_texts(runtime: &Runtime, batch: &mut Batch, turn: &Turn<'_>) -> anyhow::Result<()> {
    for (seq, message) in &turn.effects.outgoing {
        runtime.tables.outbox.queue_in(batch, *seq, message)?;
        let due = Due {
            due_ms: turn.now,
            seq: *seq,
        };
        runtime.tables.outbox_due.put_in(batch, due)?;
    }
    Ok(())
}

/// When the contact last texted and was texted, for segments (`last_inbound < 30d`).
fn record_activity(runtime: &Runtime, batch: &mut Batch, turn: &Turn<'_>) -> anyhow::Result<()> {
    let contact = &turn.conversation.contact;
    let activity = &runtime.tables.contact_activity;
    let entries = &turn.effects.entries;
    if entries
        .iter()
        .any(|entry| matches!(entry.event, Event::Inbound { .. }))
    {
        activity.put_in(batch, contact, Direction::Inbound, turn.now)?;
    }
    if !turn.effects.outgoing.is_empty() {
        activity.put_in(batch, contact, Direction::Outbound, turn.now)?;
    }
    Ok(())
}

/// The turn's funnel events: its queued texts, a classification, a handoff, and those its
/// steps named (the contact's reply, a conversion, a person's answer, a resolution).
fn record_funnel(runtime: &Runtime, batch: &mut Batch, turn: &Turn<'_>) -> anyhow::Result<()> {
    let funnel = &runtime.tables.funnel;
    let conversation = &turn.conversation;
    // In the order they happened: the reply (or what a step named), what the bot made of it,
    // then our texts; a report measures our answer from the first to the last.
    for (kind, detail) in &turn.effects.funnel {
        let step = turn.at_step.as_deref();
        let event = FunnelEvent::of_conversation(*kind, conversation, step, turn.now);
        funnel.put_in(batch, &event.with_detail(detail.clone()))?;
    }
    let mut step = None;
    for entry in &turn.effects.entries {
        let (kind, detail) = match &entry.event {
            Event::Step { step: at } => {
                step = Some(at.as_str());
                continue;
            }
            Event::Classified { intent, .. } => (FunnelKind::Classified, intent.clone()),
            Event::Handoff { queue, .. } => (FunnelKind::HandedOff, queue.clone()),
            _ => continue,
        };
        let event = FunnelEvent::of_conversation(kind, conversation, step, entry.at_ms);
        funnel.put_in(batch, &event.with_detail(Some(detail)))?;
    }
    for (_, message) in &turn.effects.outgoing {
        funnel.put_in(
            batch,
            &FunnelEvent::of_message(FunnelKind::Queued, message, turn.now),
        )?;
    }
    for (code, link) in &turn.effects.links {
        runtime.tables.links.put_in(batch, code, link)?;
    }
    Ok(())
}

/// One info line per handoff, once it is applied: where the conversation went and why.
fn log_handoff(turn: &Turn<'_>) {
    for entry in &turn.effects.entries {
        if let Event::Handoff { queue, reason } = &entry.event {
            tracing::info!(
                contact = %turn.conversation.contact,
                queue = %queue,
                "handed off: {reason}"
            );
        }
    }
}

/// Tells the agents' pages what changed, once it is applied; a new waiting conversation (or
/// freed capacity) also wakes the desk's assignment.
fn signal(runtime: &Runtime, turn: &Turn<'_>) {
    let (Some((kind, agent)), Some(case)) = (&turn.effects.signal, &turn.case) else {
        return;
    };
    let signals = &runtime.notifiers.desk;
    signals.publish(DeskEvent {
        kind,
        contact: case.contact.clone(),
        queue: case.queue.clone(),
        state: case.state.as_str(),
        assignee: case.assignee.clone(),
        agent: agent.clone(),
        reason: (*kind == "handoff").then(|| case.reason.clone()),
        typing: None,
    });
    if matches!(case.state, CaseState::Waiting | CaseState::Resolved) {
        signals.changed.notify_one();
    }
}

/// Applies `batch` with the turn's consent records chained onto the ledger.
fn apply(runtime: &Runtime, mut batch: Batch, consents: &[NewConsent]) -> anyhow::Result<()> {
    if consents.is_empty() {
        return Ok(runtime.store.apply(batch)?);
    }
    // The ledger's lock is taken only by the turns that append to it.
    let mut ledger = runtime.compliance.ledger().appending();
    for consent in consents {
        ledger.append(&mut batch, consent.clone())?;
    }
    runtime.store.apply(batch)?;
    ledger.committed();
    Ok(())
}

/// Adds the event webhooks of the turn's handoff, conversion and missed service levels to
/// `batch`; returns how many rows.
fn prepare_events(runtime: &Runtime, batch: &mut Batch, turn: &Turn<'_>) -> anyhow::Result<usize> {
    let Some(events) = &runtime.notifiers.events else {
        return Ok(0);
    };
    let conversation = &turn.conversation;
    let run = RunContext::of(conversation, turn.at_step.as_deref());
    let mut rows = 0;
    for entry in &turn.effects.entries {
        let event = match &entry.event {
            Event::Handoff { queue, reason } => EngineEvent::ConversationHandoff {
                our_number: conversation.our_number.clone(),
                contact: conversation.contact.clone(),
                run: run.clone(),
                queue: queue.clone(),
                reason: reason.clone(),
            },
            Event::Ended {
                outcome: Some(outcome),
            } => EngineEvent::Conversion {
                our_number: conversation.our_number.clone(),
                contact: conversation.contact.clone(),
                run: run.clone(),
                outcome: outcome.clone(),
            },
            _ => continue,
        };
        rows += events.prepare_in(batch, &event)?;
    }
    if let Some(case) = &turn.case {
        for breach in &turn.effects.breaches {
            let event = EngineEvent::ConversationSlaBreached {
                our_number: case.our_number.clone(),
                contact: case.contact.clone(),
                queue: breach.queue.clone(),
                sla: breach.sla.as_str().to_owned(),
                assignee: case.assignee.clone(),
                moved_to: breach.moved_to.clone(),
            };
            rows += events.prepare_in(batch, &event)?;
        }
    }
    Ok(rows)
}
