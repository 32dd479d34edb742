//! The compiled form of a query and its evaluation against one contact.
//!
//! Everything a test needs is prepared at parse time (lower-cased needles,
//! parsed instants, durations in ms), so evaluation only reads the contact.

use super::Facts;
use super::lexer::CmpOp;
use crate::store::contacts::{Contact, FieldValue};

/// What evaluation reads: the contact, the consent ledger and the clock.
pub struct Ctx<'a> {
    /// The contact being tested.
    pub contact: &'a Contact,
    /// Answers `opted_out` and `has_consent`.
    pub facts: &'a dyn Facts,
    /// The instant ages are measured back from, in ms since the epoch.
    pub now_ms: i64,
}

/// A contact attribute a query can name.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// The contact's tag set.
    Tag,
    /// The phone number.
    Phone,
    /// The locale, if known.
    Locale,
    /// The IANA time zone, if known.
    TimeZone,
    /// When the contact was created.
    Created,
    /// The last message from the contact, if any.
    LastInbound,
    /// The last message to the contact, if any.
    LastOutbound,
    /// A schema field, by name.
    Field(String),
}

impl Attr {
    /// Whether the contact has a value for this attribute.
    fn is_present(&self, c: &Contact) -> bool {
        match self {
            Attr::Tag => !c.tags.is_empty(),
            Attr::Phone => !c.phone.is_empty(),
            Attr::Locale => c.locale.is_some(),
            Attr::TimeZone => c.time_zone.is_some(),
            Attr::Created => true,
            Attr::LastInbound => c.last_inbound_ms.is_some(),
            Attr::LastOutbound => c.last_outbound_ms.is_some(),
            Attr::Field(name) => c.fields.contains_key(name),
        }
    }

