//! Message templates.
//!
//! A flow author writes `"Hi {{first_name}}, see you on {{date}}."`: [`Template::parse`] checks
//! it when the flow is loaded (so a typo is reported with its line and column before any
//! message goes out), [`Template::fields`] lists the names it needs, and [`Template::render`]
//! fills them in, refusing to send a text with a blank where a name should be.
//!
//! `{{link "https://shop.example/cart"}}` is a tracked link: [`Template::render_with`] asks
//! its caller for the short link that stands for the target (the runtime records it, so
//! `/l/<code>` redirects there and counts the click). Only targets written in a template can
//! ever be redirected to.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Where something is inside a template's source text.
///
/// Templates usually sit inside a TOML string, so the caller adds `line` and `column` to the
/// string's own place in the file to point the author at the right spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Byte offset from the start of the template.
    pub offset: usize,
    /// Line within the template, from 1.
    pub line: usize,
    /// Column within that line, from 1, counted in characters (not bytes) so that accented
    /// letters and emoji earlier on the line do not throw it off.
    pub column: usize,
}

impl Position {
    fn at(source: &str, offset: usize) -> Self {
        let before = &source[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Position {
            offset,
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a template's source text was refused.
///
/// The messages are written for flow authors, who are not expected to be programmers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` with no `}}` after it.
    #[error("`{{{{` at {at} is never closed: add `}}}}` after the field name")]
    Unclosed {
        /// Where the `{{` is.
        at: Position,
    },
    /// A `{{}}` (or `{{ }}`) with no field name inside.
    #[error("empty placeholder at {at}: put a field name between `{{{{` and `}}}}`")]
    EmptyPlaceholder {
        /// Where the `{{` is.
        at: Position,
    },
    /// A field name that breaks the naming rule.
    #[error(
        "invalid field name `{name}` at {at}: field names use only lower-case letters a-z, \
         digits 0-9 and `_`, and do not start with a digit"
    )]
    InvalidName {
        /// The name as written, without the spaces around it.
        name: String,
        /// Where the name starts.
        at: Position,
    },
    /// A `}}` that no `{{` opened.
    #[error("`}}}}` at {at} has no `{{{{` before it")]
    StrayClose {
        /// Where the `}}` is.
        at: Position,
    },
    /// A `{{link ...}}` whose target is not a quoted http(s) address.
    #[error(
        "the link at {at} needs a quoted web address: write {{{{link \"https://shop.example/cart\"}}}} ({problem})"
    )]
    BadLink {
        /// What is wrong with it.
        problem: String,
        /// Where the `{{` is.
        at: Position,
    },
}

impl TemplateError {
    /// Where in the template the problem is.
    pub fn position(&self) -> Position {
        match self {
            TemplateError::Unclosed { at }
            | TemplateError::EmptyPlaceholder { at }
            | TemplateError::InvalidName { at, .. }
            | TemplateError::StrayClose { at }
            | TemplateError::BadLink { at, .. } => *at,
        }
    }
}

/// Why a template could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// Some fields have no value, or only an empty or blank one.
    #[error("no value for {}", quoted_list(.fields))]
    MissingFields {
        /// Every missing field, sorted, each once.
        fields: Vec<String>,
    },
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
    Link(String),
}

/// What `{{link ...}}` stands for when the short link is not known yet (`check` counts its
/// segments with it): as long as a typical short link.
pub const LINK_PLACEHOLDER: &str = "https://go.example.com/l/AbCd1234";

/// The longest link target.
const MAX_LINK_BYTES: usize = 2000;

/// A `{{link "..."}}`'s target, when `inner` is one; an error when it starts like one but is
/// not.
fn link_target(inner: &str) -> Option<Result<String, String>> {
    let rest = inner.trim().strip_prefix("link")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim();
    let Some(target) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Some(Err("the address must be in double quotes".to_owned()));
    };
    let scheme_ok = target.starts_with("https://") || target.starts_with("http://");
    let problem = if !scheme_ok {
        Some("it must start with https:// or http://")
    } else if target.len() > MAX_LINK_BYTES {
        Some("it is longer than 2000 bytes")
    } else if target
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        Some("it has a space, a quote or a control character")
    } else if target.split("://").nth(1).is_none_or(str::is_empty) {
        Some("it has no host")
    } else {
        None
    };
    Some(match problem {
        Some(problem) => Err(problem.to_owned()),
        None => Ok(target.to_owned()),
    })
}

