//! Who gets a waiting conversation. Balanced queues give each, oldest first, to the available
//! agent with the fewest open conversations under the queue's cap; a tie goes to the agent idle
//! longest. A reopened conversation goes back to the agent who had it, when they are available,
//! in any queue. Pure functions of the agents and cases, so the rules are tested without a
//! store or a clock.

use std::collections::HashMap;

use super::config::{Assignment, QueuePolicy};
use crate::store::agents::{AgentRecord, Presence};
use crate::store::conversations::ConversationKey;
use crate::store::handoffs::{CaseState, HandoffCase};

/// An agent's load, as balanced assignment weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Load {
    /// Open conversations the agent holds (assigned or snoozed).
    open: usize,
    /// When the agent last got or finished a conversation (0: never).
    busy_at_ms: i64,
}

/// Whether `agent` can take conversations of `queue` now.
fn takes(agent: &AgentRecord, queue: &str) -> bool {
    !agent.disabled
        && agent.presence == Presence::Available
        && agent.queues.iter().any(|q| q == queue)
}

fn loads(agents: &[AgentRecord], cases: &[HandoffCase]) -> HashMap<String, Load> {
    let mut loads: HashMap<String, Load> = agents
        .iter()
        .map(|agent| {
            (
                agent.name.clone(),
                Load {
                    open: 0,
                    busy_at_ms: 0,
                },
            )
        })
        .collect();
    for case in cases {
        let Some(load) = case.assignee.as_ref().and_then(|name| loads.get_mut(name)) else {
            continue;
        };
        if case.state.is_open() && case.state != CaseState::Waiting {
            load.open += 1;
        }
        let last = case.resolved_at_ms.max(case.assigned_at_ms).unwrap_or(0);
        load.busy_at_ms = load.busy_at_ms.max(last);
    }
    loads
}

/// The assignments to make in `policy`'s queue now, oldest waiting first: each conversation
/// with the agent who gets it.
pub fn plan(
    policy: &QueuePolicy,
    agents: &[AgentRecord],
    cases: &[HandoffCase],
    now_ms: i64,
) -> Vec<(ConversationKey, String)> {
    let mut loads = loads(agents, cases);
    let mut waiting: Vec<&HandoffCase> = cases
        .iter()
        .filter(|case| case.state == CaseState::Waiting && case.queue == policy.name)
        .collect();
    waiting.sort_by_key(|case| (case.waiting_since_ms, case.contact.clone()));
    let mut plan = Vec::new();
    for case in waiting {
        let chosen = match returning_agent(case, agents) {
            Some(agent) => Some(agent.to_owned()),
            None if policy.assignment == Assignment::Balanced => {
                pick(agents, &loads, &policy.name, policy.max_per_agent)
            }
            None => None,
        };
        if let Some(agent) = chosen {
            if let Some(load) = loads.get_mut(&agent) {
                load.open += 1;
                load.busy_at_ms = now_ms;
            }
            plan.push((case.key(), agent));
        }
    }
    plan
}

/// The agent a reopened conversation goes back to, when they can take it.
fn returning_agent<'a>(case: &HandoffCase, agents: &'a [AgentRecord]) -> Option<&'a str> {
    let preferred = case.preferred.as_deref()?;
    agents
        .iter()
        .find(|agent| {
            agent.name == preferred && !agent.disabled && agent.presence == Presence::Available
        })
        .map(|agent| agent.name.as_str())
}

