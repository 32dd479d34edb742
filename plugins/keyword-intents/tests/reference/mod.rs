//! The classifier as it was before the word index (commit 3c00de7): normalisation into a string
//! per token, and a scan of the whole rule table for every token. The equivalence test checks
//! the indexed classifier against it, text by text.

#![allow(dead_code, missing_docs, clippy::all)]

use keyword_intents::rules::{FILLERS, Intent, Place, rules};
use keyword_intents::{Classification, EXACT_CONFIDENCE, UNKNOWN};

/// Classifies an inbound text.
pub fn classify(text: &str) -> Classification {
    let tokens = tokens(text);
    let entities = extract(&tokens);
    let matches = find_matches(&tokens);

    // Tokens covered by each intent's phrases, and by any intent's.
    let mut covered = vec![[false; Intent::ALL.len()]; tokens.len()];
    for m in &matches {
        if let Some(intent) = m.intent {
            for flags in &mut covered[m.start..m.start + m.len] {
                flags[intent as usize] = true;
            }
        }
    }

    let winner = matches
        .iter()
        .filter_map(|m| m.intent)
        .max_by_key(|intent| intent.priority());
    let Some(winner) = winner else {
        return Classification {
            intent: UNKNOWN,
            confidence: 0.0,
            entities,
        };
    };
    let several = matches
        .iter()
        .filter_map(|m| m.intent)
        .any(|intent| intent != winner);

    let counted = tokens
        .iter()
        .zip(&covered)
        .filter(|(token, flags)| flags.iter().any(|f| *f) || !FILLERS.contains(&token.as_str()))
        .count();
    let winner_covered = covered.iter().filter(|f| f[winner as usize]).count();
    // `counted` is at least `winner_covered`, which is at least 1.
    let share = winner_covered as f32 / counted.max(1) as f32;

    let confidence = if several {
        0.45 + 0.15 * share
    } else if winner_covered == counted {
        EXACT_CONFIDENCE
    } else {
        0.70 + 0.15 * share
    };
    Classification {
        intent: winner.name(),
        confidence,
        entities,
    }
}

/// A phrase found in the tokens.
#[derive(Clone, Copy, Debug)]
struct Match {
    intent: Option<Intent>,
    start: usize,
    len: usize,
}

impl Match {
    fn end(self) -> usize {
        self.start + self.len
    }

    /// Whether `other` is longer and shares a token with `self`.
    fn shadowed_by(self, other: Match) -> bool {
        other.len > self.len && other.start < self.end() && self.start < other.end()
    }
}

/// Every rule that matches, less those that share a token with a longer match.
///
/// A scan of the rule table with no index: in the wasm build every call runs in a fresh
/// instance, so an index built on first use would be rebuilt on every call and cost more than
/// the scan. A rule is looked at further only when its first word is the token at hand.
fn find_matches(tokens: &[String]) -> Vec<Match> {
    let n = tokens.len();
    let mut found = Vec::new();
    for (start, token) in tokens.iter().enumerate() {
        let first_byte = token.as_bytes().first();
        for rule in rules() {
            // A first-byte check before the prefix comparison: in wasm the comparison is a call
            // to a byte-by-byte `memcmp`, and almost every rule fails on its first byte.
            if rule.phrase.as_bytes().first() != first_byte {
                continue;
            }
            let Some(rest) = rule.phrase.strip_prefix(token.as_str()) else {
                continue;
            };
            let Some(rest) = (if rest.is_empty() {
                Some("")
            } else {
                rest.strip_prefix(' ')
            }) else {
                continue;
            };
            let len = if rest.is_empty() {
                1
            } else {
                2 + rest.matches(' ').count()
            };
            let end = start + len;
            let placed = end <= n
                && match rule.place {
                    Place::Anywhere => true,
                    Place::Edge => start == 0 || end == n,
                    Place::Whole => len == n,
                    Place::NotWhole => len < n,
                };
            let rest_matches = || {
                rest.is_empty()
                    || rest
                        .split(' ')
                        .eq(tokens[start + 1..end].iter().map(String::as_str))
            };
            if placed && rest_matches() {
                found.push(Match {
                    intent: rule.intent,
                    start,
                    len,
                });
            }
        }
    }
    found
        .iter()
        .copied()
        .filter(|m| !found.iter().any(|other| m.shadowed_by(*other)))
        .collect()
}

/// The normalised tokens of `text`.
pub fn tokens(text: &str) -> Vec<String> {
    let mut folded = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        fold_char(c, &mut folded);
    }
    let mut out = Vec::new();
    for chunk in folded.split_whitespace() {
        split_chunk(chunk, &mut out);
    }
    out
}

/// The normalised tokens of `text`, joined by single spaces.
pub fn normalize(text: &str) -> String {
    tokens(text).join(" ")
}

fn fold_char(c: char, out: &mut String) {
    let c = match u32::from(c) {
        code @ 0xFF01..=0xFF5E => char::from_u32(code - 0xFEE0).unwrap_or(' '),
        0x3000 => ' ',
        _ => c,
    };
    match c {
        // Combining accents, zero-width (non-)joiners, word joiner, variation selectors, the
        // combining keycap, skin-tone modifiers and emoji tag characters.
        '\u{0300}'..='\u{036F}'
        | '\u{200B}'..='\u{200D}'
        | '\u{2060}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{20E3}'
        | '\u{1F3FB}'..='\u{1F3FF}'
        | '\u{E0020}'..='\u{E007F}' => {}
        '\'' | '\u{2018}' | '\u{2019}' | '`' | '\u{00B4}' => {}
        ':' | '.' => out.push(c),
        c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
        c if c.is_alphanumeric() => {
            for lower in c.to_lowercase() {
                out.push(strip_accent(lower));
            }
        }
        c if is_symbol(c) => {
            out.push(' ');
            out.push(c);
            out.push(' ');
        }
        _ => out.push(' '),
    }
}