/// A parsed message template: literal text with `{{field}}` placeholders.
///
/// Placeholders are `{{name}}`, with optional spaces or tabs inside the braces
/// (`{{ first_name }}`). Names are flat: `[a-z_][a-z0-9_]*`. A single `{` or `}` is plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
    fields: BTreeSet<String>,
}

impl Template {
    /// Parses a template, checking every placeholder.
    ///
    /// The first problem found is returned, with its position in `source`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut fields = BTreeSet::new();
        let mut cursor = 0;
        loop {
            let rest = &source[cursor..];
            let open = rest.find("{{");
            let close = rest.find("}}");
            let open = match (open, close) {
                (None, None) => break,
                (Some(open), Some(close)) if open < close => open,
                (Some(open), None) => open,
                (_, Some(close)) => {
                    return Err(TemplateError::StrayClose {
                        at: Position::at(source, cursor + close),
                    });
                }
            };
            let open = cursor + open;
            let inner_start = open + 2;
            let Some(inner_len) = source[inner_start..].find("}}") else {
                return Err(TemplateError::Unclosed {
                    at: Position::at(source, open),
                });
            };
            let inner = &source[inner_start..inner_start + inner_len];
            if let Some(link) = link_target(inner) {
                let target = link.map_err(|problem| TemplateError::BadLink {
                    problem,
                    at: Position::at(source, open),
                })?;
                if open > cursor {
                    pieces.push(Piece::Text(source[cursor..open].to_owned()));
                }
                pieces.push(Piece::Link(target));
                cursor = inner_start + inner_len + 2;
                continue;
            }
            let name = inner.trim_matches(|c| c == ' ' || c == '\t');
            if name.is_empty() {
                return Err(TemplateError::EmptyPlaceholder {
                    at: Position::at(source, open),
                });
            }
            if !is_valid_name(name) {
                let leading = inner.len() - inner.trim_start_matches([' ', '\t']).len();
                return Err(TemplateError::InvalidName {
                    name: name.to_owned(),
                    at: Position::at(source, inner_start + leading),
                });
            }
            if open > cursor {
                pieces.push(Piece::Text(source[cursor..open].to_owned()));
            }
            pieces.push(Piece::Field(name.to_owned()));
            fields.insert(name.to_owned());
            cursor = inner_start + inner_len + 2;
        }
        if cursor < source.len() {
            pieces.push(Piece::Text(source[cursor..].to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            pieces,
            fields,
        })
    }

