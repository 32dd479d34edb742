//! Recursive-descent parser and type checker: tokens in, [`Node`] out.
//!
//! Type checking happens here, against the schema, so that every mistake is
//! reported once, at parse time, with its column, and evaluation never fails.

use super::eval::{Attr, Needle, Node};
use super::lexer::{CmpOp, Kind, Token, tokenize};
use super::{MAX_DEPTH, MAX_QUERY_CHARS, QueryError, Schema};
use crate::store::contacts::FieldType;

/// The built-in attributes, as written in queries.
const ATTRIBUTES: [&str; 7] = [
    "tag",
    "phone",
    "locale",
    "time_zone",
    "created",
    "last_inbound",
    "last_outbound",
];

/// The functions, as written in queries.
const FUNCTIONS: [&str; 3] = ["exists", "opted_out", "has_consent"];

/// Parses and type-checks `src` against `schema`.
pub fn parse(src: &str, schema: &Schema) -> Result<Node, QueryError> {
    check_length(src)?;
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        src,
        schema,
        tokens,
        pos: 0,
        depth: 0,
    };
    if parser.peek().kind == Kind::End {
        return Err(QueryError::new(
            1,
            "empty query; write a condition like tag = \"vip\"",
        ));
    }
    let root = parser.or_expr()?;
    parser.expect_end()?;
    Ok(root)
}

fn check_length(src: &str) -> Result<(), QueryError> {
    // Bytes bound chars from above, so the count is only needed for long input.
    if src.len() <= MAX_QUERY_CHARS {
        return Ok(());
    }
    let chars = src.chars().count();
    if chars <= MAX_QUERY_CHARS {
        return Ok(());
    }
    Err(QueryError::new(
        MAX_QUERY_CHARS + 1,
        format!(
            "the query is {chars} characters long; the limit is {MAX_QUERY_CHARS}: \
             shorten it, for example by tagging the contacts it picks"
        ),
    ))
}

/// What kind of value an attribute holds, which decides the operators and
/// literals it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Tag,
    Text,
    State,
    Number,
    Time,
}

/// An attribute as resolved against the schema.
struct AttrRef {
    attr: Attr,
    ty: Ty,
    /// As it should be shown in messages, like `fields.age`.
    name: String,
}

