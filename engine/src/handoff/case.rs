//! What people and the engine do to a handed-off conversation, and the rules each change obeys:
//! one holder at a time, a resolved conversation reopens on the contact's next text, every change
//! recorded with who made it. The runtime applies these inside the conversation's turn, so a
//! change and the texts it sends are one atomic write.

use crate::store::handoffs::{CaseAction, CaseState, HandoffCase, Note, SlaKind, Stamped};

/// A change to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum DeskAction {
    /// Take it (reopens a resolved one).
    Claim,
    /// Give it to `to` (a supervisor, or balanced assignment).
    Assign {
        /// The agent.
        to: String,
    },
    /// Send `text` to the contact (claims an unassigned conversation).
    Reply {
        /// What to send.
        text: String,
        /// The thread length the text was drafted against, when the agent's page knows it.
        version: Option<u64>,
        /// Send even though the thread changed since `version`.
        confirm: bool,
    },
    /// A private note.
    Note {
        /// The note.
        text: String,
    },
    /// Set aside until `until_ms`.
    Snooze {
        /// Until when.
        until_ms: i64,
    },
    /// Done.
    Resolve,
    /// Back to the bot, at `step` of the flow it left, or ended.
    Release {
        /// The step.
        step: Option<String>,
    },
    /// The engine: a snooze ran out.
    Wake,
    /// The engine: the holder was disabled; back in the queue, in its place by age.
    Requeue,
    /// The engine: targets missed, and where the queue routes breaches.
    Breach {
        /// The missed targets.
        kinds: Vec<SlaKind>,
        /// The queue to move it to.
        route: Option<String>,
    },
    /// The engine: an auto-reply (`after_hours` or `no_answer`).
    AutoReply {
        /// Which.
        kind: AutoReplyKind,
        /// The text.
        text: String,
    },
}

/// Which auto-reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoReplyKind {
    /// Nobody answered within the queue's wait.
    NoAnswer,
    /// The handoff came outside business hours.
    AfterHours,
}

impl AutoReplyKind {
    /// The name, as the transcript's step shows it (`handoff:no_answer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAnswer => "no_answer",
            Self::AfterHours => "after_hours",
        }
    }
}

/// A change and who asks for it (`None`: the engine).
#[derive(Debug, Clone, PartialEq)]
pub struct DeskCommand {
    /// The agent.
    pub agent: Option<String>,
    /// The change.
    pub action: DeskAction,
}

/// Why a change was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaseError {
    /// The conversation was never handed off.
    #[error("{0} has no handed-off conversation")]
    NotHandedOff(String),
    /// Another agent holds it.
    #[error("{holder} holds this conversation: ask them, or a supervisor to reassign it")]
    HeldBy {
        /// Who.
        holder: String,
    },
    /// The thread grew since the reply was drafted.
    #[error(
        "the thread changed since you loaded it ({seen} entries, now {now}): read the new texts, then send again with \"confirm\": true"
    )]
    ThreadChanged {
        /// What the agent saw.
        seen: u64,
        /// What there is.
        now: u64,
    },
    /// The conversation is resolved.
    #[error("this conversation is resolved: claim it to reopen it")]
    Resolved,
    /// The conversation went back to the bot.
    #[error(
        "this conversation went back to the bot: it comes back to people when the flow hands it off"
    )]
    Released,
    /// The release names a step the flow does not have.
    #[error(
        "flow `{flow}` has no step `{step}`: release to one of its steps, or without a step to end the run"
    )]
    UnknownStep {
        /// The flow.
        flow: String,
        /// The step.
        step: String,
    },
    /// Something about the request is wrong (an empty text, a past snooze).
    #[error("{0}")]
    Invalid(String),
    /// An engine change no longer applies (someone acted first): nothing to do.
    #[error("the conversation changed: nothing to do")]
    Stale,
}

impl HandoffCase {
    fn log(&mut self, agent: Option<&str>, action: impl Into<String>, now_ms: i64) {
        self.history.push(CaseAction {
            agent: agent.map(str::to_owned),
            action: action.into(),
            at_ms: now_ms,
        });
    }