    /// The template's source text, as given to [`Template::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The names of the fields the template needs, sorted, each once.
    pub fn fields(&self) -> impl Iterator<Item = &str> + '_ {
        self.fields.iter().map(String::as_str)
    }

    /// The template's fixed text, with every placeholder left out: what the validator counts
    /// segments on, since field values are only known at send time.
    pub fn render_literal(&self) -> String {
        self.render_known(&BTreeMap::new())
    }

    /// The template with the fields that have a value in `values` filled in and the others
    /// left out, links as [`LINK_PLACEHOLDER`]: the least the text can be when the rest are
    /// only known at send time.
    pub fn render_known(&self, values: &BTreeMap<String, String>) -> String {
        self.pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Text(literal) => Some(literal.as_str()),
                Piece::Field(name) => values.get(name).map(String::as_str),
                Piece::Link(_) => Some(LINK_PLACEHOLDER),
            })
            .collect()
    }

    /// The targets of its `{{link ...}}`s, in order.
    pub fn links(&self) -> impl Iterator<Item = &str> + '_ {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Link(target) => Some(target.as_str()),
            _ => None,
        })
    }

    /// Fills in the placeholders from `values`.
    ///
    /// A field that is absent, empty or only whitespace is missing: the text is not produced
    /// and the error names every missing field, because a blank in a text sent to a real
    /// person ("Hi , your appointment is on  at .") is worse than not sending it. Values are
    /// inserted as given, without trimming. Extra entries in `values` are ignored, so one map
    /// can serve several templates.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<String, RenderError> {
        self.render_with(values, &mut |_| LINK_PLACEHOLDER.to_owned())
    }

    /// [`Template::render`], with each `{{link ...}}` replaced by what `link` answers for its
    /// target (the runtime's short link).
    ///
    /// # Errors
    ///
    /// [`RenderError::MissingFields`], as [`Template::render`].
    pub fn render_with(
        &self,
        values: &BTreeMap<String, String>,
        link: &mut dyn FnMut(&str) -> String,
    ) -> Result<String, RenderError> {
        let missing: BTreeSet<&str> = self
            .fields()
            .filter(|name| {
                values
                    .get(*name)
                    .is_none_or(|value| value.trim().is_empty())
            })
            .collect();
        if !missing.is_empty() {
            return Err(RenderError::MissingFields {
                fields: missing.into_iter().map(str::to_owned).collect(),
            });
        }
        let mut text = String::with_capacity(self.source.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(literal) => text.push_str(literal),
                Piece::Field(name) => {
                    if let Some(value) = values.get(name) {
                        text.push_str(value);
                    }
                }
                Piece::Link(target) => text.push_str(&link(target)),
            }
        }
        Ok(text)
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        Template::parse(source)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sms::segments::{Encoding, segments};

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse_err(source: &str) -> TemplateError {
        Template::parse(source).unwrap_err()
    }

    const APPOINTMENT: &str = "Hi {{first_name}}, your appointment is on {{date}} at {{ time }}. \
                               Reply YES to confirm. Reply STOP to opt out.";

    #[test]
    fn a_link_is_a_target_the_caller_shortens() {
        let template =
            Template::parse("Hi {{name}}: {{ link \"https://shop.example/cart?a=1\" }} ok")
                .unwrap();
        assert_eq!(
            template.links().collect::<Vec<_>>(),
            ["https://shop.example/cart?a=1"]
        );
        assert_eq!(template.fields().collect::<Vec<_>>(), ["name"]);
        let mut seen = Vec::new();
        let text = template
            .render_with(&values(&[("name", "Ana")]), &mut |target| {
                seen.push(target.to_owned());
                "https://go.shop/l/x1".to_owned()
            })
            .unwrap();
        assert_eq!(text, "Hi Ana: https://go.shop/l/x1 ok");
        assert_eq!(seen, ["https://shop.example/cart?a=1"]);
        assert_eq!(
            template.render_known(&BTreeMap::new()),
            format!("Hi : {LINK_PLACEHOLDER} ok")
        );
        for bad in [
            "{{link https://x.example}}",
            "{{link \"javascript:alert(1)\"}}",
            "{{link \"https://\"}}",
            "{{link \"https://a b\"}}",
        ] {
            assert!(
                matches!(parse_err(bad), TemplateError::BadLink { .. }),
                "{bad}"
            );
        }
        // A field called `linked` is still a field.
        assert!(Template::parse("{{linked}}").is_ok());
    }

    #[test]
    fn parses_placeholders_with_and_without_spaces() {
        let template = Template::parse("{{a}}-{{ b }}-{{\tc  }}-{{_d9}}").unwrap();
        assert_eq!(
            template.fields().collect::<Vec<_>>(),
            ["_d9", "a", "b", "c"]
        );
        let rendered = template
            .render(&values(&[("a", "1"), ("b", "2"), ("c", "3"), ("_d9", "4")]))
            .unwrap();
        assert_eq!(rendered, "1-2-3-4");
    }

    #[test]
    fn fields_are_sorted_and_unique() {
        let template = Template::parse("{{b}} {{a}} {{ b }} {{a}}").unwrap();
        assert_eq!(template.fields().collect::<Vec<_>>(), ["a", "b"]);
        let appointment = Template::parse(APPOINTMENT).unwrap();
        assert_eq!(
            appointment.fields().collect::<Vec<_>>(),
            ["date", "first_name", "time"]
        );
    }

    #[test]
    fn text_without_placeholders_and_single_braces_are_literal() {
        let template = Template::parse("Price: {5} } { ok").unwrap();
        assert_eq!(template.fields().count(), 0);
        assert_eq!(
            template.render(&BTreeMap::new()).unwrap(),
            "Price: {5} } { ok"
        );
        assert_eq!(
            Template::parse("")
                .unwrap()
                .render(&BTreeMap::new())
                .unwrap(),
            ""
        );
    }

    #[test]
    fn unclosed_placeholder_points_at_its_opening() {
        let err = parse_err("Hi {{name}}, on {{date");
        assert_eq!(
            err,
            TemplateError::Unclosed {
                at: Position {
                    offset: 16,
                    line: 1,
                    column: 17
                }
            }
        );
        assert_eq!(
            err.to_string(),
            "`{{` at line 1, column 17 is never closed: add `}}` after the field name"
        );
    }

    #[test]
    fn empty_placeholder_is_refused() {
        let err = parse_err("Hi {{}}");
        assert_eq!(
            err,
            TemplateError::EmptyPlaceholder {
                at: Position {
                    offset: 3,
                    line: 1,
                    column: 4
                }
            }
        );
        let err = parse_err("ab {{   }}");
        assert_eq!(err.position().column, 4);
        assert!(
            err.to_string()
                .contains("empty placeholder at line 1, column 4")
        );
    }

    #[test]
    fn invalid_names_are_named_and_located() {
        let cases = [
            ("Hi {{ First_Name }}", "First_Name", 7),
            ("{{9lives}}", "9lives", 3),
            ("{{order.eta}}", "order.eta", 3),
            ("{{first name}}", "first name", 3),
            ("{{prénom}}", "prénom", 3),
            ("x {{{name}}}", "{name", 5),
            ("{{a-b}}", "a-b", 3),
        ];
        for (source, name, column) in cases {
            let err = parse_err(source);
            assert_eq!(
                err,
                TemplateError::InvalidName {
                    name: name.to_owned(),
                    at: Position::at(source, err.position().offset),
                },
                "{source}"
            );
            assert_eq!(err.position().column, column, "{source}");
            assert!(err.to_string().contains(&format!("`{name}`")), "{source}");
        }
    }

    #[test]
    fn stray_close_is_refused() {
        let err = parse_err("Hi name}}, bye");
        assert_eq!(
            err,
            TemplateError::StrayClose {
                at: Position {
                    offset: 7,
                    line: 1,
                    column: 8
                }
            }
        );
        assert_eq!(
            err.to_string(),
            "`}}` at line 1, column 8 has no `{{` before it"
        );
        // After a complete placeholder, a second `}}` is stray too.
        assert_eq!(parse_err("{{a}} b}}").position().offset, 7);
        assert_eq!(parse_err("{{a}}}}").position().offset, 5);
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let source = "Olá 👋\nséance {{ }}";
        let err = parse_err(source);
        // Offset is in bytes; the column counts characters, so the accent does not shift it.
        assert_eq!(
            err.position(),
            Position {
                offset: 18,
                line: 2,
                column: 8
            }
        );
        let err = parse_err("line one\nline two\n  {{ Bad }}");
        assert_eq!(err.position().line, 3);
        assert_eq!(err.position().column, 6);
    }

    #[test]
    fn render_fills_every_placeholder() {
        let template = Template::parse(APPOINTMENT).unwrap();
        let text = template
            .render(&values(&[
                ("first_name", "Ana"),
                ("date", "May 3"),
                ("time", "10:30"),
                ("unused", "ignored"),
            ]))
            .unwrap();
        assert_eq!(
            text,
            "Hi Ana, your appointment is on May 3 at 10:30. Reply YES to confirm. \
             Reply STOP to opt out."
        );
        let repeated = Template::parse("{{x}}{{x}}{{ x }}").unwrap();
        assert_eq!(repeated.render(&values(&[("x", "ab")])).unwrap(), "ababab");
    }

    #[test]
    fn render_names_every_missing_field_and_blank_values_count() {
        let template = Template::parse(APPOINTMENT).unwrap();
        let err = template
            .render(&values(&[("first_name", "   "), ("time", "")]))
            .unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingFields {
                fields: vec!["date".into(), "first_name".into(), "time".into()]
            }
        );
        assert_eq!(err.to_string(), "no value for `date`, `first_name`, `time`");
        let err = template
            .render(&values(&[("first_name", "Ana"), ("time", "\t\n")]))
            .unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingFields {
                fields: vec!["date".into(), "time".into()]
            }
        );
    }

    #[test]
    fn unicode_literal_text_survives() {
        let template = Template::parse("¡Hola {{nombre}}! 👋 Ça va? 日本 {{ x }}€").unwrap();
        let text = template
            .render(&values(&[("nombre", "José"), ("x", "🇫🇷")]))
            .unwrap();
        assert_eq!(text, "¡Hola José! 👋 Ça va? 日本 🇫🇷€");
        assert_eq!(
            template.source(),
            "¡Hola {{nombre}}! 👋 Ça va? 日本 {{ x }}€"
        );
        assert_eq!(template.to_string(), template.source());
        assert_eq!("{{a}}".parse::<Template>().unwrap().fields().count(), 1);
    }

    #[test]
    fn one_character_outside_gsm7_can_double_the_cost() {
        let text = Template::parse(APPOINTMENT)
            .unwrap()
            .render(&values(&[
                ("first_name", "Zoë"),
                ("date", "May 3"),
                ("time", "10:30"),
            ]))
            .unwrap();
        // ë is not in the GSM table (only ä ö ñ ü are), so the whole text goes out as UCS-2.
        let info = segments(&text);
        assert_eq!(info.encoding, Encoding::Ucs2);
        assert_eq!(info.segments, 2);
        assert_eq!(segments(&text.replace('ë', "e")).segments, 1);
    }
}