/// Arrows, technical symbols, dingbats (✅ ✔ ❌), and the emoji blocks.
fn is_symbol(c: char) -> bool {
    matches!(u32::from(c), 0x2190..=0x2BFF | 0x1F000..=0x1FAFF)
}

fn strip_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        _ => c,
    }
}

/// Splits a whitespace-free chunk at `:` and `.` that are not between two digits, and pushes the
/// pieces.
fn split_chunk(chunk: &str, out: &mut Vec<String>) {
    let mut current = Token::default();
    let mut previous = None;
    let mut chars = chunk.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' || c == '.' {
            let after_digit = previous.is_some_and(|p: char| p.is_ascii_digit());
            let before_digit = chars.peek().is_some_and(char::is_ascii_digit);
            if after_digit && before_digit && !current.text.is_empty() {
                current.push(c);
            } else {
                current.flush(out);
            }
        } else {
            current.push(c);
        }
        previous = Some(c);
    }
    current.flush(out);
}

/// A token being built, shortening runs of three or more of the same letter to one letter.
#[derive(Default)]
struct Token {
    text: String,
    last: Option<char>,
    run: usize,
}

impl Token {
    fn push(&mut self, c: char) {
        if self.last == Some(c) {
            self.run += 1;
        } else {
            self.last = Some(c);
            self.run = 1;
        }
        if self.run >= 3 && c.is_alphabetic() {
            // The third of a run takes back the second; later ones are dropped.
            if self.run == 3 {
                self.text.pop();
            }
        } else {
            self.text.push(c);
        }
    }

    fn flush(&mut self, out: &mut Vec<String>) {
        if !self.text.is_empty() {
            out.push(std::mem::take(&mut self.text));
        }
        self.last = None;
        self.run = 0;
    }
}

/// A weekday spelling and the full name it stands for.
const DAYS: &[(&str, &str)] = &[
    ("monday", "monday"),
    ("mon", "monday"),
    ("tuesday", "tuesday"),
    ("tue", "tuesday"),
    ("tues", "tuesday"),
    ("wednesday", "wednesday"),
    ("wed", "wednesday"),
    ("thursday", "thursday"),
    ("thu", "thursday"),
    ("thur", "thursday"),
    ("thurs", "thursday"),
    ("friday", "friday"),
    ("fri", "friday"),
    ("saturday", "saturday"),
    ("sunday", "sunday"),
    ("lunes", "lunes"),
    ("martes", "martes"),
    ("miercoles", "miercoles"),
    ("jueves", "jueves"),
    ("viernes", "viernes"),
    ("sabado", "sabado"),
    ("domingo", "domingo"),
];

/// The `time` and `day` entities in `tokens`, in text order, each value once.
pub fn extract(tokens: &[String]) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut push = |name: &'static str, value: String| {
        if !out.iter().any(|(n, v)| *n == name && *v == value) {
            out.push((name, value));
        }
    };
    for (i, token) in tokens.iter().enumerate() {
        if let Some(&(_, day)) = DAYS.iter().find(|(spelling, _)| spelling == token) {
            push("day", day.to_owned());
        } else if let Some(time) = time_at(tokens, i) {
            push("time", time);
        }
    }
    out
}

/// The time that starts at `tokens[i]`, if one does.
fn time_at(tokens: &[String], i: usize) -> Option<String> {
    let token = tokens[i].as_str();
    // `3pm`, `3:30am`.
    for suffix in ["am", "pm"] {
        if let Some(clock) = token.strip_suffix(suffix)
            && let Some((hour, _)) = parse_clock(clock)
            && (1..=12).contains(&hour)
        {
            return Some(token.to_owned());
        }
    }
    let (hour, minutes) = parse_clock(token)?;
    // `3 pm`, `3:30 p.m.` (normalised to `3:30 p m`).
    let next = tokens.get(i + 1).map(String::as_str);
    let meridiem = match (next, tokens.get(i + 2).map(String::as_str)) {
        (Some(m @ ("am" | "pm")), _) => Some(m),
        (Some("a"), Some("m")) => Some("am"),
        (Some("p"), Some("m")) => Some("pm"),
        _ => None,
    };
    if let Some(meridiem) = meridiem {
        return (1..=12)
            .contains(&hour)
            .then(|| format!("{token}{meridiem}"));
    }
    // `15:00`.
    if minutes.is_some() {
        return (hour < 24).then(|| token.to_owned());
    }
    // `at 3`, `a las 5`, `las 5`.
    let previous = i.checked_sub(1).map(|p| tokens[p].as_str());
    (matches!(previous, Some("at" | "las")) && hour < 24).then(|| token.to_owned())
}

/// `h`, `hh`, `h:mm` or `hh:mm`, as the hour and the minutes if given.
fn parse_clock(text: &str) -> Option<(u8, Option<u8>)> {
    let (hour, minutes) = match text.split_once(':') {
        Some((hour, minutes)) => (hour, Some(minutes)),
        None => (text, None),
    };
    let hour = digits(hour, 1..=2)?;
    let minutes = match minutes {
        Some(minutes) => Some(digits(minutes, 2..=2).filter(|m| *m < 60)?),
        None => None,
    };
    Some((hour, minutes))
}

fn digits(text: &str, len: std::ops::RangeInclusive<usize>) -> Option<u8> {
    if !len.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
