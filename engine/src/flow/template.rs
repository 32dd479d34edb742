//! Message templates, and counting how many SMS segments a text costs.
//!
//! A flow author writes `"Hi {{first_name}}, see you on {{date}}."`: [`Template::parse`] checks
//! it when the flow is loaded (so a typo is reported with its line and column before any
//! message goes out), [`Template::fields`] lists the names it needs, and [`Template::render`]
//! fills them in, refusing to send a text with a blank where a name should be.
//!
//! [`segments`] counts the SMS segments a text will be billed as, the way Twilio counts them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use unicode_segmentation::UnicodeSegmentation;

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
}

impl TemplateError {
    /// Where in the template the problem is.
    pub fn position(&self) -> Position {
        match self {
            TemplateError::Unclosed { at }
            | TemplateError::EmptyPlaceholder { at }
            | TemplateError::InvalidName { at, .. }
            | TemplateError::StrayClose { at } => *at,
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
        self.pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Text(literal) => Some(literal.as_str()),
                Piece::Field(_) => None,
            })
            .collect()
    }

    /// Fills in the placeholders from `values`.
    ///
    /// A field that is absent, empty or only whitespace is missing: the text is not produced
    /// and the error names every missing field, because a blank in a text sent to a real
    /// person ("Hi , your appointment is on  at .") is worse than not sending it. Values are
    /// inserted as given, without trimming. Extra entries in `values` are ignored, so one map
    /// can serve several templates.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<String, RenderError> {
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

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The GSM 03.38 7-bit default alphabet, with its extension table.
    Gsm7,
    /// UCS-2 (in practice UTF-16), needed as soon as one character is outside GSM-7.
    Ucs2,
}

/// How many SMS segments a text costs, from [`segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentInfo {
    /// The encoding the whole text needs.
    pub encoding: Encoding,
    /// The text's length in that encoding: septets for GSM-7 (an extension-table character
    /// counts 2), UTF-16 code units for UCS-2. Space lost at segment ends is not included.
    pub units: usize,
    /// Segments billed: 1 for a text that fits one message (including the empty text).
    pub segments: usize,
}

const GSM7_SINGLE: usize = 160;
const GSM7_PER_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PER_PART: usize = 67;

/// Counts the SMS segments `text` costs, as Twilio counts them.
///
/// The text is GSM-7 if every character is in the 3GPP TS 23.038 default alphabet or its
/// extension table (the latter costing 2 septets: an escape and the character), and UCS-2
/// otherwise. A single message holds 160 septets or 70 UTF-16 units; a longer text is sent as
/// concatenated parts of 153 septets or 67 units (the rest of each part carries the header
/// that joins them). Phones show each part as it arrives, so nothing is cut in half at a part's
/// end: a GSM-7 escape pair, a UTF-16 surrogate pair and a whole grapheme cluster (an emoji
/// with a skin tone, a flag, a ZWJ family) move to the next part if they do not fit in what is
/// left. Only a grapheme cluster longer than a whole part (pathological stacks of combining
/// marks) is split, between its characters.
///
/// The empty text counts as 1 segment, as Twilio bills an empty body as one message.
pub fn segments(text: &str) -> SegmentInfo {
    let septets: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    match septets {
        Some(costs) => {
            let units = costs.iter().sum();
            let segments = if units <= GSM7_SINGLE {
                1
            } else {
                let mut parts = Parts::new(GSM7_PER_PART);
                costs.into_iter().for_each(|cost| parts.place(cost));
                parts.count
            };
            SegmentInfo {
                encoding: Encoding::Gsm7,
                units,
                segments,
            }
        }
        None => {
            let units = text.encode_utf16().count();
            let segments = if units <= UCS2_SINGLE {
                1
            } else {
                let mut parts = Parts::new(UCS2_PER_PART);
                for grapheme in text.graphemes(true) {
                    let cost = grapheme.encode_utf16().count();
                    if cost <= UCS2_PER_PART {
                        parts.place(cost);
                    } else {
                        grapheme.chars().for_each(|c| parts.place(c.len_utf16()));
                    }
                }
                parts.count
            };
            SegmentInfo {
                encoding: Encoding::Ucs2,
                units,
                segments,
            }
        }
    }
}

/// Fills concatenated parts in order, never cutting an indivisible run of units.
struct Parts {
    capacity: usize,
    count: usize,
    used: usize,
}

impl Parts {
    fn new(capacity: usize) -> Self {
        Parts {
            capacity,
            count: 1,
            used: 0,
        }
    }

    fn place(&mut self, cost: usize) {
        if self.used + cost > self.capacity && self.used > 0 {
            self.count += 1;
            self.used = 0;
        }
        self.used += cost;
    }
}

