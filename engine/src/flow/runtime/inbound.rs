//! An inbound text: compliance answers first (no flow sees a screened keyword), then a waiting
//! run resumes, a person's conversation only records it (for the agent), a recently resolved one
//! reopens, and an idle one may start a run by keyword or catch-all.

use std::sync::Arc;

use anyhow::Context as _;

use super::lifecycle::{RunSource, begin_run, pinned_flow, wait_step};
use super::turn::{Turn, escalation_queue};
use super::{Inbound, Runtime, RuntimeError, steps};
use crate::compliance::Screening;
use crate::compliance::gate::Origin;
use crate::compliance::ledger::{
    ConsentClass, ConsentEvent, ConsentSource, ConsentState, NewConsent,
};
use crate::compliance::texts::reply_locale;
use crate::flow::conversation::{Event, Status};
use crate::flow::{Action, Flow, FlowKind, words};
use crate::store::funnel::FunnelKind;

/// Handles `inbound` in its conversation's turn.
pub(super) async fn handle(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    inbound: &Inbound,
) -> Result<(), RuntimeError> {
    turn.record(Event::Inbound {
        message_id: inbound.id.clone(),
        text: inbound.text.clone(),
    });
    if matches!(turn.conversation.status, Status::HandedOff { .. }) {
        // The agent sees every text, STOP and HELP included, live; only a text the host did
        // not answer itself waits for a person's answer.
        let (now, screened) = (turn.now, inbound.screening != Screening::Pass);
        turn.change_case("message", None, |case| match screened {
            true => case.seen(&inbound.text, now),
            false => case.inbound(&inbound.text, now),
        });
    }
    if inbound.screening != Screening::Pass {
        answer_screening(runtime, turn, inbound);
        return Ok(());
    }
    // A keyword the host answered (STOP, HELP) is no reply in the funnel.
    turn.effects
        .funnel
        .push((FunnelKind::Replied, Some(inbound.id.clone())));
    turn.conversation
        .fields
        .insert("reply".to_owned(), inbound.text.clone());
    match turn.conversation.status.clone() {
        Status::Waiting { step, .. } => resume(runtime, turn, &step, &inbound.text).await,
        // A person has the conversation: the bot only records the text (above, for the agent).
        Status::HandedOff { .. } => Ok(()),
        Status::Idle | Status::Ended { .. } => {
            if !reopen(runtime, turn, inbound) {
                trigger(runtime, turn, inbound).await?;
            }
            Ok(())
        }
    }
}

/// A text soon after a person resolved the conversation goes back to people (the agent who had
/// it, when available), unless its first word starts a flow. Returns whether it did.
fn reopen(runtime: &Runtime, turn: &mut Turn<'_>, inbound: &Inbound) -> bool {
    let now = turn.now;
    // A run the bot started after the resolution owns the conversation now.
    let run_started = turn.conversation.run_started_at_ms;
    let reopens = turn.case.as_ref().is_some_and(|case| {
        case.reopens(now, runtime.reopen_within_ms)
            && case.resolved_at_ms.is_some_and(|at| run_started <= at)
    });
    if !reopens {
        return false;
    }
    let first_word = words::words(&inbound.text).into_iter().next();
    if first_word.is_some_and(|word| runtime.registry.current().keywords.contains_key(&word)) {
        return false;
    }
    turn.change_case("handoff", None, |case| {
        case.reopen(now);
        case.inbound(&inbound.text, now);
    });
    turn.back_to_people("reopened by the contact");
    true
}

/// A reply to a waiting run: an escalation rule may hand it off, else the wait's `on_reply`.
async fn resume(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    step: &str,
    text: &str,
) -> Result<(), RuntimeError> {
    let flow = pinned_flow(runtime, turn)?.context("a waiting conversation has no flow")?;
    turn.clear_wait();
    turn.at_step = Some(step.to_owned());
    if let Some(reason) = escalation_reason(turn, &flow, text) {
        turn.hand_off(&escalation_queue(&flow), &reason);
        return Ok(());
    }
    let Action::Wait { on_reply, .. } = &wait_step(&flow, step)?.action else {
        return Ok(());
    };
    let on_reply = on_reply.clone();
    steps::run_from(turn, &flow, &on_reply).await;
    Ok(())
}

/// A text with no run under way: the flow its first word is a keyword of, else the catch-all,
/// else nothing (it stays recorded).
async fn trigger(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    inbound: &Inbound,
) -> Result<(), RuntimeError> {
    let set = runtime.registry.current();
    let first_word = words::words(&inbound.text).into_iter().next();
    let (flow, trigger) = match first_word
        .and_then(|word| set.keywords.get(&word))
        .and_then(|id| set.by_id.get(id))
    {
        Some(flow) => (Arc::clone(flow), "keyword"),
        None => match set.catch_all.as_ref().and_then(|id| set.by_id.get(id)) {
            Some(flow) => (Arc::clone(flow), "catch_all"),
            None => return Ok(()),
        },
    };
    begin_run(turn, &flow, RunSource::inbound(trigger, &inbound.text));
    if trigger == "keyword" && flow.kind == FlowKind::Marketing {
        record_keyword_opt_in(runtime, turn, &flow, inbound)?;
    }
    steps::run_from(turn, &flow, &flow.start).await;
    Ok(())
}

