//! One handler per step kind. A handler reads and writes only the [`Turn`] (the
//! conversation's state and the turn's effects, plugins through [`crate::plugin::PluginCalls`])
//! and returns the next step, or `None` when the run waits, hands off or ends here.

mod branch;
mod classify;
mod connector;
mod end;
mod handoff;
mod reply;
mod send;
mod set;
mod split;
mod wait;

use super::turn::{Turn, escalation_queue};
use crate::flow::conversation::Event;
use crate::flow::{Action, Flow, MAX_STEPS_PER_TURN, Step};

/// Runs `flow` from the step `first` until it waits, hands off or ends; a run whose steps run
/// out ends there.
pub(super) async fn run_from(turn: &mut Turn<'_>, flow: &Flow, first: &str) {
    turn.settled = false;
    let mut next = Some(first.to_owned());
    let mut steps = 0;
    while let Some(name) = next.take() {
        steps += 1;
        if steps > MAX_STEPS_PER_TURN {
            let reason = format!("the flow ran {MAX_STEPS_PER_TURN} steps without waiting");
            turn.hand_off(&escalation_queue(flow), &reason);
            break;
        }
        let Some(step) = flow.steps.get(&name) else {
            turn.hand_off(
                &escalation_queue(flow),
                &format!("step `{name}` does not exist"),
            );
            break;
        };
        turn.record(Event::Step { step: name.clone() });
        turn.at_step = Some(name.clone());
        next = execute(turn, flow, step).await;
    }
    if !turn.settled {
        turn.end(None);
    }
}

/// Runs one step; returns the next.
pub(super) async fn execute(turn: &mut Turn<'_>, flow: &Flow, step: &Step) -> Option<String> {
    match &step.action {
        Action::Send {
            text,
            next,
            on_error,
        } => send::run(turn, flow, step, text, next.as_deref(), on_error.as_deref()),
        Action::Wait { timeout_ms, .. } => wait::run(turn, step, *timeout_ms),
        Action::Classify { .. } => classify::run(turn, flow, step).await,
        Action::Branch { cases, default } => branch::run(turn, cases, default),
        Action::Connector { .. } => connector::run(turn, flow, step).await,
        Action::Reply { .. } => reply::run(turn, flow, step).await,
        Action::Handoff {
            queue,
            reason,
            text,
        } => handoff::run(turn, flow, step, queue, reason, text.as_ref()),
        Action::Set { fields, next } => set::run(turn, flow, step, fields, next),
        Action::Split { variants } => split::run(turn, flow, step, variants),
        Action::End {
            text,
            outcome,
            conversion,
        } => end::run(turn, flow, step, text.as_ref(), (outcome, *conversion)),
    }
}

/// Sends `text` if there is one and it renders; a text that does not render is recorded and
/// skipped (the step's own action still happens).
fn send_optional(
    turn: &mut Turn<'_>,
    flow: &Flow,
    step: &Step,
    text: Option<&crate::flow::LocalizedTemplate>,
) {
    let Some(text) = text else { return };
    match turn.render_text(text) {
        Ok(body) => turn.send_as(crate::compliance::gate::Origin::Flow, flow, step, body),
        Err(error) => turn.record(Event::Error {
            step: step.name.clone(),
            message: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::*;
    use crate::flow::conversation::Status;

    #[tokio::test]
    async fn a_run_that_runs_out_of_steps_ends_and_a_long_chain_is_handed_off() {
        let plugins = Stub::default();
        let ids = Counter::default();
        let flow = flow(
            r#"
            id = "short"
            program = "care"
            kind = "transactional"
            start = "a"
            [triggers]
            api = true
            [steps.a]
            type = "set"
            fields = { x = "1" }
            next = "b"
            [steps.b]
            type = "send"
            text = "Hi"
            "#,
        );
        let mut turn = turn(&plugins, &ids, &[]);
        run_from(&mut turn, &flow, "a").await;
        assert!(matches!(
            turn.conversation.status,
            Status::Ended { outcome: None, .. }
        ));
        assert_eq!(turn.effects.outgoing.len(), 1);

        let mut turn = super::super::turn::testing::turn(&plugins, &ids, &[]);
        run_from(&mut turn, &flow, "missing").await;
        assert!(matches!(
            &turn.conversation.status,
            Status::HandedOff { reason, .. } if reason == "step `missing` does not exist"
        ));
    }
}