/// Septets `c` costs in GSM-7, or `None` if it is not in the alphabet.
fn gsm7_septets(c: char) -> Option<usize> {
    match c {
        // The default alphabet, in table order. The Greek capitals are written as escapes
        // because several look exactly like Latin letters that are elsewhere in the table.
        '@' | '£' | '$' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | '\n' | 'Ø' | 'ø' | '\r'
        | 'Å' | 'å' => Some(1),
        '\u{0394}' /* Δ */ | '_' | '\u{03A6}' /* Φ */ | '\u{0393}' /* Γ */
        | '\u{039B}' /* Λ */ | '\u{03A9}' /* Ω */ | '\u{03A0}' /* Π */ | '\u{03A8}' /* Ψ */
        | '\u{03A3}' /* Σ */ | '\u{0398}' /* Θ */ | '\u{039E}' /* Ξ */ => Some(1),
        'Æ' | 'æ' | 'ß' | 'É' => Some(1),
        ' ' | '!' | '"' | '#' | '¤' | '%' | '&' | '\'' | '('..='?' => Some(1),
        '¡' | 'A'..='Z' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' => Some(1),
        '¿' | 'a'..='z' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        // The extension table: sent as the escape septet followed by the character.
        '\u{0C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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

    fn gsm(units: usize, segments: usize) -> SegmentInfo {
        SegmentInfo {
            encoding: Encoding::Gsm7,
            units,
            segments,
        }
    }

    fn ucs2(units: usize, segments: usize) -> SegmentInfo {
        SegmentInfo {
            encoding: Encoding::Ucs2,
            units,
            segments,
        }
    }

    #[test]
    fn empty_text_is_one_segment() {
        assert_eq!(segments(""), gsm(0, 1));
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(segments(&"a".repeat(160)), gsm(160, 1));
        assert_eq!(segments(&"a".repeat(161)), gsm(161, 2));
        assert_eq!(segments(&"a".repeat(306)), gsm(306, 2));
        assert_eq!(segments(&"a".repeat(307)), gsm(307, 3));
        assert_eq!(segments(&"a".repeat(459)), gsm(459, 3));
        assert_eq!(segments(&"a".repeat(460)), gsm(460, 4));
    }

    #[test]
    fn extension_characters_count_two_septets() {
        assert_eq!(segments(&format!("{}€", "a".repeat(158))), gsm(160, 1));
        assert_eq!(segments(&format!("{}€", "a".repeat(159))), gsm(161, 2));
        assert_eq!(segments("^{}\\[~]|€\u{0C}"), gsm(20, 1));
    }

    #[test]
    fn escape_pair_is_never_split_across_segments() {
        // 152 + 2 + 152 = 306 septets would fill exactly two parts, but the `{` cannot start
        // in the last septet of part 1: part 1 holds 152, part 2 holds `{` + 151 'a', and the
        // last 'a' needs a third part.
        let straddling = format!("{}{{{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&straddling), gsm(306, 3));
        let fits = format!("{}{{{}", "a".repeat(152), "a".repeat(151));
        assert_eq!(segments(&fits), gsm(305, 2));
        // Ending exactly on the boundary is fine.
        let exact = format!("{}{{{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(segments(&exact), gsm(306, 2));
    }

    #[test]
    fn whole_gsm7_table_is_single_septet() {
        let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                     ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        // 128 positions, less the escape code.
        assert_eq!(basic.chars().count(), 127);
        assert_eq!(segments(basic), gsm(127, 1));
        for c in basic.chars() {
            assert_eq!(gsm7_septets(c), Some(1), "{c:?}");
        }
    }

    #[test]
    fn characters_outside_the_table_force_ucs2() {
        assert_eq!(segments("é").encoding, Encoding::Gsm7);
        assert_eq!(segments("á"), ucs2(1, 1));
        for text in [
            "í",
            "ó",
            "ú",
            "ç",
            "`",
            "\t",
            "“quoted”",
            "it’s",
            "\u{1B}",
            "Ω\u{2126}",
        ] {
            assert_eq!(segments(text).encoding, Encoding::Ucs2, "{text:?}");
        }
    }

    #[test]
    fn emoji_forces_ucs2_and_counts_utf16_units() {
        assert_eq!(segments("Hi 👍"), ucs2(5, 1));
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(segments(&"á".repeat(70)), ucs2(70, 1));
        assert_eq!(segments(&"á".repeat(71)), ucs2(71, 2));
        assert_eq!(segments(&"á".repeat(134)), ucs2(134, 2));
        assert_eq!(segments(&"á".repeat(135)), ucs2(135, 3));
        // Extension characters are one unit like any other in UCS-2.
        assert_eq!(segments(&format!("{}€", "á".repeat(69))), ucs2(70, 1));
    }

    #[test]
    fn surrogate_pair_moves_whole_to_the_next_segment() {
        // 66 + 2 + 66 = 134 units would fill two parts exactly, but the emoji cannot start in
        // the last unit of part 1.
        let text = format!("{}😀{}", "á".repeat(66), "á".repeat(66));
        assert_eq!(segments(&text), ucs2(134, 3));
        let text = format!("{}😀{}", "á".repeat(65), "á".repeat(67));
        assert_eq!(segments(&text), ucs2(134, 2));
    }

    #[test]
    fn grapheme_cluster_moves_whole_to_the_next_segment() {
        // 👍🏽 is two surrogate pairs in one grapheme: splitting only between surrogate pairs
        // would give 2 parts; keeping the grapheme whole needs 3.
        let text = format!("{}👍🏽{}", "á".repeat(65), "á".repeat(65));
        assert_eq!(segments(&text), ucs2(134, 3));
        let flag = format!("{}🇫🇷{}", "á".repeat(65), "á".repeat(65));
        assert_eq!(segments(&flag), ucs2(134, 3));
        // The family is 4 emoji and 3 zero-width joiners: 11 units.
        let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
        assert_eq!(segments(family), ucs2(11, 1));
        let text = format!("{}{family}{}", "á".repeat(60), "á".repeat(63));
        assert_eq!(segments(&text), ucs2(134, 3));
        let text = format!("{}{family}{}", "á".repeat(56), "á".repeat(67));
        assert_eq!(segments(&text), ucs2(134, 2));
    }

    #[test]
    fn oversized_grapheme_splits_between_characters_only() {
        // One grapheme of 30 emoji joined by ZWJ: 89 units, more than a part holds.
        let chain = vec!["😀"; 30].join("\u{200D}");
        assert_eq!(chain.graphemes(true).count(), 1);
        let text = format!("{}{chain}", "á".repeat(66));
        // Part 1: 66 (the first emoji does not fit in the 1 unit left); part 2: 22 × (emoji +
        // joiner) = 66, again 1 unit short for an emoji; part 3: the remaining 23.
        assert_eq!(segments(&text), ucs2(155, 3));
        let marks = format!("e{}", "\u{0301}".repeat(140));
        assert_eq!(segments(&marks), ucs2(141, 3));
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

    #[test]
    fn segment_counts_respect_their_bounds() {
        const PIECES: [&str; 16] = [
            "a",
            "Hello ",
            "é",
            "{",
            "€",
            "\n",
            "Ω",
            "á",
            "😀",
            "👍🏽",
            "🇫🇷",
            "👨\u{200D}👩\u{200D}👧\u{200D}👦",
            "’",
            " ",
            "0123456789",
            "~",
        ];
        let mut seed: u64 = 0x5EED_5EED_1234_5678;
        let mut next = move || {
            // A fixed LCG keeps the loop deterministic without a dependency.
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for round in 0..2_000 {
            let gsm_only = round % 2 == 0;
            let length = next() % 200;
            let mut text = String::new();
            for _ in 0..length {
                let piece = PIECES[next() % PIECES.len()];
                if gsm_only && piece.chars().any(|c| gsm7_septets(c).is_none()) {
                    continue;
                }
                text.push_str(piece);
            }
            let info = segments(&text);
            let is_gsm = text.chars().all(|c| gsm7_septets(c).is_some());
            let (single, per_part, max_waste) = if is_gsm {
                assert_eq!(info.encoding, Encoding::Gsm7, "{text:?}");
                let septets: usize = text.chars().filter_map(gsm7_septets).sum();
                assert_eq!(info.units, septets, "{text:?}");
                (GSM7_SINGLE, GSM7_PER_PART, 1)
            } else {
                assert_eq!(info.encoding, Encoding::Ucs2, "{text:?}");
                assert_eq!(info.units, text.encode_utf16().count(), "{text:?}");
                // The largest grapheme among the pieces is the 11-unit family.
                (UCS2_SINGLE, UCS2_PER_PART, 10)
            };
            if info.units <= single {
                assert_eq!(info.segments, 1, "{text:?}");
            } else {
                assert!(info.segments > 1, "{text:?}");
                assert!(info.segments >= info.units.div_ceil(per_part), "{text:?}");
                assert!(
                    info.segments <= info.units.div_ceil(per_part - max_waste),
                    "{text:?}"
                );
            }
        }
    }
}