/// Parser state over the token list, which always ends with [`Kind::End`].
struct Parser<'a> {
    src: &'a str,
    schema: &'a Schema,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + ahead).min(last)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != Kind::End {
            self.pos += 1;
        }
        token
    }

    /// The token before the current one, for "after `and`" in messages.
    fn previous(&self) -> Option<&Token> {
        self.pos.checked_sub(1).map(|i| &self.tokens[i])
    }

    /// The token's source text, or "end of query".
    fn describe(&self, token: &Token) -> String {
        match token.kind {
            Kind::End => "end of query".to_owned(),
            _ => format!("`{}`", self.raw(token)),
        }
    }

    fn raw(&self, token: &Token) -> &str {
        &self.src[token.span.0..token.span.1]
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        is_word(self.peek(), keyword)
    }

    /// Counts one more level of nesting, refusing to go past [`MAX_DEPTH`].
    fn enter(&mut self, col: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::new(
                col,
                format!(
                    "the query nests deeper than {MAX_DEPTH} levels of parentheses and `not`; \
                     simplify it"
                ),
            ));
        }
        Ok(())
    }

    /// After the whole query: anything left is a missing `and`/`or` or a stray `)`.
    fn expect_end(&self) -> Result<(), QueryError> {
        let token = self.peek();
        let message = match token.kind {
            Kind::End => return Ok(()),
            Kind::RParen => "unmatched `)`; remove it or add a `(` before it".to_owned(),
            _ => format!("expected `and` or `or`, found {}", self.describe(token)),
        };
        Err(QueryError::new(token.col, message))
    }

    fn or_expr(&mut self) -> Result<Node, QueryError> {
        let mut items = vec![self.and_expr()?];
        while self.at_keyword("or") {
            self.next();
            items.push(self.and_expr()?);
        }
        Ok(collapse(items, Node::Or))
    }

    fn and_expr(&mut self) -> Result<Node, QueryError> {
        let mut items = vec![self.unary()?];
        while self.at_keyword("and") {
            self.next();
            items.push(self.unary()?);
        }
        Ok(collapse(items, Node::And))
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        if !self.at_keyword("not") {
            return self.primary();
        }
        let not = self.next();
        self.enter(not.col)?;
        let inner = self.unary()?;
        self.depth -= 1;
        Ok(Node::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Node, QueryError> {
        let token = self.peek().clone();
        match &token.kind {
            Kind::LParen => self.group(),
            Kind::Ident(word) if !is_word(&token, "and") && !is_word(&token, "or") => {
                self.word(&word.to_ascii_lowercase())
            }
            _ => Err(self.expected_condition(&token)),
        }
    }

    fn expected_condition(&self, found: &Token) -> QueryError {
        let after = self
            .previous()
            .map(|p| format!(" after `{}`", self.raw(p)))
            .unwrap_or_default();
        QueryError::new(
            found.col,
            format!(
                "expected a condition{after}, like tag = \"vip\"; found {}",
                self.describe(found)
            ),
        )
    }

    /// `( or_expr )`, reporting an unclosed group at its opening paren.
    fn group(&mut self) -> Result<Node, QueryError> {
        let open = self.next();
        self.enter(open.col)?;
        let inner = self.or_expr()?;
        let close = self.peek().clone();
        match close.kind {
            Kind::RParen => {
                self.next();
            }
            Kind::End => return Err(unclosed(&open)),
            _ => {
                return Err(QueryError::new(
                    close.col,
                    format!(
                        "expected `and`, `or` or `)`, found {}",
                        self.describe(&close)
                    ),
                ));
            }
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// A condition starting with a bare word: a function call or a comparison.
    fn word(&mut self, lower: &str) -> Result<Node, QueryError> {
        match lower {
            "exists" => self.exists(),
            "opted_out" => self.opted_out(),
            "has_consent" => self.has_consent(),
            _ if self.peek_at(1).kind == Kind::LParen => Err(self.unknown_function()),
            _ => self.comparison(),
        }
    }

    fn unknown_function(&self) -> QueryError {
        let token = self.peek();
        let name = self.raw(token);
        let help = match suggest(name, FUNCTIONS.iter().map(|f| (*f, *f))) {
            Some(s) => format!("did you mean {s}?"),
            None => "the functions are exists, opted_out and has_consent".to_owned(),
        };
        QueryError::new(token.col, format!("unknown function {name}; {help}"))
    }

    fn exists(&mut self) -> Result<Node, QueryError> {
        self.next();
        let open = self.open_paren("exists takes an attribute, like exists(fields.city)")?;
        let attr = self.attribute()?;
        self.close_paren(&open)?;
        Ok(Node::Exists(attr.attr))
    }

    fn opted_out(&mut self) -> Result<Node, QueryError> {
        self.next();
        if self.peek().kind != Kind::LParen {
            return Ok(Node::OptedOut(None));
        }
        let open = self.next();
        let program = self.program(
            "write opted_out alone for any program, or name one, like opted_out(promotions)",
        )?;
        self.close_paren(&open)?;
        Ok(Node::OptedOut(Some(program)))
    }

    fn has_consent(&mut self) -> Result<Node, QueryError> {
        self.next();
        let hint = "has_consent takes a program, like has_consent(promotions)";
        let open = self.open_paren(hint)?;
        let program = self.program(hint)?;
        self.close_paren(&open)?;
        Ok(Node::HasConsent(program))
    }

    fn open_paren(&mut self, hint: &str) -> Result<Token, QueryError> {
        let token = self.peek().clone();
        if token.kind == Kind::LParen {
            return Ok(self.next());
        }
        Err(QueryError::new(
            token.col,
            format!("{hint}; found {}", self.describe(&token)),
        ))
    }

    fn close_paren(&mut self, open: &Token) -> Result<(), QueryError> {
        let token = self.peek().clone();
        match token.kind {
            Kind::RParen => {
                self.next();
                Ok(())
            }
            Kind::End => Err(unclosed(open)),
            _ => Err(QueryError::new(
                token.col,
                format!("expected `)`, found {}", self.describe(&token)),
            )),
        }
    }

    /// A program name: a bare word (as written) or a non-empty string.
    fn program(&mut self, hint: &str) -> Result<String, QueryError> {
        let token = self.peek().clone();
        let name = match &token.kind {
            Kind::Ident(word) => word.clone(),
            Kind::Str(s) if !s.is_empty() => s.clone(),
            Kind::Str(_) => {
                return Err(QueryError::new(token.col, "a program name cannot be empty"));
            }
            _ => {
                return Err(QueryError::new(
                    token.col,
                    format!("{hint}; found {}", self.describe(&token)),
                ));
            }
        };
        self.next();
        Ok(name)
    }

    /// An attribute name, resolved against the built-ins and the schema.
    fn attribute(&mut self) -> Result<AttrRef, QueryError> {
        let token = self.next();
        let Kind::Ident(word) = &token.kind else {
            return Err(QueryError::new(
                token.col,
                format!(
                    "expected an attribute, like tag or fields.state; found {}",
                    self.describe(&token)
                ),
            ));
        };
        let lower = word.to_ascii_lowercase();
        let (attr, ty) = match lower.as_str() {
            "tag" => (Attr::Tag, Ty::Tag),
            "phone" => (Attr::Phone, Ty::Text),
            "locale" => (Attr::Locale, Ty::Text),
            "time_zone" => (Attr::TimeZone, Ty::Text),
            "created" => (Attr::Created, Ty::Time),
            "last_inbound" => (Attr::LastInbound, Ty::Time),
            "last_outbound" => (Attr::LastOutbound, Ty::Time),
            "fields" => return self.field(),
            _ => return Err(self.unknown_attribute(&token, word)),
        };
        Ok(AttrRef {
            attr,
            ty,
            name: lower,
        })
    }

    fn unknown_attribute(&self, token: &Token, word: &str) -> QueryError {
        let fields: Vec<String> = self.schema.names().map(|n| format!("fields.{n}")).collect();
        // A bare field name is compared with the field's own name, so that
        // `state` suggests `fields.state`.
        let candidates = ATTRIBUTES
            .iter()
            .chain(FUNCTIONS.iter())
            .map(|a| (*a, *a))
            .chain(self.schema.names().zip(fields.iter().map(String::as_str)));
        let help = match suggest(word, candidates) {
            Some(s) => format!("did you mean {s}?"),
            None => "use tag, phone, locale, time_zone, created, last_inbound, last_outbound \
                     or fields.<name>"
                .to_owned(),
        };
        QueryError::new(token.col, format!("unknown attribute {word}; {help}"))
    }

    /// `. name` after `fields`.
    fn field(&mut self) -> Result<AttrRef, QueryError> {
        let dot = self.next();
        if dot.kind != Kind::Dot {
            return Err(QueryError::new(
                dot.col,
                format!(
                    "expected `.` and a field name after fields, like fields.state; found {}",
                    self.describe(&dot)
                ),
            ));
        }
        let token = self.next();
        let Kind::Ident(name) = &token.kind else {
            return Err(QueryError::new(
                token.col,
                format!(
                    "expected a field name after `fields.`, like fields.state; found {}",
                    self.describe(&token)
                ),
            ));
        };
        let Some(field_type) = self.schema.get(name) else {
            return Err(self.unknown_field(&token, name));
        };
        let ty = match field_type {
            FieldType::Text => Ty::Text,
            FieldType::Number => Ty::Number,
            FieldType::Datetime => Ty::Time,
            FieldType::State => Ty::State,
        };
        Ok(AttrRef {
            attr: Attr::Field(name.clone()),
            ty,
            name: format!("fields.{name}"),
        })
    }

    fn unknown_field(&self, token: &Token, name: &str) -> QueryError {
        let names: Vec<&str> = self.schema.names().collect();
        let help = if names.is_empty() {
            "no fields are defined in the schema".to_owned()
        } else if let Some(s) = suggest(name, names.iter().map(|n| (*n, *n))) {
            format!("did you mean fields.{s}?")
        } else {
            let list: Vec<String> = names.iter().map(|n| format!("fields.{n}")).collect();
            format!("the known fields are {}", list.join(", "))
        };
        QueryError::new(token.col, format!("unknown field fields.{name}; {help}"))
    }

    /// `attribute OP value`, type-checked.
    fn comparison(&mut self) -> Result<Node, QueryError> {
        let attr = self.attribute()?;
        let op_token = self.next();
        let Kind::Op(op) = op_token.kind else {
            return Err(QueryError::new(
                op_token.col,
                format!(
                    "expected an operator (=, !=, <, <=, >, >=) after {}, found {}",
                    attr.name,
                    self.describe(&op_token)
                ),
            ));
        };
        let value = self.next();
        if !matches!(
            value.kind,
            Kind::Str(_) | Kind::Number(_) | Kind::Duration(_)
        ) {
            return Err(QueryError::new(
                value.col,
                format!(
                    "expected a value after `{}`, like {}; found {}",
                    op.symbol(),
                    example(attr.ty),
                    self.describe(&value)
                ),
            ));
        }
        let check = Check {
            attr,
            op,
            op_col: op_token.col,
            raw: self.raw(&value),
            value,
        };
        check.compile()
    }
}

/// One comparison being type-checked and compiled.
struct Check<'a> {
    attr: AttrRef,
    op: CmpOp,
    op_col: usize,
    value: Token,
    raw: &'a str,
}

impl Check<'_> {
    fn compile(self) -> Result<Node, QueryError> {
        match self.attr.ty {
            Ty::Tag => self.tag(),
            Ty::Text => self.text(),
            Ty::State => self.state(),
            Ty::Number => self.number(),
            Ty::Time => self.time(),
        }
    }

    fn at_value(&self, message: String) -> QueryError {
        QueryError::new(self.value.col, message)
    }

    /// Refuses ordering operators on a type that has no order.
    fn equality_only(&self, what: &str) -> Result<(), QueryError> {
        if self.op.is_equality() {
            return Ok(());
        }
        Err(QueryError::new(
            self.op_col,
            format!("{} {what}: compare it with = or !=", self.attr.name),
        ))
    }

    fn negate(&self) -> bool {
        self.op == CmpOp::Ne
    }

    fn tag(self) -> Result<Node, QueryError> {
        self.equality_only("is a tag")?;
        let Kind::Str(tag) = &self.value.kind else {
            return Err(self.at_value(format!(
                "a tag is a string: write tag {} \"{}\"",
                self.op.symbol(),
                self.raw
            )));
        };
        if tag.is_empty() {
            return Err(self.at_value("a tag cannot be empty".to_owned()));
        }
        let has = Node::HasTag(Needle::new(tag));
        Ok(if self.negate() {
            Node::Not(Box::new(has))
        } else {
            has
        })
    }

    fn text(self) -> Result<Node, QueryError> {
        self.equality_only("is text")?;
        let Kind::Str(s) = &self.value.kind else {
            return Err(self.at_value(format!(
                "{} is text; put the value in quotes: \"{}\"",
                self.attr.name, self.raw
            )));
        };
        let needle = Needle::new(s);
        Ok(Node::Text {
            negate: self.negate(),
            attr: self.attr.attr,
            needle,
        })
    }

    fn state(self) -> Result<Node, QueryError> {
        self.equality_only("is a state code")?;
        let name = &self.attr.name;
        let Kind::Str(s) = &self.value.kind else {
            return Err(self.at_value(format!(
                "{name} is a state code; write it as a string, like \"FL\""
            )));
        };
        if !is_region_code(s) {
            return Err(self.at_value(format!(
                "{name} is a state code; {} is not one: write a region code, like \"FL\"",
                self.raw
            )));
        }
        Ok(Node::State {
            negate: self.negate(),
            code: s.to_ascii_uppercase(),
            attr: self.attr.attr,
        })
    }

    fn number(self) -> Result<Node, QueryError> {
        let name = &self.attr.name;
        let value = match &self.value.kind {
            Kind::Number(n) => *n,
            Kind::Str(s) if s.trim().parse::<f64>().is_ok() => {
                return Err(self.at_value(format!(
                    "{name} is a number; write {} without quotes",
                    s.trim()
                )));
            }
            Kind::Duration(_) => {
                return Err(self.at_value(format!(
                    "{name} is a number; {} is a duration, not a number",
                    self.raw
                )));
            }
            _ => {
                return Err(
                    self.at_value(format!("{name} is a number; {} is not a number", self.raw))
                );
            }
        };
        Ok(Node::Number {
            op: self.op,
            value,
            attr: self.attr.attr,
        })
    }

    fn time(self) -> Result<Node, QueryError> {
        let name = &self.attr.name;
        match &self.value.kind {
            Kind::Str(s) => match parse_datetime(s) {
                Some(at_ms) => Ok(Node::Instant {
                    op: self.op,
                    at_ms,
                    attr: self.attr.attr,
                }),
                None => Err(self.at_value(format!(
                    "{name} is a datetime; {} is not a date: write \"2026-03-01\" or \
                     \"2026-03-01T09:00:00Z\"",
                    self.raw
                ))),
            },
            Kind::Duration(age_ms) if !self.op.is_equality() => Ok(Node::Age {
                op: self.op,
                age_ms: *age_ms,
                attr: self.attr.attr,
            }),
            Kind::Duration(_) => Err(QueryError::new(
                self.op_col,
                format!(
                    "{name} {} {} would need an age exact to the millisecond; compare ages \
                     with <, <=, > or >=",
                    self.op.symbol(),
                    self.raw
                ),
            )),
            _ => Err(self.at_value(format!(
                "{name} is a datetime; {} is not a date or an age: write \"2026-03-01\" or 30d",
                self.raw
            ))),
        }
    }
}

/// Wraps several items with `make`, but leaves a single item alone so that
/// redundant parentheses cost nothing at evaluation.
fn collapse(mut items: Vec<Node>, make: fn(Vec<Node>) -> Node) -> Node {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    make(items)
}

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(&token.kind, Kind::Ident(w) if w.eq_ignore_ascii_case(keyword))
}

