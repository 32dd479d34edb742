//! Service-level clocks. Every clock starts at the handoff (or the contact's unanswered text),
//! never at the bot's first message: what a person owes the contact starts when a person
//! became responsible.

use std::collections::BTreeMap;

use super::config::QueuePolicy;
use crate::store::handoffs::{HandoffCase, SlaKind};

/// When each of a case's running targets is due; a met target is absent.
pub fn due(case: &HandoffCase, policy: &QueuePolicy) -> BTreeMap<SlaKind, i64> {
    let mut due = BTreeMap::new();
    if !case.state.is_open() {
        return due;
    }
    for (&kind, &target_ms) in &policy.targets {
        let started = match kind {
            SlaKind::FirstResponse if case.first_response_at_ms.is_none() => case.handed_off_at_ms,
            SlaKind::NextResponse => match (case.first_response_at_ms, case.awaiting_since_ms) {
                (Some(_), Some(since)) => since,
                _ => continue,
            },
            SlaKind::Resolution => case.handed_off_at_ms,
            SlaKind::FirstResponse => continue,
        };
        let deadline = match &policy.hours {
            Some(hours) => hours.deadline(started, target_ms),
            None => started.saturating_add(target_ms),
        };
        due.insert(kind, deadline);
    }
    due
}

/// The targets `case` has missed by `now_ms` and not yet reported.
pub fn new_breaches(case: &HandoffCase, policy: &QueuePolicy, now_ms: i64) -> Vec<SlaKind> {
    due(case, policy)
        .into_iter()
        .filter(|&(kind, deadline)| deadline <= now_ms && !case.breached.contains(&kind))
        .map(|(kind, _)| kind)
        .collect()
}

/// Whether the page shows the case as late: a target missed and still unmet.
pub fn is_late(case: &HandoffCase, policy: &QueuePolicy, now_ms: i64) -> bool {
    overdue(&due(case, policy), now_ms)
}

/// Whether any of `due`'s deadlines (from [`due`]: running targets only) has passed.
pub fn overdue(due: &BTreeMap<SlaKind, i64>, now_ms: i64) -> bool {
    due.values().any(|&deadline| deadline <= now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::hours::BusinessHours;
    use crate::store::conversations::ConversationKey;
    use crate::store::handoffs::CaseState;

    const MINUTE: i64 = 60_000;

    fn policy() -> QueuePolicy {
        let mut policy = QueuePolicy::unconfigured("billing");
        policy.targets = BTreeMap::from([
            (SlaKind::FirstResponse, 5 * MINUTE),
            (SlaKind::NextResponse, 10 * MINUTE),
            (SlaKind::Resolution, 60 * MINUTE),
        ]);
        policy
    }

    fn case(at_ms: i64) -> HandoffCase {
        let key = ConversationKey::new("+15550001000", "+12125550100");
        HandoffCase::waiting(&key, "billing", "refund", at_ms)
    }

    #[test]
    fn the_first_response_clock_starts_at_the_handoff() {
        let case = case(1_000 * MINUTE);
        let due = due(&case, &policy());
        assert_eq!(due[&SlaKind::FirstResponse], 1_005 * MINUTE);
        assert_eq!(due[&SlaKind::Resolution], 1_060 * MINUTE);
        assert!(
            !due.contains_key(&SlaKind::NextResponse),
            "nothing to answer yet"
        );
        assert!(!is_late(&case, &policy(), 1_004 * MINUTE));
        assert!(is_late(&case, &policy(), 1_005 * MINUTE));
    }

    #[test]
    fn a_reply_stops_the_first_clock_and_a_new_text_starts_the_next() {
        let mut case = case(0);
        case.first_response_at_ms = Some(2 * MINUTE);
        assert!(new_breaches(&case, &policy(), 30 * MINUTE).is_empty());
        case.awaiting_since_ms = Some(30 * MINUTE);
        assert_eq!(
            new_breaches(&case, &policy(), 40 * MINUTE),
            [SlaKind::NextResponse]
        );
        case.breached.push(SlaKind::NextResponse);
        assert!(
            new_breaches(&case, &policy(), 41 * MINUTE).is_empty(),
            "reported once"
        );
        assert_eq!(
            new_breaches(&case, &policy(), 60 * MINUTE),
            [SlaKind::Resolution]
        );
    }

    #[test]
    fn business_hours_pause_the_clocks_overnight() {
        let mut policy = policy();
        policy.hours =
            Some(BusinessHours::parse("UTC", &["mon-fri 09:00-17:00".to_owned()]).unwrap());
        // Wednesday 2026-12-02 16:58 UTC: two business minutes today, three tomorrow.
        let at: jiff::Timestamp = "2026-12-02T16:58:00Z".parse().unwrap();
        let case = case(at.as_millisecond());
        let tomorrow: jiff::Timestamp = "2026-12-03T09:03:00Z".parse().unwrap();
        assert_eq!(
            due(&case, &policy)[&SlaKind::FirstResponse],
            tomorrow.as_millisecond()
        );
    }

    #[test]
    fn a_resolved_case_is_never_late() {
        let mut case = case(0);
        case.state = CaseState::Resolved;
        assert!(!is_late(&case, &policy(), 100 * MINUTE));
    }
}
