//! The segment query language: how operators pick contacts.
//!
//! ```text
//! tag = "vip" and fields.state = "FL" and last_inbound < 30d and not opted_out(promotions)
//! ```
//!
//! A query is parsed and type-checked once against the field [`Schema`]
//! ([`Query::parse`]), then evaluated against many contacts
//! ([`Query::matches`]) without allocating per contact.
//!
//! # Grammar
//!
//! Keywords, attribute and function names are case-insensitive; field names
//! are matched exactly as the schema spells them.
//!
//! ```text
//! query      = or_expr END
//! or_expr    = and_expr { "or" and_expr }
//! and_expr   = unary { "and" unary }
//! unary      = "not" unary | primary
//! primary    = "(" or_expr ")" | function | comparison
//! function   = "exists" "(" attribute ")"
//!            | "opted_out" [ "(" program ")" ]
//!            | "has_consent" "(" program ")"
//! program    = IDENT | STRING
//! comparison = attribute OP value
//! attribute  = "tag" | "phone" | "locale" | "time_zone"
//!            | "created" | "last_inbound" | "last_outbound"
//!            | "fields" "." IDENT
//! OP         = "=" | "!=" | "<" | "<=" | ">" | ">="
//! value      = STRING | NUMBER | DURATION
//! IDENT      = [A-Za-z_] [A-Za-z0-9_]*
//! STRING     = '"' { any char but '"' or '\' | '\"' | '\\' } '"'
//! NUMBER     = [ "-" ] DIGIT+ [ "." DIGIT+ ]
//! DURATION   = DIGIT+ ( "m" | "h" | "d" | "w" )     (no space before the unit)
//! ```
//!
//! # Meaning
//!
//! * `tag = "x"` / `tag != "x"`: has / lacks the tag (case-insensitive).
//! * Text (`phone`, `locale`, `time_zone`, text fields): `=` / `!=`,
//!   case-insensitive. State fields: `=` / `!=` on region codes, case-insensitive.
//! * Number fields: every operator, against a number literal.
//! * Datetimes (`created`, `last_inbound`, `last_outbound`, datetime fields):
//!   a string is an instant (`"2026-03-01"` is 00:00 UTC that day) and takes
//!   every operator; a duration is an *age* before `now`, so `last_inbound < 30d`
//!   means "less than 30 days ago", and only takes `<`, `<=`, `>`, `>=`.
//! * A comparison on a missing value is false, except `!=`, which is true;
//!   `exists(attribute)` tests presence.
//! * `opted_out`, `opted_out(program)` and `has_consent(program)` ask [`Facts`].

mod eval;
mod lexer;
mod parser;

use std::collections::BTreeMap;

use crate::store::contacts::{Contact, FieldType};

/// The longest query accepted, in chars; beyond this a query is surely a mistake
/// (or an attack), and a bound keeps parsing cheap.
pub const MAX_QUERY_CHARS: usize = 4096;

/// The deepest nesting of parentheses and `not` accepted, so parsing and
/// evaluation recursion can never overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// Answers the questions a query asks of the consent ledger.
pub trait Facts {
    /// Whether the contact opted out of `program` (None: of everything).
    fn opted_out(&self, contact: &Contact, program: Option<&str>) -> bool;
    /// Whether the ledger holds consent for `program`.
    fn has_consent(&self, contact: &Contact, program: &str) -> bool;
}

/// The declared contact fields, by name, that queries may refer to as `fields.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    fields: BTreeMap<String, FieldType>,
}

impl Schema {
    /// Builds a schema from `(name, type)` pairs; a later duplicate name wins.
    pub fn new(fields: impl IntoIterator<Item = (String, FieldType)>) -> Self {
        Schema {
            fields: fields.into_iter().collect(),
        }
    }

    /// The type of field `name`, if declared.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<FieldType> {
        self.fields.get(name).copied()
    }

    /// The declared field names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }
}

impl FromIterator<(String, FieldType)> for Schema {
    fn from_iter<I: IntoIterator<Item = (String, FieldType)>>(iter: I) -> Self {
        Schema::new(iter)
    }
}

/// Why a query was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct QueryError {
    /// What is wrong and how to fix it.
    pub message: String,
    /// 1-based column of the offending text, counted in chars.
    pub column: usize,
}