fn unclosed(open: &Token) -> QueryError {
    QueryError::new(open.col, "unclosed `(`; add a `)` to close it")
}

/// A literal that fits the type, for "expected a value" messages.
fn example(ty: Ty) -> &'static str {
    match ty {
        Ty::Tag | Ty::Text => "\"vip\"",
        Ty::State => "\"FL\"",
        Ty::Number => "42",
        Ty::Time => "\"2026-03-01\" or 30d",
    }
}

/// Region codes are short and alphanumeric (`FL`, `ON`, `CMX`); anything else
/// is almost surely a spelled-out name that would silently match nothing.
fn is_region_code(s: &str) -> bool {
    (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `"2026-03-01"` (00:00 UTC) or an RFC 3339 instant, as ms since the epoch.
fn parse_datetime(s: &str) -> Option<i64> {
    if is_plain_date(s) {
        let date: jiff::civil::Date = s.parse().ok()?;
        let midnight = date.to_datetime(jiff::civil::Time::midnight());
        let at = jiff::tz::Offset::UTC.to_timestamp(midnight).ok()?;
        return Some(at.as_millisecond());
    }
    // Only a full timestamp with an offset is accepted: a local time without
    // one would silently be read in some zone the operator did not intend.
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(jiff::Timestamp::as_millisecond)
}

/// `YYYY-MM-DD` exactly; checked first so jiff's lenient date parsing cannot
/// drop the time part of a longer string.
fn is_plain_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// The closest candidate to `word`, like a compiler's "did you mean", only
/// when it is close enough to be a plausible typo. Candidates are pairs of
/// (name compared, name shown).
fn suggest<'c>(
    word: &str,
    candidates: impl Iterator<Item = (&'c str, &'c str)>,
) -> Option<&'c str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|(key, shown)| {
            (
                strsim::damerau_levenshtein(&word, &key.to_lowercase()),
                shown,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, shown)| shown)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{error, query, schema};
    use super::super::{Query, Schema};
    use super::*;

    fn tag(t: &str) -> Node {
        Node::HasTag(Needle::new(t))
    }

    fn tree(text: &str) -> Node {
        parse(text, &schema()).unwrap()
    }

    /// Asserts the full `column N: message` text of the error for `text`.
    fn rejects(text: &str, expected: &str) {
        assert_eq!(error(text).to_string(), expected, "query: {text}");
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            tree(r#"tag = "a" or tag = "b" and tag = "c""#),
            Node::Or(vec![tag("a"), Node::And(vec![tag("b"), tag("c")])])
        );
        assert_eq!(
            tree(r#"tag = "a" and tag = "b" or tag = "c""#),
            Node::Or(vec![Node::And(vec![tag("a"), tag("b")]), tag("c")])
        );
    }

    #[test]
    fn not_binds_tightest_and_parentheses_override() {
        assert_eq!(
            tree(r#"not tag = "a" and tag = "b""#),
            Node::And(vec![Node::Not(Box::new(tag("a"))), tag("b")])
        );
        assert_eq!(
            tree(r#"not (tag = "a" or tag = "b") and tag = "c""#),
            Node::And(vec![
                Node::Not(Box::new(Node::Or(vec![tag("a"), tag("b")]))),
                tag("c")
            ])
        );
        assert_eq!(
            tree(r#"not not tag = "a""#),
            Node::Not(Box::new(Node::Not(Box::new(tag("a")))))
        );
        assert_eq!(tree(r#"((tag = "a"))"#), tag("a"));
    }

    #[test]
    fn keywords_attributes_and_functions_ignore_case() {
        assert_eq!(
            tree(r#"TAG = "a" AND Not OPTED_OUT(promotions) oR Fields.age >= 1"#),
            Node::Or(vec![
                Node::And(vec![
                    tag("a"),
                    Node::Not(Box::new(Node::OptedOut(Some("promotions".into()))))
                ]),
                Node::Number {
                    attr: Attr::Field("age".into()),
                    op: CmpOp::Ge,
                    value: 1.0
                }
            ])
        );
    }

    #[test]
    fn compiles_each_value_kind() {
        assert_eq!(
            tree(r#"fields.state != "fl""#),
            Node::State {
                attr: Attr::Field("state".into()),
                negate: true,
                code: "FL".into()
            }
        );
        assert_eq!(tree(r#"tag != "a""#), Node::Not(Box::new(tag("a"))));
        assert_eq!(
            tree(r#"created >= "2026-03-01""#),
            Node::Instant {
                attr: Attr::Created,
                op: CmpOp::Ge,
                at_ms: 1_772_323_200_000
            }
        );
        assert_eq!(
            tree(r#"last_outbound < "2026-03-01T09:00:00Z""#),
            Node::Instant {
                attr: Attr::LastOutbound,
                op: CmpOp::Lt,
                at_ms: 1_772_355_600_000
            }
        );
        assert_eq!(
            tree(r#"fields.renewal = "2026-03-01T09:00:00-05:00""#),
            Node::Instant {
                attr: Attr::Field("renewal".into()),
                op: CmpOp::Eq,
                at_ms: 1_772_373_600_000
            }
        );
        assert_eq!(
            tree("last_inbound > 2w"),
            Node::Age {
                attr: Attr::LastInbound,
                op: CmpOp::Gt,
                age_ms: 14 * 86_400_000
            }
        );
        assert_eq!(
            tree(r#"opted_out and opted_out("a b") and has_consent(Alerts)"#),
            Node::And(vec![
                Node::OptedOut(None),
                Node::OptedOut(Some("a b".into())),
                Node::HasConsent("Alerts".into())
            ])
        );
        assert_eq!(
            tree("exists(fields.city) or exists(LAST_INBOUND)"),
            Node::Or(vec![
                Node::Exists(Attr::Field("city".into())),
                Node::Exists(Attr::LastInbound)
            ])
        );
    }

    #[test]
    fn query_keeps_its_text() {
        let q = query(r#"  tag = "vip" "#);
        assert_eq!(q.text(), r#"  tag = "vip" "#);
        assert_eq!(q.to_string(), q.text());
    }

    #[test]
    fn the_briefs_number_example() {
        rejects(
            r#"fields.age > "x""#,
            r#"column 14: fields.age is a number; "x" is not a number"#,
        );
    }

    #[test]
    fn unknown_fields() {
        rejects(
            r#"tag = "vip" and fields.stat = "FL""#,
            "column 24: unknown field fields.stat; did you mean fields.state?",
        );
        rejects(
            "fields.zzzzzz = 1",
            "column 8: unknown field fields.zzzzzz; the known fields are fields.age, \
             fields.city, fields.renewal, fields.state",
        );
        let none = Query::parse("fields.x = 1", &Schema::default()).unwrap_err();
        assert_eq!(
            none.to_string(),
            "column 8: unknown field fields.x; no fields are defined in the schema"
        );
        assert_eq!(none.column, 8);
        rejects(
            "fields = 1",
            "column 8: expected `.` and a field name after fields, like fields.state; found `=`",
        );
        rejects(
            "fields. = 1",
            "column 9: expected a field name after `fields.`, like fields.state; found `=`",
        );
    }

    #[test]
    fn unknown_attributes_and_functions() {
        rejects(
            "last_inbund < 30d",
            "column 1: unknown attribute last_inbund; did you mean last_inbound?",
        );
        rejects(
            r#"state = "FL""#,
            "column 1: unknown attribute state; did you mean fields.state?",
        );
        rejects(
            "opted_ot and tag = \"a\"",
            "column 1: unknown attribute opted_ot; did you mean opted_out?",
        );
        rejects(
            r#"color = "red""#,
            "column 1: unknown attribute color; use tag, phone, locale, time_zone, created, \
             last_inbound, last_outbound or fields.<name>",
        );
        rejects(
            "not opted_ot(promotions)",
            "column 5: unknown function opted_ot; did you mean opted_out?",
        );
        rejects(
            "frobnicate(x)",
            "column 1: unknown function frobnicate; the functions are exists, opted_out and \
             has_consent",
        );
    }

    #[test]
    fn missing_operator_or_value() {
        rejects(
            r#"tag "vip""#,
            r#"column 5: expected an operator (=, !=, <, <=, >, >=) after tag, found `"vip"`"#,
        );
        rejects(
            "fields.city",
            "column 12: expected an operator (=, !=, <, <=, >, >=) after fields.city, found \
             end of query",
        );
        rejects(
            "tag =",
            r#"column 6: expected a value after `=`, like "vip"; found end of query"#,
        );
        rejects(
            "fields.age >= and tag = \"a\"",
            "column 15: expected a value after `>=`, like 42; found `and`",
        );
        rejects(
            "last_inbound < )",
            r#"column 16: expected a value after `<`, like "2026-03-01" or 30d; found `)`"#,
        );
    }

    #[test]
    fn missing_conditions() {
        rejects(
            r#"tag = "a" and"#,
            r#"column 14: expected a condition after `and`, like tag = "vip"; found end of query"#,
        );
        rejects(
            r#"and tag = "a""#,
            r#"column 1: expected a condition, like tag = "vip"; found `and`"#,
        );
        rejects(
            "()",
            r#"column 2: expected a condition after `(`, like tag = "vip"; found `)`"#,
        );
        rejects(
            "not",
            r#"column 4: expected a condition after `not`, like tag = "vip"; found end of query"#,
        );
        rejects(
            r#"tag = "a" or 5"#,
            r#"column 14: expected a condition after `or`, like tag = "vip"; found `5`"#,
        );
    }

    #[test]
    fn unbalanced_parentheses_point_at_the_open_paren() {
        rejects(
            r#"(tag = "a" or (tag = "b")"#,
            "column 1: unclosed `(`; add a `)` to close it",
        );
        rejects(
            r#"tag = "a" and ((tag = "b")"#,
            "column 15: unclosed `(`; add a `)` to close it",
        );
        rejects(
            "opted_out(promotions",
            "column 10: unclosed `(`; add a `)` to close it",
        );
        rejects(
            r#"tag = "a")"#,
            "column 10: unmatched `)`; remove it or add a `(` before it",
        );
        rejects(
            r#"(tag = "a" tag = "b")"#,
            "column 12: expected `and`, `or` or `)`, found `tag`",
        );
    }

    #[test]
    fn trailing_input_and_empty_queries() {
        rejects(
            r#"tag = "a" fields.age > 1"#,
            "column 11: expected `and` or `or`, found `fields`",
        );
        rejects(
            r#"opted_out = "x""#,
            "column 11: expected `and` or `or`, found `=`",
        );
        let empty = r#"column 1: empty query; write a condition like tag = "vip""#;
        rejects("", empty);
        rejects(" \t\n ", empty);
    }

    #[test]
    fn lexical_errors_surface_with_columns() {
        rejects(
            r#"tag = "vip"#,
            "column 7: unclosed string; add a closing `\"`",
        );
        rejects(
            "last_inbound < 30y",
            "column 18: bad duration unit `y` in 30y; use d (days), h (hours), m (minutes) \
             or w (weeks), like 30d",
        );
    }

    #[test]
    fn columns_count_multibyte_chars() {
        rejects(
            r#"fields.city = "Zürich" and tag = "vi"#,
            "column 34: unclosed string; add a closing `\"`",
        );
        rejects(
            r#"fields.city = "Zürich" and fields.age > "x""#,
            r#"column 41: fields.age is a number; "x" is not a number"#,
        );
        rejects(
            r#"tag = "🎉" and fields.stat = "FL""#,
            "column 22: unknown field fields.stat; did you mean fields.state?",
        );
        rejects("tag = \"日本\" é", "column 12: unexpected character 'é'");
    }

    #[test]
    fn operators_a_type_does_not_have() {
        rejects(
            r#"fields.city < "x""#,
            "column 13: fields.city is text: compare it with = or !=",
        );
        rejects(
            r#"phone >= "1""#,
            "column 7: phone is text: compare it with = or !=",
        );
        rejects(
            r#"locale > "en""#,
            "column 8: locale is text: compare it with = or !=",
        );
        rejects(
            r#"time_zone <= "UTC""#,
            "column 11: time_zone is text: compare it with = or !=",
        );
        rejects(
            r#"fields.state > "FL""#,
            "column 14: fields.state is a state code: compare it with = or !=",
        );
        rejects(
            r#"tag < "x""#,
            "column 5: tag is a tag: compare it with = or !=",
        );
        rejects(
            "created = 30d",
            "column 9: created = 30d would need an age exact to the millisecond; compare ages \
             with <, <=, > or >=",
        );
        rejects(
            "last_inbound != 2w",
            "column 14: last_inbound != 2w would need an age exact to the millisecond; compare \
             ages with <, <=, > or >=",
        );
    }

    #[test]
    fn values_a_type_does_not_take() {
        rejects(
            r#"fields.age = "42""#,
            "column 14: fields.age is a number; write 42 without quotes",
        );
        rejects(
            "fields.age < 30d",
            "column 14: fields.age is a number; 30d is a duration, not a number",
        );
        rejects(
            "fields.city = 33101",
            r#"column 15: fields.city is text; put the value in quotes: "33101""#,
        );
        rejects(
            "phone = 30d",
            r#"column 9: phone is text; put the value in quotes: "30d""#,
        );
        rejects(
            "fields.state = 12",
            r#"column 16: fields.state is a state code; write it as a string, like "FL""#,
        );
        rejects(
            r#"fields.state = "Florida""#,
            r#"column 16: fields.state is a state code; "Florida" is not one: write a region code, like "FL""#,
        );
        rejects("tag = 5", r#"column 7: a tag is a string: write tag = "5""#);
        rejects(r#"tag != """#, "column 8: a tag cannot be empty");
        rejects(
            "last_inbound < 5",
            r#"column 16: last_inbound is a datetime; 5 is not a date or an age: write "2026-03-01" or 30d"#,
        );
        for bad in ["yesterday", "2026-02-30", "2026-03-01T09:00:00", "2026-3-1"] {
            rejects(
                &format!(r#"created > "{bad}""#),
                &format!(
                    r#"column 11: created is a datetime; "{bad}" is not a date: write "2026-03-01" or "2026-03-01T09:00:00Z""#
                ),
            );
        }
    }

    #[test]
    fn function_arguments() {
        rejects(
            "has_consent",
            "column 12: has_consent takes a program, like has_consent(promotions); found end \
             of query",
        );
        rejects(
            "has_consent()",
            "column 13: has_consent takes a program, like has_consent(promotions); found `)`",
        );
        rejects(
            "opted_out()",
            "column 11: write opted_out alone for any program, or name one, like \
             opted_out(promotions); found `)`",
        );
        rejects(
            r#"opted_out("")"#,
            "column 11: a program name cannot be empty",
        );
        rejects("opted_out(a b)", "column 13: expected `)`, found `b`");
        rejects(
            "opted_out(a, b)",
            "column 12: unexpected character ','; functions take one argument",
        );
        rejects(
            "exists fields.city",
            "column 8: exists takes an attribute, like exists(fields.city); found `fields`",
        );
        rejects(
            "exists(bogus)",
            "column 8: unknown attribute bogus; use tag, phone, locale, time_zone, created, \
             last_inbound, last_outbound or fields.<name>",
        );
        rejects(
            "exists(\"x\")",
            r#"column 8: expected an attribute, like tag or fields.state; found `"x"`"#,
        );
    }

    fn nested_parens(depth: usize) -> String {
        format!(r#"{}tag = "a"{}"#, "(".repeat(depth), ")".repeat(depth))
    }

    #[test]
    fn nesting_is_limited() {
        let ok = nested_parens(MAX_DEPTH);
        assert_eq!(tree(&ok), tag("a"));
        let nest_error = "the query nests deeper than 64 levels of parentheses and `not`; \
                          simplify it";
        let too_deep = error(&nested_parens(MAX_DEPTH + 1));
        assert_eq!(
            (too_deep.column, too_deep.message.as_str()),
            (65, nest_error)
        );

        let nots = format!(r#"{}tag = "a""#, "not ".repeat(MAX_DEPTH));
        tree(&nots);
        let too_many = error(&format!(r#"{}tag = "a""#, "not ".repeat(MAX_DEPTH + 1)));
        assert_eq!(
            (too_many.column, too_many.message.as_str()),
            (4 * 64 + 1, nest_error)
        );

        // Depth counts parentheses and `not` together.
        let mixed = format!(r#"{}tag = "a"{}"#, "not (".repeat(32), ")".repeat(32));
        tree(&mixed);
        let mixed = format!(r#"{}tag = "a"{}"#, "not (".repeat(33), ")".repeat(33));
        assert_eq!(error(&mixed).message, nest_error);

        // Far deeper than the limit still fails cleanly rather than overflowing.
        let deep = error(&nested_parens(2000));
        assert_eq!(deep.column, 65);
    }

    #[test]
    fn sibling_groups_do_not_add_up_depth() {
        let group = nested_parens(40);
        let many = vec![group; 5].join(" and ");
        tree(&many);
    }

    #[test]
    fn length_is_limited_in_chars() {
        let pad = |n: usize, c: char| format!(r#"tag = "{}""#, c.to_string().repeat(n));
        // `tag = ""` is 8 chars around the padding.
        let longest = pad(MAX_QUERY_CHARS - 8, 'a');
        assert_eq!(longest.chars().count(), MAX_QUERY_CHARS);
        tree(&longest);
        // Multi-byte chars count once each, even though they are two bytes.
        let wide = pad(MAX_QUERY_CHARS - 8, 'é');
        assert!(wide.len() > MAX_QUERY_CHARS);
        tree(&wide);
        rejects(
            &pad(MAX_QUERY_CHARS - 7, 'é'),
            "column 4097: the query is 4097 characters long; the limit is 4096: shorten it, \
             for example by tagging the contacts it picks",
        );
    }

    #[test]
    fn suggestions_only_when_close() {
        let names = ["state", "city"];
        let pairs = || names.iter().map(|n| (*n, *n));
        assert_eq!(suggest("stat", pairs()), Some("state"));
        assert_eq!(suggest("STATE", pairs()), Some("state"));
        assert_eq!(suggest("ctiy", pairs()), Some("city"));
        assert_eq!(suggest("zip", pairs()), None);
    }
}
