//! `branch`: route on a field or the last reply, the first matching case winning.

use super::super::turn::Turn;
use crate::flow::{Case, Condition, words};

/// The first case that matches, else `default`.
pub(super) fn run(turn: &mut Turn<'_>, cases: &[Case], default: &str) -> Option<String> {
    let chosen = cases
        .iter()
        .find(|case| matches(turn, case))
        .map_or(default, |case| case.next.as_str());
    Some(chosen.to_owned())
}

fn matches(turn: &Turn<'_>, case: &Case) -> bool {
    let value = turn.field(case.field.as_deref().unwrap_or("reply"));
    let value_words = words::words(&value);
    if case
        .except
        .iter()
        .any(|phrase| words::contains_phrase(&value_words, phrase))
    {
        return false;
    }
    match &case.condition {
        Condition::OneOf(options) => options.contains(&words::keyword(&value)),
        Condition::Contains(phrases) => phrases
            .iter()
            .any(|phrase| words::contains_affirmed(&value_words, phrase)),
        Condition::AtLeast(minimum) => {
            first_number(&value).is_some_and(|number| number >= *minimum)
        }
        Condition::Present(present) => value.trim().is_empty() != *present,
    }
}

/// The first number in `text`, as people write amounts: `$8,000` is 8000, `30k` is 30000,
/// `1.5m` is 1500000, and in `30000-40000` it is 30000.
fn first_number(text: &str) -> Option<f64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .unwrap_or(rest.len());
    let digits: String = rest[..end]
        .trim_end_matches(['.', ','])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let number: f64 = digits.parse().ok()?;
    let mut suffix = rest[end..].chars();
    let multiplier = match (suffix.next(), suffix.next()) {
        (Some('k' | 'K'), next) if !next.is_some_and(char::is_alphabetic) => 1e3,
        (Some('m' | 'M'), next) if !next.is_some_and(char::is_alphabetic) => 1e6,
        _ => 1.0,
    };
    Some(number * multiplier)
}

#[cfg(test)]
mod tests {
    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use super::first_number;

    #[test]
    fn reads_the_first_amount_in_a_text() {
        assert_eq!(first_number("$8,000 by June 1"), Some(8000.0));
        assert_eq!(first_number("30000-40000"), Some(30000.0));
        assert_eq!(first_number("about 30k"), Some(30000.0));
        assert_eq!(first_number("1.5M"), Some(1_500_000.0));
        assert_eq!(first_number("5 months"), Some(5.0));
        assert_eq!(first_number("25000."), Some(25000.0));
        assert_eq!(first_number("no idea"), None);
    }

    #[tokio::test]
    async fn the_first_matching_case_wins_and_nothing_else_changes() {
        let (plugins, ids) = (Stub::default(), Counter::default());
        let flow = flow(
            r#"
            id = "route"
            program = "care"
            kind = "transactional"
            start = "route"
            [triggers]
            api = true
            [steps.route]
            type = "branch"
            cases = [
              { one_of = ["yes", "si"], next = "yes" },
              { contains = ["not paid"], next = "unpaid" },
              { field = "budget", at_least = 5000, next = "big" },
              { field = "email", present = true, next = "mail" },
            ]
            default = "other"
            [steps.yes]
            type = "end"
            [steps.unpaid]
            type = "end"
            [steps.big]
            type = "end"
            [steps.mail]
            type = "end"
            [steps.other]
            type = "end"
            "#,
        );
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("reply", "Yes!")], "yes"),
            (&[("reply", "I have not paid yet")], "unpaid"),
            (&[("reply", "hm"), ("budget", "$8,000")], "big"),
            (
                &[("reply", "hm"), ("budget", "300"), ("email", "a@b.c")],
                "mail",
            ),
            (&[("reply", "hm"), ("email", "  ")], "other"),
            (&[], "other"),
        ];
        for (fields, expected) in cases {
            let mut turn = turn(&plugins, &ids, fields);
            let next = execute(&mut turn, &flow, &flow.steps["route"]).await;
            assert_eq!(next.as_deref(), Some(expected), "{fields:?}");
            assert!(turn.effects.entries.is_empty() && turn.effects.outgoing.is_empty());
        }
    }
}
