//! `reply`: ask a reply generator for a draft; send it when the plugin is sure, else route to
//! `on_low_confidence` or a person.

use super::super::turn::{Turn, escalation_queue};
use crate::compliance::gate::Origin;
use crate::flow::{Action, Flow, Step};

/// Sends a sure draft and goes to `next`; an unsure one goes to `on_low_confidence` or hands
/// off; a failing call takes the error route.
pub(super) async fn run(turn: &mut Turn<'_>, flow: &Flow, step: &Step) -> Option<String> {
    let Action::Reply {
        plugin,
        min_confidence,
        next,
        on_low_confidence,
        on_error,
    } = &step.action
    else {
        return None;
    };
    let text = turn.field("reply");
    let context = turn.plugin_context();
    let draft = match turn.plugins.draft_reply(plugin, &text, &context).await {
        Ok(draft) => draft,
        Err(error) => return turn.fail(flow, step, on_error.as_deref(), &error.to_string()),
    };
    let unsure = draft.confidence < *min_confidence
        || draft.next_step.as_deref() == Some("handoff")
        || draft.text.trim().is_empty();
    if !unsure {
        let locale = turn.locale(flow).to_owned();
        turn.send_as(Origin::Draft, flow, step, (locale, draft.text));
        return Some(next.clone());
    }
    if let Some(target) = on_low_confidence {
        return Some(target.clone());
    }
    let reason = format!(
        "`{plugin}` was unsure of its reply (confidence {:.2})",
        draft.confidence
    );
    turn.hand_off(&escalation_queue(flow), &reason);
    None
}

#[cfg(test)]
mod tests {
    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::compliance::gate::Origin;
    use crate::flow::conversation::Status;
    use crate::plugin::Draft;

    fn flow_with(on_low: &str) -> crate::flow::Flow {
        flow(&format!(
            r#"
            id = "faq"
            program = "care"
            kind = "transactional"
            start = "answer"
            [triggers]
            api = true
            [steps.answer]
            type = "reply"
            plugin = "faq"
            min_confidence = 0.6
            next = "done"
            {on_low}
            [steps.done]
            type = "end"
            [steps.ask]
            type = "end"
            "#
        ))
    }

    fn stub(text: &str, confidence: f32, next_step: Option<&str>) -> Stub {
        Stub {
            draft: Some(Ok(Draft {
                text: text.to_owned(),
                confidence,
                next_step: next_step.map(str::to_owned),
            })),
            ..Stub::default()
        }
    }

    #[tokio::test]
    async fn a_sure_draft_is_sent_as_a_draft() {
        let (plugins, ids) = (stub("We open at 9.", 0.9, None), Counter::default());
        let flow = flow_with("");
        let mut turn = turn(&plugins, &ids, &[("reply", "hours?")]);
        let next = execute(&mut turn, &flow, &flow.steps["answer"]).await;
        assert_eq!(next.as_deref(), Some("done"));
        let message = &turn.effects.outgoing[0].1;
        assert_eq!(
            (message.body.as_str(), message.origin),
            ("We open at 9.", Origin::Draft)
        );
    }

    #[tokio::test]
    async fn an_unsure_draft_is_never_sent() {
        let unsure = [
            stub("Maybe?", 0.3, None),
            stub("Hi", 0.9, Some("handoff")),
            stub(" ", 0.9, None),
        ];
        for plugins in &unsure {
            let ids = Counter::default();
            let flow = flow_with("");
            let mut turn = turn(plugins, &ids, &[]);
            assert_eq!(execute(&mut turn, &flow, &flow.steps["answer"]).await, None);
            assert!(turn.effects.outgoing.is_empty());
            assert!(matches!(turn.conversation.status, Status::HandedOff { .. }));

            let flow = flow_with("on_low_confidence = \"ask\"");
            let mut turn = super::super::super::turn::testing::turn(plugins, &ids, &[]);
            let next = execute(&mut turn, &flow, &flow.steps["answer"]).await;
            assert_eq!(next.as_deref(), Some("ask"));
            assert!(turn.effects.outgoing.is_empty());
        }
    }
}