/// The available agent of `queue` with the fewest open conversations under `cap`; ties to the
/// one idle longest, then by name.
fn pick(
    agents: &[AgentRecord],
    loads: &HashMap<String, Load>,
    queue: &str,
    cap: usize,
) -> Option<String> {
    agents
        .iter()
        .filter(|agent| takes(agent, queue))
        .filter_map(|agent| loads.get(&agent.name).map(|load| (agent, load)))
        .filter(|(_, load)| load.open < cap)
        .min_by(|(a, la), (b, lb)| {
            (la.open, la.busy_at_ms, &a.name).cmp(&(lb.open, lb.busy_at_ms, &b.name))
        })
        .map(|(agent, _)| agent.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::agents::Role;

    fn agent(name: &str, presence: Presence) -> AgentRecord {
        AgentRecord {
            name: name.into(),
            queues: vec!["billing".into()],
            role: Role::Agent,
            presence,
            disabled: false,
            secret_hash: String::new(),
            created_ms: 0,
        }
    }

    fn waiting(contact: &str, since: i64) -> HandoffCase {
        HandoffCase::waiting(
            &ConversationKey::new("+15550001000", contact),
            "billing",
            "why",
            since,
        )
    }

    fn held(contact: &str, agent: &str, at: i64) -> HandoffCase {
        let mut case = waiting(contact, 0);
        case.state = CaseState::Assigned;
        case.assignee = Some(agent.into());
        case.assigned_at_ms = Some(at);
        case
    }

    fn balanced(cap: usize) -> QueuePolicy {
        let mut policy = QueuePolicy::unconfigured("billing");
        policy.assignment = Assignment::Balanced;
        policy.max_per_agent = cap;
        policy
    }

    fn names(plan: &[(ConversationKey, String)]) -> Vec<(&str, &str)> {
        plan.iter()
            .map(|(key, agent)| (key.contact.as_str(), agent.as_str()))
            .collect()
    }

    #[test]
    fn the_fewest_open_wins_and_a_tie_goes_to_the_agent_idle_longest() {
        let agents = [
            agent("ana", Presence::Available),
            agent("bob", Presence::Available),
            agent("cy", Presence::Available),
        ];
        let cases = [
            held("+12125550001", "ana", 10),
            held("+12125550002", "bob", 20),
            held("+12125550003", "bob", 30),
            waiting("+12125550100", 100),
        ];
        // cy has none: cy.
        assert_eq!(
            names(&plan(&balanced(5), &agents, &cases, 1_000)),
            [("+12125550100", "cy")]
        );
        // Without cy, ana (one open) beats bob (two).
        assert_eq!(
            names(&plan(&balanced(5), &agents[..2], &cases, 1_000)),
            [("+12125550100", "ana")]
        );
        // ana and bob one each: ana got hers at 10, bob his at 30: ana has been idle longer.
        let tie = [
            held("+12125550001", "ana", 10),
            held("+12125550002", "bob", 30),
            waiting("+12125550100", 100),
        ];
        assert_eq!(
            names(&plan(&balanced(5), &agents[..2], &tie, 1_000)),
            [("+12125550100", "ana")]
        );
    }

    #[test]
    fn the_queue_drains_oldest_first_up_to_each_agents_cap() {
        let agents = [
            agent("ana", Presence::Available),
            agent("bob", Presence::Busy),
        ];
        let cases = [
            waiting("+12125550103", 300),
            waiting("+12125550101", 100),
            waiting("+12125550102", 200),
            held("+12125550001", "ana", 10),
        ];
        // ana holds one under a cap of 3: she gets the two oldest; bob is busy.
        assert_eq!(
            names(&plan(&balanced(3), &agents, &cases, 1_000)),
            [("+12125550101", "ana"), ("+12125550102", "ana")]
        );
    }

    #[test]
    fn a_manual_queue_assigns_only_returning_conversations() {
        let agents = [agent("ana", Presence::Available)];
        let mut reopened = waiting("+12125550101", 100);
        reopened.preferred = Some("ana".into());
        let cases = [reopened, waiting("+12125550102", 50)];
        let manual = QueuePolicy::unconfigured("billing");
        assert_eq!(
            names(&plan(&manual, &agents, &cases, 1_000)),
            [("+12125550101", "ana")]
        );
        // An offline agent does not get it back: it waits for anyone.
        let offline = [agent("ana", Presence::Offline)];
        assert!(plan(&manual, &offline, &cases, 1_000).is_empty());
    }

    #[test]
    fn disabled_and_other_queues_agents_get_nothing() {
        let mut disabled = agent("ana", Presence::Available);
        disabled.disabled = true;
        let mut elsewhere = agent("bob", Presence::Available);
        elsewhere.queues = vec!["support".into()];
        let cases = [waiting("+12125550101", 100)];
        assert!(plan(&balanced(5), &[disabled, elsewhere], &cases, 1_000).is_empty());
    }
}
