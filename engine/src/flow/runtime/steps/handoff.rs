//! `handoff`: send an optional last text and give the conversation to people in a queue.

use super::super::turn::Turn;
use super::send_optional;
use crate::flow::{Flow, LocalizedTemplate, Step};

/// Sends `text` (if any and if it renders) and hands off; the run stops here.
pub(super) fn run(
    turn: &mut Turn<'_>,
    flow: &Flow,
    step: &Step,
    queue: &str,
    reason: &str,
    text: Option<&LocalizedTemplate>,
) -> Option<String> {
    send_optional(turn, flow, step, text);
    turn.hand_off(queue, reason);
    None
}

#[cfg(test)]
mod tests {
    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::flow::conversation::{Event, Status};

    #[tokio::test]
    async fn a_handoff_tells_the_contact_and_records_the_queue_and_reason() {
        let (plugins, ids) = (Stub::default(), Counter::default());
        let flow = flow(
            r#"
            id = "billing"
            program = "care"
            kind = "transactional"
            start = "human"
            [triggers]
            api = true
            [steps.human]
            type = "handoff"
            queue = "billing"
            reason = "billing question"
            text = "A person will text you shortly."
            "#,
        );
        let mut turn = turn(&plugins, &ids, &[]);
        assert_eq!(execute(&mut turn, &flow, &flow.steps["human"]).await, None);
        assert_eq!(
            turn.effects.outgoing[0].1.body,
            "A person will text you shortly."
        );
        assert!(matches!(
            &turn.conversation.status,
            Status::HandedOff { queue, reason, .. } if queue == "billing" && reason == "billing question"
        ));
        let case = turn.case.as_ref().unwrap();
        assert_eq!(
            (
                case.queue.as_str(),
                case.contact.as_str(),
                case.reason.as_str()
            ),
            ("billing", "+12125550100", "billing question")
        );
        assert!(turn.effects.case_changed);
        assert!(matches!(
            turn.effects.entries.last().map(|e| &e.event),
            Some(Event::Handoff { .. })
        ));
        assert!(turn.settled);
    }
}