    /// The attribute as text. Text and state field values are both strings,
    /// so either is read: a field whose stored kind drifted still compares.
    fn text<'c>(&self, c: &'c Contact) -> Option<&'c str> {
        match self {
            Attr::Phone => Some(&c.phone),
            Attr::Locale => c.locale.as_deref(),
            Attr::TimeZone => c.time_zone.as_deref(),
            Attr::Field(name) => match c.fields.get(name)? {
                FieldValue::Text(s) | FieldValue::State { state: s } => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// The attribute as a number; a non-number value counts as missing.
    fn number(&self, c: &Contact) -> Option<f64> {
        match self {
            Attr::Field(name) => match c.fields.get(name)? {
                FieldValue::Number(n) => Some(*n),
                _ => None,
            },
            _ => None,
        }
    }

    /// The attribute as an instant in ms; a non-datetime value counts as missing.
    fn time(&self, c: &Contact) -> Option<i64> {
        match self {
            Attr::Created => Some(c.created_at_ms),
            Attr::LastInbound => c.last_inbound_ms,
            Attr::LastOutbound => c.last_outbound_ms,
            Attr::Field(name) => match c.fields.get(name)? {
                FieldValue::Datetime { datetime_ms } => Some(*datetime_ms),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A string to compare case-insensitively, lower-cased once at parse time.
#[derive(Debug, Clone, PartialEq)]
pub struct Needle {
    lower: String,
    ascii: bool,
}

impl Needle {
    /// Prepares `s` for case-insensitive comparison.
    pub fn new(s: &str) -> Self {
        Needle {
            lower: s.to_lowercase(),
            ascii: s.is_ascii(),
        }
    }

    /// Whether `s` equals the needle ignoring case, without allocating.
    fn matches(&self, s: &str) -> bool {
        if self.ascii && s.is_ascii() {
            return s.eq_ignore_ascii_case(&self.lower);
        }
        s.chars()
            .flat_map(char::to_lowercase)
            .eq(self.lower.chars())
    }
}

/// A compiled query node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// All must hold; evaluated left to right, stopping at the first false.
    And(Vec<Node>),
    /// Any must hold; evaluated left to right, stopping at the first true.
    Or(Vec<Node>),
    /// The negation.
    Not(Box<Node>),
    /// The contact has this tag (`tag != x` compiles to `Not(HasTag)`).
    HasTag(Needle),
    /// A text attribute equals (or, `negate`, differs from) the needle.
    Text {
        /// The text attribute.
        attr: Attr,
        /// True for `!=`.
        negate: bool,
        /// The value compared against.
        needle: Needle,
    },
    /// A state field equals (or, `negate`, differs from) an upper-case code.
    State {
        /// The state field.
        attr: Attr,
        /// True for `!=`.
        negate: bool,
        /// The code, upper-cased at parse time.
        code: String,
    },
    /// A number field compared with a literal.
    Number {
        /// The number field.
        attr: Attr,
        /// The operator.
        op: CmpOp,
        /// The literal.
        value: f64,
    },
    /// A datetime attribute compared with an instant.
    Instant {
        /// The datetime attribute.
        attr: Attr,
        /// The operator.
        op: CmpOp,
        /// The instant, ms since the epoch.
        at_ms: i64,
    },
    /// The age of a datetime attribute (now minus it) compared with a duration.
    Age {
        /// The datetime attribute.
        attr: Attr,
        /// The operator (never `=` or `!=`).
        op: CmpOp,
        /// The duration in ms.
        age_ms: i64,
    },
    /// The attribute has a value.
    Exists(Attr),
    /// Opted out of a program (None: globally suppressed).
    OptedOut(Option<String>),
    /// The ledger holds consent for the program.
    HasConsent(String),
}

impl Node {
    /// Whether the node holds for `ctx.contact`.
    pub fn eval(&self, ctx: &Ctx<'_>) -> bool {
        let c = ctx.contact;
        match self {
            Node::And(items) => items.iter().all(|n| n.eval(ctx)),
            Node::Or(items) => items.iter().any(|n| n.eval(ctx)),
            Node::Not(inner) => !inner.eval(ctx),
            Node::HasTag(needle) => has_tag(c, needle),
            Node::Text {
                attr,
                negate,
                needle,
            } => attr
                .text(c)
                .map_or(*negate, |s| needle.matches(s) != *negate),
            Node::State { attr, negate, code } => attr
                .text(c)
                .map_or(*negate, |s| s.eq_ignore_ascii_case(code) != *negate),
            Node::Number { attr, op, value } => compare(*op, attr.number(c), *value),
            Node::Instant { attr, op, at_ms } => compare(*op, attr.time(c), *at_ms),
            Node::Age { attr, op, age_ms } => {
                let age = attr.time(c).map(|t| ctx.now_ms.saturating_sub(t));
                compare(*op, age, *age_ms)
            }
            Node::Exists(attr) => attr.is_present(c),
            Node::OptedOut(program) => ctx.facts.opted_out(c, program.as_deref()),
            Node::HasConsent(program) => ctx.facts.has_consent(c, program),
        }
    }
}

/// Tag membership ignoring case; the exact lookup first, since engines
/// usually store tags already lower-cased.
fn has_tag(c: &Contact, needle: &Needle) -> bool {
    c.tags.contains(&needle.lower) || c.tags.iter().any(|t| needle.matches(t))
}

/// `value OP literal`; a missing value fails every operator but `!=`.
fn compare<T: PartialOrd + Copy>(op: CmpOp, value: Option<T>, literal: T) -> bool {
    let Some(v) = value else {
        return op == CmpOp::Ne;
    };
    match op {
        CmpOp::Eq => v == literal,
        CmpOp::Ne => v != literal,
        CmpOp::Lt => v < literal,
        CmpOp::Le => v <= literal,
        CmpOp::Gt => v > literal,
        CmpOp::Ge => v >= literal,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Facts;
    use super::super::testkit::{DAY, Ledger, NOW, bare, full, is_match, query};
    use crate::store::contacts::{Contact, FieldValue};

    /// Asserts each `(query, expected)` against `contact`.
    fn check(contact: &Contact, cases: &[(&str, bool)]) {
        for (text, expected) in cases {
            assert_eq!(is_match(text, contact), *expected, "query: {text}");
        }
    }

    #[test]
    fn number_operators() {
        check(
            &full(),
            &[
                ("fields.age = 42", true),
                ("fields.age = 42.5", false),
                ("fields.age != 42", false),
                ("fields.age != 41", true),
                ("fields.age < 43", true),
                ("fields.age < 42", false),
                ("fields.age <= 42", true),
                ("fields.age <= 41.9", false),
                ("fields.age > 41", true),
                ("fields.age > 42", false),
                ("fields.age >= 42.0", true),
                ("fields.age >= 42.1", false),
                ("fields.age > -3.5", true),
            ],
        );
    }

    #[test]
    fn text_operators_ignore_case() {
        check(
            &full(),
            &[
                (r#"fields.city = "Tampa""#, true),
                (r#"fields.city = "tAMPA""#, true),
                (r#"fields.city = "Tamp""#, false),
                (r#"fields.city != "TAMPA""#, false),
                (r#"fields.city != "Miami""#, true),
                (r#"phone = "+15550100""#, true),
                (r#"phone != "+15550100""#, false),
                (r#"locale = "EN-us""#, true),
                (r#"locale != "fr-FR""#, true),
                (r#"time_zone = "america/new_york""#, true),
                (r#"time_zone = "UTC""#, false),
            ],
        );
    }

    #[test]
    fn non_ascii_text_ignores_case() {
        let mut c = bare();
        c.fields
            .insert("city".into(), FieldValue::Text("Zürich".into()));
        check(
            &c,
            &[
                (r#"fields.city = "ZÜRICH""#, true),
                (r#"fields.city = "zürich""#, true),
                (r#"fields.city = "zurich""#, false),
                (r#"fields.city != "ZÜRICH""#, false),
            ],
        );
    }

    #[test]
    fn state_codes_ignore_case() {
        check(
            &full(),
            &[
                (r#"fields.state = "FL""#, true),
                (r#"fields.state = "fl""#, true),
                (r#"fields.state = "GA""#, false),
                (r#"fields.state != "Fl""#, false),
                (r#"fields.state != "GA""#, true),
            ],
        );
        let mut lower = bare();
        lower
            .fields
            .insert("state".into(), FieldValue::State { state: "fl".into() });
        assert!(is_match(r#"fields.state = "FL""#, &lower));
    }

    #[test]
    fn tags_ignore_case() {
        check(
            &full(),
            &[
                (r#"tag = "vip""#, true),
                (r#"tag = "VIP""#, true),
                (r#"tag = "beta""#, true),
                (r#"tag = "gold""#, false),
                (r#"tag != "Vip""#, false),
                (r#"tag != "gold""#, true),
            ],
        );
    }

    #[test]
    fn datetime_instants() {
        // created is 2025-12-05T00:00:00Z.
        check(
            &full(),
            &[
                (r#"created = "2025-12-05""#, true),
                (r#"created = "2025-12-05T00:00:01Z""#, false),
                (r#"created != "2025-12-05""#, false),
                (r#"created != "2025-12-06""#, true),
                (r#"created < "2025-12-06""#, true),
                (r#"created < "2025-12-05""#, false),
                (r#"created <= "2025-12-05""#, true),
                (r#"created <= "2025-12-04T23:59:59Z""#, false),
                (r#"created > "2025-12-04T23:59:59Z""#, true),
                (r#"created > "2025-12-05""#, false),
                (r#"created >= "2025-12-05T00:00:00Z""#, true),
                (r#"created >= "2025-12-05T00:00:00.001Z""#, false),
                (r#"created = "2025-12-04T19:00:00-05:00""#, true),
                (r#"fields.renewal > "2026-03-19""#, true),
                (r#"fields.renewal > "2026-03-20""#, false),
            ],
        );
    }

    #[test]
    fn durations_are_ages_before_now() {
        // last_inbound was 10 days before NOW, last_outbound 95 days.
        check(
            &full(),
            &[
                ("last_inbound < 30d", true),
                ("last_inbound < 10d", false),
                ("last_inbound <= 10d", true),
                ("last_inbound > 9d", true),
                ("last_inbound > 10d", false),
                ("last_inbound >= 10d", true),
                ("last_inbound >= 11d", false),
                ("last_inbound < 240h", false),
                ("last_inbound <= 240h", true),
                ("last_inbound < 14401m", true),
                ("last_inbound < 14400m", false),
                ("last_inbound < 2w", true),
                ("last_inbound > 1w", true),
                ("last_outbound > 90d", true),
                ("last_outbound < 90d", false),
                ("created > 99d", true),
                ("created > 100d", false),
                // A datetime in the future has a negative age.
                ("fields.renewal < 1m", true),
                ("fields.renewal > 0m", false),
            ],
        );
    }

    #[test]
    fn ages_move_with_now() {
        let q = query("last_inbound < 30d");
        let c = full();
        let ledger = Ledger::default();
        assert!(q.matches(&c, &ledger, NOW));
        assert!(q.matches(&c, &ledger, NOW + 20 * DAY - 1));
        assert!(!q.matches(&c, &ledger, NOW + 20 * DAY));
    }

    #[test]
    fn missing_values_fail_all_but_not_equal() {
        check(
            &bare(),
            &[
                ("fields.age = 1", false),
                ("fields.age != 1", true),
                ("fields.age < 1", false),
                ("fields.age <= 1", false),
                ("fields.age > 1", false),
                ("fields.age >= 1", false),
                (r#"fields.city = "x""#, false),
                (r#"fields.city != "x""#, true),
                (r#"fields.state = "FL""#, false),
                (r#"fields.state != "FL""#, true),
                (r#"locale = "en""#, false),
                (r#"locale != "en""#, true),
                (r#"time_zone != "UTC""#, true),
                ("last_inbound < 30d", false),
                ("last_inbound > 30d", false),
                ("last_outbound >= 0m", false),
                (r#"last_inbound = "2026-01-01""#, false),
                (r#"last_inbound != "2026-01-01""#, true),
                (r#"fields.renewal < "2030-01-01""#, false),
                (r#"tag = "vip""#, false),
                (r#"tag != "vip""#, true),
                ("not fields.age = 1", true),
                ("not fields.age != 1", false),
            ],
        );
    }

    #[test]
    fn a_value_of_the_wrong_stored_kind_counts_as_missing() {
        let mut c = bare();
        c.fields.insert("age".into(), FieldValue::Text("42".into()));
        check(
            &c,
            &[
                ("fields.age = 42", false),
                ("fields.age != 42", true),
                ("exists(fields.age)", true),
            ],
        );
    }

    #[test]
    fn exists_tests_presence() {
        let cases = [
            "exists(fields.age)",
            "exists(fields.city)",
            "exists(fields.state)",
            "exists(fields.renewal)",
            "exists(last_inbound)",
            "exists(last_outbound)",
            "exists(locale)",
            "exists(time_zone)",
            "exists(tag)",
        ];
        for text in cases {
            assert!(is_match(text, &full()), "{text}");
            assert!(!is_match(text, &bare()), "{text}");
        }
        assert!(is_match("exists(created) and exists(phone)", &bare()));
    }

    #[test]
    fn functions_ask_the_facts() {
        let c = full();
        let ledger = Ledger {
            opted_out: ["c1:promotions".to_owned()].into(),
            consent: ["c1:alerts".to_owned()].into(),
        };
        let run = |text: &str| query(text).matches(&c, &ledger, NOW);
        assert!(run("opted_out(promotions)"));
        assert!(run(r#"opted_out("promotions")"#));
        assert!(!run("opted_out(alerts)"));
        assert!(!run("opted_out"));
        assert!(run("has_consent(alerts)"));
        assert!(!run("has_consent(promotions)"));
        assert!(run("not opted_out and has_consent(alerts)"));

        let global = Ledger {
            opted_out: ["c1:*".to_owned()].into(),
            ..Ledger::default()
        };
        assert!(query("opted_out").matches(&c, &global, NOW));
    }

    #[test]
    fn precedence_decides_the_answer() {
        let c = full();
        // a or (b and c) is true; (a or b) and c would be false.
        check(
            &c,
            &[
                (r#"tag = "vip" or tag = "gold" and tag = "nope""#, true),
                (r#"(tag = "vip" or tag = "gold") and tag = "nope""#, false),
                // (not a) or b is true; not (a or b) would be false.
                (r#"not tag = "vip" or tag = "beta""#, true),
                (r#"not (tag = "vip" or tag = "beta")"#, false),
            ],
        );
    }

    #[test]
    fn the_briefs_example_query() {
        let text = r#"tag = "vip" and fields.state = "FL" and last_inbound < 30d and not opted_out(promotions)"#;
        let c = full();
        assert!(query(text).matches(&c, &Ledger::default(), NOW));
        let out = Ledger {
            opted_out: ["c1:promotions".to_owned()].into(),
            ..Ledger::default()
        };
        assert!(!query(text).matches(&c, &out, NOW));
    }

    /// Facts that need no lookups: contacts whose phone ends in 7 opted out
    /// of promotions.
    struct PhoneFacts;

    impl Facts for PhoneFacts {
        fn opted_out(&self, contact: &Contact, program: Option<&str>) -> bool {
            program == Some("promotions") && contact.phone.ends_with('7')
        }
        fn has_consent(&self, _: &Contact, _: &str) -> bool {
            false
        }
    }

    /// A small deterministic generator (64-bit LCG), so the test needs no crate.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u32) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // The top 31 bits always fit a u32.
            u32::try_from(self.0 >> 33).unwrap() % n
        }

        fn index(&mut self, n: u32) -> usize {
            usize::try_from(self.below(n)).unwrap()
        }
    }

    fn generate(rng: &mut Lcg, i: usize) -> Contact {
        let mut c = bare();
        c.id = format!("c{i}");
        c.phone = format!("+1555{:07}", rng.below(10_000_000));
        let tags = ["vip", "VIP", "gold", "beta"];
        for _ in 0..rng.below(3) {
            c.tags.insert(tags[rng.index(4)].to_owned());
        }
        if rng.below(5) > 0 {
            let age = f64::from(rng.below(80));
            c.fields.insert("age".into(), FieldValue::Number(age));
        }
        let states = ["FL", "fl", "GA", "NY"];
        if let Some(s) = states.get(rng.index(5)) {
            let state = FieldValue::State { state: (*s).into() };
            c.fields.insert("state".into(), state);
        }
        let cities = ["Miami", "MIAMI", "Tampa", "Orlando"];
        if let Some(s) = cities.get(rng.index(5)) {
            c.fields
                .insert("city".into(), FieldValue::Text((*s).into()));
        }
        if rng.below(4) > 0 {
            // Whole minutes, so some ages land exactly on the 30-day boundary.
            let minutes = i64::from(rng.below(60 * 24 * 60));
            c.last_inbound_ms = Some(NOW - minutes * 60_000);
        }
        c
    }

    /// The query's meaning written out by hand, independent of the parser.
    fn expected(c: &Contact) -> bool {
        let field = |name: &str| c.fields.get(name);
        let vip = c.tags.iter().any(|t| t.eq_ignore_ascii_case("vip"));
        let older = matches!(field("age"), Some(FieldValue::Number(a)) if *a >= 40.0);
        let florida = matches!(field("state"), Some(FieldValue::State { state }) if state.eq_ignore_ascii_case("fl"));
        let recent = c.last_inbound_ms.is_some_and(|t| NOW - t < 30 * DAY);
        let opted_out = c.phone.ends_with('7');
        let miami =
            matches!(field("city"), Some(FieldValue::Text(s)) if s.eq_ignore_ascii_case("miami"));
        (vip || older) && florida && recent && !opted_out && !miami
    }

    #[test]
    fn counts_a_hundred_thousand_contacts() {
        let q = query(
            r#"(tag = "vip" or fields.age >= 40) and fields.state = "fl" and last_inbound < 30d
               and not opted_out(promotions) and fields.city != "miami""#,
        );
        let mut rng = Lcg(0x5eed);
        let contacts: Vec<Contact> = (0..100_000).map(|i| generate(&mut rng, i)).collect();
        let got = contacts
            .iter()
            .filter(|c| q.matches(c, &PhoneFacts, NOW))
            .count();
        let want = contacts.iter().filter(|c| expected(c)).count();
        assert_eq!(got, want);
        // Guard against a generator that makes the check vacuous.
        assert!((2_000..30_000).contains(&want), "{want}");
    }
}
