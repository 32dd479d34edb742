//! `send`: render the text in the contact's locale and queue it.

use super::super::turn::Turn;
use crate::compliance::gate::Origin;
use crate::flow::{Flow, LocalizedTemplate, Step};

/// Queues the text and goes to `next`; a text that does not render takes the error route.
pub(super) fn run(
    turn: &mut Turn<'_>,
    flow: &Flow,
    step: &Step,
    text: &LocalizedTemplate,
    next: Option<&str>,
    on_error: Option<&str>,
) -> Option<String> {
    match turn.render_text(text) {
        Ok(body) => {
            turn.send_as(Origin::Flow, flow, step, body);
            next.map(str::to_owned)
        }
        Err(error) => turn.fail(flow, step, on_error, &error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::compliance::gate::Origin;
    use crate::flow::conversation::{Event, Status};

    const FLOW: &str = r#"
        id = "greet"
        program = "care"
        kind = "transactional"
        start = "hello"
        [triggers]
        api = true
        fields = ["name"]
        [steps.hello]
        type = "send"
        text = { en = "Hi {{name}}", es = "Hola {{name}}" }
        next = "bye"
        on_error = "bye"
        [steps.bye]
        type = "end"
    "#;

    #[tokio::test]
    async fn a_send_queues_the_rendered_text_in_the_contacts_locale() {
        let (plugins, ids, flow) = (Stub::default(), Counter::default(), flow(FLOW));
        let mut turn = turn(&plugins, &ids, &[("name", "Ana")]);
        turn.conversation.locale = Some("es-MX".to_owned());
        let next = execute(&mut turn, &flow, &flow.steps["hello"]).await;
        assert_eq!(next.as_deref(), Some("bye"));
        let (seq, message) = &turn.effects.outgoing[0];
        assert_eq!((*seq, message.body.as_str()), (1, "Hola Ana"));
        assert_eq!(message.origin, Origin::Flow);
        assert_eq!(message.locale.as_deref(), Some("es"));
        assert_eq!(message.flow.as_deref(), Some("greet"));
        assert_eq!(message.program.as_deref(), Some("care"));
        assert!(matches!(
            &turn.effects.entries[0].event,
            Event::Outbound { text, step, .. } if text == "Hola Ana" && step == "hello"
        ));
    }

    #[tokio::test]
    async fn a_text_with_a_missing_field_is_not_sent_and_takes_the_error_route() {
        let (plugins, ids, flow) = (Stub::default(), Counter::default(), flow(FLOW));
        let mut turn = turn(&plugins, &ids, &[]);
        let next = execute(&mut turn, &flow, &flow.steps["hello"]).await;
        assert_eq!(next.as_deref(), Some("bye"));
        assert!(turn.effects.outgoing.is_empty());
        assert!(
            matches!(&turn.effects.entries[0].event, Event::Error { step, .. } if step == "hello")
        );
        assert_eq!(turn.conversation.status, Status::Idle);
    }
}