/// Texting a marketing flow's advertised keyword is the contact's request for that program's
/// texts: a keyword opt-in, in the ledger with the turn. It never undoes an opt-out: only
/// START does that.
fn record_keyword_opt_in(
    runtime: &Runtime,
    turn: &mut Turn<'_>,
    flow: &Flow,
    inbound: &Inbound,
) -> anyhow::Result<()> {
    let contact = turn.conversation.contact.clone();
    let ledger = runtime.compliance.ledger();
    if let ConsentState::OptedOut { .. } =
        ledger.state(&contact, &flow.program, ConsentClass::Marketing)?
    {
        return Ok(());
    }
    turn.effects.consents.push(NewConsent {
        number: contact,
        program: flow.program.clone(),
        class: ConsentClass::Marketing,
        event: ConsentEvent::OptIn,
        source: ConsentSource::Keyword {
            keyword: words::words(&inbound.text)
                .into_iter()
                .next()
                .unwrap_or_default()
                .to_uppercase(),
            message_id: inbound.id.clone(),
        },
        disclosure: None,
        frequency: runtime
            .compliance
            .program(&flow.program)
            .and_then(|program| program.frequency.clone()),
        raw_text: Some(inbound.text.clone()),
        at_ms: turn.now,
    });
    Ok(())
}

/// Answers a compliance keyword in the keyword's language, else the contact's, else the flow's;
/// no flow or plugin sees the text. An opt-out ends the run (a handed-off conversation stays
/// with its agent, whose replies the gate now blocks).
fn answer_screening(runtime: &Runtime, turn: &mut Turn<'_>, inbound: &Inbound) {
    let screening = &inbound.screening;
    let origin = match screening {
        Screening::Pass => return,
        Screening::OptedOut { .. } => Origin::OptOutConfirmation,
        Screening::Help { .. } => Origin::Help,
        Screening::OptedIn { .. } => Origin::OptInConfirmation,
        Screening::AskRevocation { .. } => Origin::RevocationQuestion,
    };
    let flow_locale = pinned_locale(runtime, turn);
    match screening {
        Screening::OptedOut { .. }
            if !matches!(turn.conversation.status, Status::HandedOff { .. }) =>
        {
            turn.end(Some("opted_out".to_owned()));
        }
        Screening::AskRevocation { .. } => {
            turn.conversation.revocation_asked_at_ms = Some(turn.now)
        }
        _ => {}
    }
    let compliance = &runtime.compliance;
    let brand = compliance.brand(screening.program(), turn.conversation.brand.as_deref());
    let locale = reply_locale(
        &inbound.text,
        turn.conversation.locale.as_deref(),
        flow_locale.as_deref(),
    );
    if let Some(text) = compliance.reply_text(screening, brand.as_deref(), &locale) {
        let step = format!("compliance:{}", origin.as_str());
        if let Some(message) = turn.queue(origin, &step, text) {
            message.locale = Some(locale);
        }
    }
}

/// The locale of the conversation's pinned flow, when it has one that still loads.
fn pinned_locale(runtime: &Runtime, turn: &Turn<'_>) -> Option<String> {
    // A pinned flow that no longer loads only costs the reply its flow's language.
    let flow = pinned_flow(runtime, turn).ok().flatten()?;
    Some(flow.locale.clone())
}

/// Why an escalation rule of `flow` hands this reply to a person, if one does.
fn escalation_reason(turn: &mut Turn<'_>, flow: &Flow, text: &str) -> Option<String> {
    let rules = flow.escalation.as_ref()?;
    let text_words = words::words(text);
    if let Some(cue) = rules
        .cue_words
        .iter()
        .find(|cue| words::contains_phrase(&text_words, cue))
    {
        return Some(format!("cue word `{}`", cue.join(" ")));
    }
    for topic in &rules.topics {
        if let Some(phrase) = topic
            .phrases()
            .iter()
            .find(|phrase| words::contains_phrase(&text_words, &words::words(phrase)))
        {
            return Some(format!("{} topic (`{phrase}`)", topic.name()));
        }
    }
    if rules.repeated_question > 0 && text.contains('?') && !text_words.is_empty() {
        let asked = turn
            .conversation
            .questions
            .entry(text_words.join(" "))
            .or_default();
        *asked += 1;
        if *asked >= rules.repeated_question {
            return Some(format!("asked the same question {asked} times"));
        }
    }
    None
}