impl QueryError {
    /// An error at `column` (1-based, in chars).
    pub fn new(column: usize, message: impl Into<String>) -> Self {
        QueryError {
            message: message.into(),
            column,
        }
    }
}

/// A parsed, type-checked query, ready to be evaluated against contacts.
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    root: eval::Node,
}

impl Query {
    /// Parses `text` and checks it against `schema`.
    ///
    /// # Errors
    /// A [`QueryError`] naming the problem, its fix and its column.
    pub fn parse(text: &str, schema: &Schema) -> Result<Query, QueryError> {
        let root = parser::parse(text, schema)?;
        Ok(Query {
            text: text.to_owned(),
            root,
        })
    }

    /// Whether `contact` is in the segment, with ages measured back from `now_ms`.
    pub fn matches(&self, contact: &Contact, facts: &dyn Facts, now_ms: i64) -> bool {
        self.root.eval(&eval::Ctx {
            contact,
            facts,
            now_ms,
        })
    }

    /// The query as the operator wrote it.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Fixtures shared by the parser's and the evaluator's tests.
#[cfg(test)]
pub(crate) mod testkit {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{Facts, Query, QueryError, Schema};
    use crate::store::contacts::{Contact, FieldType, FieldValue};

    /// 2026-03-15T00:00:00Z, the fixed "now" of the tests.
    pub const NOW: i64 = 1_773_532_800_000;
    /// One day in ms.
    pub const DAY: i64 = 86_400_000;

    /// city: text, age: number, state: state, renewal: datetime.
    pub fn schema() -> Schema {
        [
            ("city", FieldType::Text),
            ("age", FieldType::Number),
            ("state", FieldType::State),
            ("renewal", FieldType::Datetime),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect()
    }

    /// A contact with nothing optional set.
    pub fn bare() -> Contact {
        Contact {
            id: "c1".into(),
            phone: "+15550100".into(),
            fields: BTreeMap::new(),
            tags: BTreeSet::new(),
            locale: None,
            time_zone: None,
            created_at_ms: NOW - 100 * DAY,
            last_inbound_ms: None,
            last_outbound_ms: None,
        }
    }

    /// A contact with every attribute set.
    pub fn full() -> Contact {
        let mut c = bare();
        c.tags = ["vip", "Beta"].into_iter().map(String::from).collect();
        c.locale = Some("en-US".into());
        c.time_zone = Some("America/New_York".into());
        c.last_inbound_ms = Some(NOW - 10 * DAY);
        c.last_outbound_ms = Some(NOW - 95 * DAY);
        c.fields = [
            ("city", FieldValue::Text("Tampa".into())),
            ("age", FieldValue::Number(42.0)),
            ("state", FieldValue::State { state: "FL".into() }),
            (
                "renewal",
                FieldValue::Datetime {
                    datetime_ms: NOW + 5 * DAY,
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        c
    }

    /// Opt-outs and consents keyed by "contact-id:program" ("contact-id:*"
    /// for a global opt-out).
    #[derive(Default)]
    pub struct Ledger {
        /// Opted-out keys.
        pub opted_out: BTreeSet<String>,
        /// Consent keys.
        pub consent: BTreeSet<String>,
    }

    impl Facts for Ledger {
        fn opted_out(&self, contact: &Contact, program: Option<&str>) -> bool {
            let key = format!("{}:{}", contact.id, program.unwrap_or("*"));
            self.opted_out.contains(&key)
        }
        fn has_consent(&self, contact: &Contact, program: &str) -> bool {
            self.consent.contains(&format!("{}:{program}", contact.id))
        }
    }

    /// Parses against [`schema`], panicking with the message on failure.
    pub fn query(text: &str) -> Query {
        match Query::parse(text, &schema()) {
            Ok(q) => q,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    /// Whether `text` matches `contact` with an empty ledger at [`NOW`].
    pub fn is_match(text: &str, contact: &Contact) -> bool {
        query(text).matches(contact, &Ledger::default(), NOW)
    }

    /// The error `text` is rejected with.
    pub fn error(text: &str) -> QueryError {
        match Query::parse(text, &schema()) {
            Ok(q) => panic!("{text}: parsed as {q:?}"),
            Err(e) => e,
        }
    }
}