    /// Whether `agent` may act on it as its holder: it holds it, or nobody does.
    fn check_holder(&self, agent: &str) -> Result<(), CaseError> {
        match &self.assignee {
            Some(holder) if holder != agent && self.state.is_open() => Err(CaseError::HeldBy {
                holder: holder.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn give_to(&mut self, agent: &str, now_ms: i64) {
        self.assignee = Some(agent.to_owned());
        self.state = CaseState::Assigned;
        self.assigned_at_ms = Some(now_ms);
        self.snoozed_until_ms = None;
    }

    /// `agent` takes it; a resolved conversation reopens with them.
    ///
    /// # Errors
    ///
    /// [`CaseError::HeldBy`] when another agent has it.
    pub fn claim(&mut self, agent: &str, now_ms: i64) -> Result<(), CaseError> {
        if self.released {
            return Err(CaseError::Released);
        }
        self.check_holder(agent)?;
        if self.state == CaseState::Assigned && self.assignee.as_deref() == Some(agent) {
            return Ok(());
        }
        if self.state == CaseState::Resolved {
            self.restart_clocks(now_ms);
        }
        self.give_to(agent, now_ms);
        self.log(Some(agent), "claimed", now_ms);
        Ok(())
    }

    /// `by` (a supervisor, or the engine) gives it to `to`.
    ///
    /// # Errors
    ///
    /// [`CaseError::Resolved`]; [`CaseError::Stale`] when the engine's assignment finds it no
    /// longer waiting.
    pub fn assign(&mut self, by: Option<&str>, to: &str, now_ms: i64) -> Result<(), CaseError> {
        if by.is_none() && self.state != CaseState::Waiting {
            return Err(CaseError::Stale);
        }
        if self.state == CaseState::Resolved {
            return Err(CaseError::Resolved);
        }
        self.give_to(to, now_ms);
        self.log(by, format!("assigned to {to}"), now_ms);
        Ok(())
    }

    /// `agent` replied: the first-response clock (or the next-response one) stops.
    ///
    /// # Errors
    ///
    /// [`CaseError::HeldBy`], [`CaseError::Resolved`].
    pub fn reply(&mut self, agent: &str, now_ms: i64) -> Result<(), CaseError> {
        self.check_open(agent)?;
        if self.assignee.is_none() {
            self.give_to(agent, now_ms);
            self.log(Some(agent), "claimed by replying", now_ms);
        }
        self.first_response_at_ms.get_or_insert(now_ms);
        self.awaiting_since_ms = None;
        // Each of the contact's texts has its own next-response clock: a later miss is reported.
        self.breached.retain(|kind| *kind != SlaKind::NextResponse);
        self.log(Some(agent), "replied", now_ms);
        Ok(())
    }

    /// A private note.
    pub fn note(&mut self, agent: &str, text: &str, now_ms: i64) {
        self.notes.push(Note {
            agent: agent.to_owned(),
            text: text.to_owned(),
            at_ms: now_ms,
        });
    }

    /// Set aside until `until_ms`; it stays with its holder.
    ///
    /// # Errors
    ///
    /// [`CaseError::HeldBy`], [`CaseError::Resolved`], or a time not in the future.
    pub fn snooze(&mut self, agent: &str, until_ms: i64, now_ms: i64) -> Result<(), CaseError> {
        self.check_open(agent)?;
        if until_ms <= now_ms {
            return Err(CaseError::Invalid(
                "snooze until a time in the future".to_owned(),
            ));
        }
        self.state = CaseState::Snoozed;
        self.snoozed_until_ms = Some(until_ms);
        self.log(
            Some(agent),
            format!(
                "snoozed until {}",
                crate::compliance::gate::rfc3339(until_ms)
            ),
            now_ms,
        );
        Ok(())
    }

    fn check_open(&self, agent: &str) -> Result<(), CaseError> {
        if self.state == CaseState::Resolved {
            return Err(CaseError::Resolved);
        }
        self.check_holder(agent)
    }

    /// Done; a later text from the contact reopens it with `agent`.
    ///
    /// # Errors
    ///
    /// [`CaseError::HeldBy`], [`CaseError::Resolved`].
    pub fn resolve(&mut self, agent: &str, now_ms: i64) -> Result<(), CaseError> {
        self.check_open(agent)?;
        self.close(agent, false, now_ms);
        self.log(Some(agent), "resolved", now_ms);
        Ok(())
    }

    /// Back to the bot; not reopened by a later text.
    ///
    /// # Errors
    ///
    /// [`CaseError::HeldBy`], [`CaseError::Resolved`].
    pub fn release(
        &mut self,
        agent: &str,
        step: Option<&str>,
        now_ms: i64,
    ) -> Result<(), CaseError> {
        self.check_open(agent)?;
        self.close(agent, true, now_ms);
        let action = match step {
            Some(step) => format!("released to step `{step}`"),
            None => "released: the run ended".to_owned(),
        };
        self.log(Some(agent), action, now_ms);
        Ok(())
    }

    fn close(&mut self, agent: &str, released: bool, now_ms: i64) {
        self.state = CaseState::Resolved;
        self.assignee.get_or_insert_with(|| agent.to_owned());
        self.preferred.clone_from(&self.assignee);
        self.resolved_at_ms = Some(now_ms);
        self.snoozed_until_ms = None;
        self.released = released;
    }

    /// The snooze ran out: back to its holder, or the queue.
    ///
    /// # Errors
    ///
    /// [`CaseError::Stale`] when it is not snoozed.
    pub fn wake(&mut self, now_ms: i64) -> Result<(), CaseError> {
        if self.state != CaseState::Snoozed {
            return Err(CaseError::Stale);
        }
        self.state = match self.assignee {
            Some(_) => CaseState::Assigned,
            None => CaseState::Waiting,
        };
        self.snoozed_until_ms = None;
        self.log(None, "snooze ended", now_ms);
        Ok(())
    }

    /// Its holder can no longer work it (disabled): back in the queue, keeping its place.
    ///
    /// # Errors
    ///
    /// [`CaseError::Stale`] when nobody holds it or it is resolved.
    pub fn requeue(&mut self, now_ms: i64) -> Result<(), CaseError> {
        let Some(holder) = self.assignee.take().filter(|_| self.state.is_open()) else {
            return Err(CaseError::Stale);
        };
        self.state = CaseState::Waiting;
        self.snoozed_until_ms = None;
        self.log(
            None,
            format!("back in the queue: {holder} was disabled"),
            now_ms,
        );
        Ok(())
    }

    /// The contact's text the host answered itself (STOP, HELP, START): shown, owed nothing.
    pub fn seen(&mut self, text: &str, now_ms: i64) {
        self.last_inbound = Some(Stamped {
            text: text.to_owned(),
            at_ms: now_ms,
        });
    }

    /// The contact texted while people have the conversation: it wakes a snoozed case and,
    /// after the first answer, starts the next-response clock.
    pub fn inbound(&mut self, text: &str, now_ms: i64) {
        self.seen(text, now_ms);
        if self.state == CaseState::Snoozed {
            let _ = self.wake(now_ms);
        }
        if self.first_response_at_ms.is_some() {
            self.awaiting_since_ms.get_or_insert(now_ms);
        }
    }

    /// Whether a text from the contact at `now_ms` reopens it: resolved by a person (not
    /// released to the bot) within `within_ms`.
    pub fn reopens(&self, now_ms: i64, within_ms: i64) -> bool {
        self.state == CaseState::Resolved
            && !self.released
            && self
                .resolved_at_ms
                .is_some_and(|at| now_ms - at <= within_ms)
    }

    /// The contact texted after resolution: back in its queue, for the agent who had it when
    /// they are available.
    pub fn reopen(&mut self, now_ms: i64) {
        self.back_in_queue(now_ms);
        self.log(None, "reopened by the contact's text", now_ms);
    }

    /// Waiting again, every clock from now, for the agent who had it when they are available.
    fn back_in_queue(&mut self, now_ms: i64) {
        self.restart_clocks(now_ms);
        self.preferred = self.assignee.take().or(self.preferred.take());
        self.state = CaseState::Waiting;
    }

    /// A new handoff of a conversation handed off before: the same case (notes and history are
    /// the next agent's context), in `queue` for `reason`, every clock from now.
    pub fn hand_off_again(&mut self, queue: &str, reason: &str, now_ms: i64) {
        self.back_in_queue(now_ms);
        self.queue = queue.to_owned();
        self.reason = reason.to_owned();
        self.log(None, format!("handed off to {queue}: {reason}"), now_ms);
    }

    fn restart_clocks(&mut self, now_ms: i64) {
        self.handed_off_at_ms = now_ms;
        self.waiting_since_ms = now_ms;
        self.assigned_at_ms = None;
        self.first_response_at_ms = None;
        self.awaiting_since_ms = None;
        self.resolved_at_ms = None;
        self.released = false;
        self.breached.clear();
        self.no_answer_replied = false;
        self.after_hours_replied = false;
    }

    /// Missed targets are recorded (each reported once); a waiting conversation moves to
    /// `route` and keeps its place by age.
    ///
    /// # Errors
    ///
    /// [`CaseError::Stale`] when every target was already reported or it is resolved.
    pub fn breach(
        &mut self,
        kinds: &[SlaKind],
        route: Option<&str>,
        now_ms: i64,
    ) -> Result<(), CaseError> {
        let new: Vec<SlaKind> = kinds
            .iter()
            .copied()
            .filter(|kind| !self.breached.contains(kind))
            .collect();
        if new.is_empty() || !self.state.is_open() {
            return Err(CaseError::Stale);
        }
        self.breached.extend(&new);
        let names: Vec<&str> = new.iter().map(|kind| kind.as_str()).collect();
        self.log(
            None,
            format!("late: {} target missed", names.join(", ")),
            now_ms,
        );
        if let Some(route) = route
            && self.state == CaseState::Waiting
            && route != self.queue
        {
            self.log(
                None,
                format!("moved from {} to {route}", self.queue),
                now_ms,
            );
            self.queue = route.to_owned();
        }
        Ok(())
    }

    /// An auto-reply goes, once per handoff.
    ///
    /// # Errors
    ///
    /// [`CaseError::Stale`] when it went already, or a person answered.
    pub fn auto_reply(&mut self, kind: AutoReplyKind, now_ms: i64) -> Result<(), CaseError> {
        let flag = match kind {
            AutoReplyKind::NoAnswer => &mut self.no_answer_replied,
            AutoReplyKind::AfterHours => &mut self.after_hours_replied,
        };
        if *flag || self.first_response_at_ms.is_some() || !self.state.is_open() {
            return Err(CaseError::Stale);
        }
        *flag = true;
        self.log(None, format!("auto-reply ({})", kind.as_str()), now_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conversations::ConversationKey;

    fn case() -> HandoffCase {
        HandoffCase::waiting(
            &ConversationKey::new("+15550001000", "+12125550100"),
            "billing",
            "refund",
            0,
        )
    }

    #[test]
    fn one_holder_at_a_time() {
        let mut case = case();
        case.claim("ana", 1).unwrap();
        assert_eq!(
            case.claim("bob", 2),
            Err(CaseError::HeldBy {
                holder: "ana".into()
            })
        );
        assert_eq!(
            case.reply("bob", 2),
            Err(CaseError::HeldBy {
                holder: "ana".into()
            })
        );
        assert_eq!(
            case.resolve("bob", 2),
            Err(CaseError::HeldBy {
                holder: "ana".into()
            })
        );
        case.claim("ana", 3).unwrap();
        assert_eq!(
            case.history
                .iter()
                .filter(|a| a.action == "claimed")
                .count(),
            1
        );
    }

    #[test]
    fn a_reply_to_an_unassigned_conversation_claims_it_and_stops_the_first_clock() {
        let mut case = case();
        case.reply("ana", 5).unwrap();
        assert_eq!(case.assignee.as_deref(), Some("ana"));
        assert_eq!(case.first_response_at_ms, Some(5));
        case.inbound("still there?", 9);
        assert_eq!(case.awaiting_since_ms, Some(9));
        case.reply("ana", 12).unwrap();
        assert_eq!(
            (case.first_response_at_ms, case.awaiting_since_ms),
            (Some(5), None)
        );
    }

    #[test]
    fn a_resolved_conversation_reopens_for_its_agent_unless_released() {
        let mut case = case();
        case.claim("ana", 1).unwrap();
        case.resolve("ana", 10).unwrap();
        assert!(case.reopens(20, 100));
        assert!(!case.reopens(200, 100), "too late");
        case.reopen(20);
        assert_eq!(
            (
                case.state,
                case.preferred.as_deref(),
                case.assignee.as_deref()
            ),
            (CaseState::Waiting, Some("ana"), None)
        );
        assert_eq!(case.handed_off_at_ms, 20, "the clocks start again");
        case.claim("ana", 21).unwrap();
        case.release("ana", None, 30).unwrap();
        assert!(!case.reopens(31, 100));
    }

    #[test]
    fn each_unanswered_text_has_its_own_next_response_clock() {
        let mut case = case();
        case.reply("ana", 1).unwrap();
        case.inbound("hello?", 2);
        case.breach(&[SlaKind::NextResponse], None, 20).unwrap();
        case.reply("ana", 21).unwrap();
        case.inbound("and now?", 30);
        assert!(
            case.breach(&[SlaKind::NextResponse], None, 50).is_ok(),
            "a second miss is reported"
        );
        // A text the host answered (STOP) owes the contact nothing from a person.
        let mut stopped = self::case();
        stopped.reply("ana", 1).unwrap();
        stopped.seen("STOP", 5);
        assert_eq!(
            (
                stopped.awaiting_since_ms,
                stopped.last_inbound.unwrap().text.as_str()
            ),
            (None, "STOP")
        );
    }

    #[test]
    fn a_released_conversation_cannot_be_claimed_and_a_disabled_holders_goes_back() {
        let mut case = case();
        case.claim("ana", 1).unwrap();
        case.requeue(2).unwrap();
        assert_eq!(
            (case.state, case.assignee.as_deref(), case.waiting_since_ms),
            (CaseState::Waiting, None, 0)
        );
        assert_eq!(case.requeue(3), Err(CaseError::Stale));
        case.claim("bob", 4).unwrap();
        case.release("bob", None, 5).unwrap();
        assert_eq!(case.claim("bob", 6), Err(CaseError::Released));
    }

    #[test]
    fn a_text_wakes_a_snoozed_conversation() {
        let mut case = case();
        case.claim("ana", 1).unwrap();
        assert!(matches!(
            case.snooze("ana", 1, 5),
            Err(CaseError::Invalid(_))
        ));
        case.snooze("ana", 100, 5).unwrap();
        case.inbound("hello?", 50);
        assert_eq!(
            (case.state, case.snoozed_until_ms),
            (CaseState::Assigned, None)
        );
    }

    #[test]
    fn a_breach_is_recorded_once_and_moves_a_waiting_conversation() {
        let mut case = case();
        case.breach(&[SlaKind::FirstResponse], Some("escalations"), 7)
            .unwrap();
        assert_eq!(
            (case.queue.as_str(), case.breached.as_slice()),
            ("escalations", &[SlaKind::FirstResponse][..])
        );
        assert_eq!(
            case.breach(&[SlaKind::FirstResponse], None, 8),
            Err(CaseError::Stale)
        );
        assert_eq!(case.waiting_since_ms, 0, "it keeps its place by age");
    }

    #[test]
    fn an_auto_reply_goes_once_and_never_after_a_person_answered() {
        let mut case = case();
        case.auto_reply(AutoReplyKind::AfterHours, 1).unwrap();
        assert_eq!(
            case.auto_reply(AutoReplyKind::AfterHours, 2),
            Err(CaseError::Stale)
        );
        case.reply("ana", 3).unwrap();
        assert_eq!(
            case.auto_reply(AutoReplyKind::NoAnswer, 4),
            Err(CaseError::Stale)
        );
    }
}
