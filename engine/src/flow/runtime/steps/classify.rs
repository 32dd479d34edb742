//! `classify`: ask a classifier plugin what the last reply means, and route on the intent.

use super::super::turn::Turn;
use crate::flow::compile::ENTITY_FIELD_PREFIX;
use crate::flow::conversation::{Event, MAX_INTENTS};
use crate::flow::{Action, Flow, Step};
use crate::plugin::Intent;

/// Classifies the reply; goes to the intent's route (at or above `min_confidence`), else to
/// `default`; a failing call takes the error route.
pub(super) async fn run(turn: &mut Turn<'_>, flow: &Flow, step: &Step) -> Option<String> {
    let Action::Classify {
        plugin,
        routes,
        default,
        min_confidence,
        on_error,
    } = &step.action
    else {
        return None;
    };
    let text = turn.field("reply");
    let context = turn.plugin_context();
    match turn.plugins.classify(plugin, &text, &context).await {
        Ok(intent) => {
            remember(turn, &intent);
            let routed = routes
                .get(&intent.name)
                .filter(|_| intent.confidence >= *min_confidence);
            Some(routed.unwrap_or(default).clone())
        }
        Err(error) => turn.fail(flow, step, on_error.as_deref(), &error.to_string()),
    }
}

/// Keeps the intent, its confidence and its entities as fields, and in the conversation's
/// recent intents, and records it in the transcript.
fn remember(turn: &mut Turn<'_>, intent: &Intent) {
    let fields = &mut turn.conversation.fields;
    fields.insert("intent".to_owned(), intent.name.clone());
    fields.insert(
        "intent_confidence".to_owned(),
        format!("{:.2}", intent.confidence),
    );
    for (name, value) in &intent.entities {
        fields.insert(format!("{ENTITY_FIELD_PREFIX}{name}"), value.clone());
    }
    let recent = &mut turn.conversation.last_intents;
    recent.insert(0, intent.name.clone());
    recent.truncate(MAX_INTENTS);
    turn.record(Event::Classified {
        intent: intent.name.clone(),
        confidence: intent.confidence,
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::flow::conversation::{Event, Status};
    use crate::plugin::Intent;

    const FLOW: &str = r#"
        id = "understand"
        program = "care"
        kind = "transactional"
        start = "classify"
        [triggers]
        api = true
        [steps.classify]
        type = "classify"
        plugin = "intents"
        min_confidence = 0.7
        routes = { confirm = "yes" }
        default = "unclear"
        on_error = "unclear"
        [steps.yes]
        type = "end"
        [steps.unclear]
        type = "end"
    "#;

    fn stub(name: &str, confidence: f32) -> Stub {
        Stub {
            intent: Some(Ok(Intent {
                name: name.to_owned(),
                confidence,
                entities: BTreeMap::from([("day".to_owned(), "monday".to_owned())]),
            })),
            ..Stub::default()
        }
    }

    #[tokio::test]
    async fn a_confident_intent_takes_its_route_and_is_remembered() {
        let (plugins, ids, flow) = (stub("confirm", 0.9), Counter::default(), flow(FLOW));
        let mut turn = turn(&plugins, &ids, &[("reply", "yes")]);
        let next = execute(&mut turn, &flow, &flow.steps["classify"]).await;
        assert_eq!(next.as_deref(), Some("yes"));
        let fields = &turn.conversation.fields;
        assert_eq!(fields["intent"], "confirm");
        assert_eq!(fields["intent_confidence"], "0.90");
        assert_eq!(fields["entity_day"], "monday");
        assert_eq!(turn.conversation.last_intents, ["confirm"]);
        assert!(
            matches!(&turn.effects.entries[0].event, Event::Classified { intent, .. } if intent == "confirm")
        );
    }

    #[tokio::test]
    async fn an_unsure_or_unrouted_intent_goes_to_the_default() {
        for (name, confidence) in [("confirm", 0.5), ("cancel", 0.99)] {
            let (plugins, ids, flow) = (stub(name, confidence), Counter::default(), flow(FLOW));
            let mut turn = turn(&plugins, &ids, &[]);
            let next = execute(&mut turn, &flow, &flow.steps["classify"]).await;
            assert_eq!(next.as_deref(), Some("unclear"), "{name} {confidence}");
        }
    }

    #[tokio::test]
    async fn a_failing_classifier_takes_the_error_route() {
        let plugins = Stub {
            intent: Some(Err("unreachable executed".to_owned())),
            ..Stub::default()
        };
        let (ids, flow) = (Counter::default(), flow(FLOW));
        let mut turn = turn(&plugins, &ids, &[]);
        let next = execute(&mut turn, &flow, &flow.steps["classify"]).await;
        assert_eq!(next.as_deref(), Some("unclear"));
        assert!(
            matches!(&turn.effects.entries[0].event, Event::Error { message, .. } if message.contains("trapped"))
        );
        assert_eq!(turn.conversation.status, Status::Idle);
    }
}
