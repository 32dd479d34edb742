//! `connector`: look a record up, or write one, through a connector plugin; the result's
//! fields become conversation fields.

use super::super::turn::Turn;
use crate::flow::{Action, ConnectorAction, Flow, Step};
use crate::plugin::ConnectorCall;

/// Calls the connector and goes to `next`; a template that does not render or a failing call
/// takes the error route.
pub(super) async fn run(turn: &mut Turn<'_>, flow: &Flow, step: &Step) -> Option<String> {
    let Action::Connector {
        plugin,
        entity,
        call,
        outputs,
        next,
        on_error,
    } = &step.action
    else {
        return None;
    };
    let context = turn.plugin_context();
    let call = match call {
        ConnectorAction::Lookup { key } => {
            key.render(&turn.conversation.fields)
                .map(|key| ConnectorCall::Lookup {
                    entity: entity.clone(),
                    key,
                    context,
                })
        }
        ConnectorAction::Write { fields } => {
            turn.render_all(fields).map(|fields| ConnectorCall::Write {
                entity: entity.clone(),
                fields,
                context,
            })
        }
    };
    let call = match call {
        Ok(call) => call,
        Err(error) => return turn.fail(flow, step, on_error.as_deref(), &error.to_string()),
    };
    match turn.plugins.connect(plugin, &call).await {
        Ok(result) => {
            // Declared outputs the call did not return must not keep the values of an
            // earlier call.
            for output in outputs {
                turn.conversation.fields.remove(output);
            }
            turn.conversation.fields.extend(result);
            Some(next.clone())
        }
        Err(error) => turn.fail(flow, step, on_error.as_deref(), &error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::flow::conversation::Event;

    const FLOW: &str = r#"
        id = "lookup"
        program = "care"
        kind = "transactional"
        start = "lookup"
        [triggers]
        api = true
        fields = ["order_number"]
        [steps.lookup]
        type = "connector"
        plugin = "orders"
        operation = "lookup"
        entity = "order"
        key = "{{order_number}}"
        outputs = ["order_status", "order_eta"]
        next = "done"
        on_error = "failed"
        [steps.done]
        type = "end"
        [steps.failed]
        type = "end"
    "#;

    #[tokio::test]
    async fn results_become_fields_and_stale_outputs_are_cleared() {
        let plugins = Stub {
            fields: Some(Ok(BTreeMap::from([(
                "order_status".to_owned(),
                "shipped".to_owned(),
            )]))),
            ..Stub::default()
        };
        let (ids, flow) = (Counter::default(), flow(FLOW));
        let mut turn = turn(
            &plugins,
            &ids,
            &[("order_number", "A100"), ("order_eta", "May 1")],
        );
        let next = execute(&mut turn, &flow, &flow.steps["lookup"]).await;
        assert_eq!(next.as_deref(), Some("done"));
        assert_eq!(turn.conversation.fields["order_status"], "shipped");
        assert!(!turn.conversation.fields.contains_key("order_eta"));
    }

    #[tokio::test]
    async fn an_unrenderable_key_or_a_failing_call_takes_the_error_route() {
        let plugins = Stub {
            fields: Some(Err("upstream said 500".to_owned())),
            ..Stub::default()
        };
        let (ids, flow) = (Counter::default(), flow(FLOW));
        for fields in [&[][..], &[("order_number", "A100")][..]] {
            let mut turn = turn(&plugins, &ids, fields);
            let next = execute(&mut turn, &flow, &flow.steps["lookup"]).await;
            assert_eq!(next.as_deref(), Some("failed"), "{fields:?}");
            assert!(
                matches!(&turn.effects.entries[0].event, Event::Error { step, .. } if step == "lookup")
            );
        }
    }
}
