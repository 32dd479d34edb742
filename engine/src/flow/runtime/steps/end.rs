//! `end`: send an optional last text and end the run with an outcome.

use super::super::turn::Turn;
use super::send_optional;
use crate::flow::{Flow, LocalizedTemplate, Step};
use crate::store::funnel::FunnelKind;

/// Sends `text` (if any and if it renders) and ends the run; the run stops here. A
/// conversion step counts in the funnel.
pub(super) fn run(
    turn: &mut Turn<'_>,
    flow: &Flow,
    step: &Step,
    text: Option<&LocalizedTemplate>,
    (outcome, conversion): (&Option<String>, bool),
) -> Option<String> {
    send_optional(turn, flow, step, text);
    if conversion {
        turn.effects
            .funnel
            .push((FunnelKind::Converted, outcome.clone()));
    }
    turn.end(outcome.clone());
    None
}

#[cfg(test)]
mod tests {
    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::flow::conversation::{Event, Status};

    #[tokio::test]
    async fn an_end_sends_its_text_and_records_the_outcome() {
        let (plugins, ids) = (Stub::default(), Counter::default());
        let flow = flow(
            r#"
            id = "bye"
            program = "care"
            kind = "transactional"
            start = "bye"
            [triggers]
            api = true
            [steps.bye]
            type = "end"
            text = "See you {{when}}!"
            outcome = "confirmed"
            "#,
        );
        let mut turn = turn(&plugins, &ids, &[("when", "Monday")]);
        assert_eq!(execute(&mut turn, &flow, &flow.steps["bye"]).await, None);
        assert_eq!(turn.effects.outgoing[0].1.body, "See you Monday!");
        assert!(matches!(
            &turn.conversation.status,
            Status::Ended { outcome: Some(outcome), .. } if outcome == "confirmed"
        ));

        // A text that does not render is recorded; the run still ends.
        let mut turn = super::super::super::turn::testing::turn(&plugins, &ids, &[]);
        execute(&mut turn, &flow, &flow.steps["bye"]).await;
        assert!(turn.effects.outgoing.is_empty());
        assert!(matches!(
            &turn.effects.entries[0].event,
            Event::Error { .. }
        ));
        assert!(matches!(turn.conversation.status, Status::Ended { .. }));
    }
}
