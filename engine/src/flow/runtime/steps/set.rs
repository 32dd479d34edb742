//! `set`: render fields from templates.

use std::collections::BTreeMap;

use super::super::turn::Turn;
use crate::flow::template::Template;
use crate::flow::{Flow, Step};

/// Sets the fields and goes to `next`; a template that does not render fails the step.
pub(super) fn run(
    turn: &mut Turn<'_>,
    flow: &Flow,
    step: &Step,
    fields: &BTreeMap<String, Template>,
    next: &str,
) -> Option<String> {
    match turn.render_all(fields) {
        Ok(values) => {
            turn.conversation.fields.extend(values);
            Some(next.to_owned())
        }
        Err(error) => turn.fail(flow, step, None, &error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::flow::conversation::Status;

    #[tokio::test]
    async fn fields_are_rendered_together_or_the_step_fails() {
        let (plugins, ids) = (Stub::default(), Counter::default());
        let flow = flow(
            r#"
            id = "note"
            program = "care"
            kind = "transactional"
            start = "note"
            [triggers]
            api = true
            [steps.note]
            type = "set"
            fields = { order_number = "{{reply}}", greeting = "Hi {{first}}" }
            next = "done"
            [steps.done]
            type = "end"
            "#,
        );
        let mut turn = turn(&plugins, &ids, &[("reply", "A100"), ("first", "Ana")]);
        let next = execute(&mut turn, &flow, &flow.steps["note"]).await;
        assert_eq!(next.as_deref(), Some("done"));
        assert_eq!(turn.conversation.fields["order_number"], "A100");
        assert_eq!(turn.conversation.fields["greeting"], "Hi Ana");

        let mut turn =
            super::super::super::turn::testing::turn(&plugins, &ids, &[("reply", "A100")]);
        assert_eq!(execute(&mut turn, &flow, &flow.steps["note"]).await, None);
        assert!(!turn.conversation.fields.contains_key("order_number"));
        assert!(matches!(turn.conversation.status, Status::HandedOff { .. }));
    }
}
