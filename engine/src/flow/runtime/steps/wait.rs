//! `wait`: park the run until a reply or the timeout, whichever comes first.

use super::super::turn::Turn;
use crate::flow::Step;
use crate::flow::conversation::{Status, Timer};

/// Sets the conversation waiting at this step with a timeout timer; the run stops here.
pub(super) fn run(turn: &mut Turn<'_>, step: &Step, timeout_ms: i64) -> Option<String> {
    let until_ms = turn.now.saturating_add(timeout_ms);
    turn.conversation.status = Status::Waiting {
        step: step.name.clone(),
        until_ms,
    };
    let timer = Timer::WaitTimeout {
        run: turn.conversation.run,
        step: step.name.clone(),
    };
    turn.conversation.wait_timer = Some(turn.add_timer(until_ms, timer));
    turn.settled = true;
    None
}

#[cfg(test)]
mod tests {
    use super::super::super::effects::TimerOp;
    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use crate::flow::conversation::{Status, Timer, TimerKey};

    #[tokio::test]
    async fn a_wait_parks_the_run_with_a_timeout_timer() {
        let (plugins, ids) = (Stub::default(), Counter::default());
        let flow = flow(
            r#"
            id = "ask"
            program = "care"
            kind = "transactional"
            start = "wait"
            [triggers]
            api = true
            [steps.wait]
            type = "wait"
            timeout = "2h"
            on_reply = "done"
            on_timeout = "done"
            [steps.done]
            type = "end"
            "#,
        );
        let mut turn = turn(&plugins, &ids, &[]);
        turn.conversation.run = 3;
        assert_eq!(execute(&mut turn, &flow, &flow.steps["wait"]).await, None);
        let due = 1000 + 2 * 3600 * 1000;
        assert_eq!(
            turn.conversation.status,
            Status::Waiting {
                step: "wait".into(),
                until_ms: due
            }
        );
        let [TimerOp::Add(key, record)] = turn.effects.timer_ops.as_slice() else {
            panic!("{:?}", turn.effects.timer_ops);
        };
        assert_eq!(key.due_ms, due);
        assert_eq!(
            record.timer,
            Timer::WaitTimeout {
                run: 3,
                step: "wait".into()
            }
        );
        let stored = turn
            .conversation
            .wait_timer
            .as_deref()
            .and_then(TimerKey::from_hex);
        assert_eq!(stored.as_ref(), Some(key));
        assert!(turn.settled);
    }
}
