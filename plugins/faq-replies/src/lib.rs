//! faq-replies: answers inbound texts from a small FAQ set in the operator's config, with a
//! confidence, so a flow can hand off to a person when it is low.
//!
//! # Configuration
//!
//! In `[plugins.faq-replies.config]` (the host passes each value as a string; an array of tables
//! as JSON):
//!
//! - `faq` (required): the entries, such as
//!   `[{"question": "What are your hours?", "keywords": ["hours", "open", "horario"],
//!   "answer": "We're open 9am-5pm Mon-Fri.", "locale": "en"}]`. `question` and `answer` are
//!   required, `keywords` and `locale` optional. An entry with a `locale` applies only to
//!   conversations in that language (compared on the primary subtag: `es` matches `es-MX`);
//!   one without applies to all.
//! - `min_confidence` (default `0.5`): below it the draft suggests the `handoff` step.
//! - `fallback` (default [`DEFAULT_FALLBACK`]): the text drafted when no entry matches.
//!
//! # Scoring
//!
//! Texts, questions and keywords are normalised ([`normalize`]: lower case, accents stripped,
//! punctuation as separators, a plural `s` dropped). For each entry that applies to the
//! conversation's language:
//!
//! - `hits` is the number of its keywords found in the text as whole words or phrases
//!   ("open" matches "are you open?", not "opened"; "opening hours" needs both words in a row);
//! - `overlap` is the share of its question's content words (stop words such as "what", "are",
//!   "your", "el", "que" left out) that appear in the text.
//!
//! | hits | keyword score `k` |
//! | --- | --- |
//! | 0 | 0.0 |
//! | 1 | 0.55 |
//! | 2 | 0.70 |
//! | 3 or more | 0.80 |
//!
//! The confidence is `min(1, k + 0.35 × overlap)` for an entry with keywords, and `0.9 × overlap`
//! for an entry without any (its question is then the only signal). So a single keyword is enough
//! to answer at the default threshold, the question's words alone are not (0.35 at most: the
//! answer is drafted but the flow is told to hand off), and a text that repeats the question and
//! hits its keyword scores about 0.9.
//!
//! The entry with the highest confidence wins; an entry for the conversation's language is
//! preferred to a language-free one unless the latter scores more than 0.1 higher; ties go to the
//! entry listed first. When the winner's confidence is below `min_confidence` the draft is still
//! its answer, with next step `handoff`. When no entry scores above zero the draft is the fallback
//! text, confidence 0.0, next step `handoff`.

pub mod normalize;

#[cfg(target_arch = "wasm32")]
mod component;

use std::fmt;

use serde::Deserialize;

/// The text drafted when no FAQ entry matches, unless the operator sets `fallback`.
pub const DEFAULT_FALLBACK: &str =
    "Thanks for your message. A member of our team will get back to you shortly.";

/// The `min_confidence` used when the operator does not set one.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;

/// The next step suggested when the answer is not confident enough.
pub const HANDOFF: &str = "handoff";

/// How much a language-free entry must outscore an entry for the conversation's language to win.
const LOCALE_PREFERENCE: f32 = 0.1;

/// Words left out of a question's content words (compared before stemming).
const STOP_WORDS: &[&str] = &[
    // English
    "a", "an", "the", "what", "whats", "when", "where", "which", "who", "how", "why", "is", "are",
    "am", "was", "were", "be", "do", "does", "did", "can", "could", "will", "would", "i", "im",
    "you", "your", "yours", "my", "me", "we", "our", "us", "it", "its", "to", "of", "in", "on",
    "at", "for", "and", "or", "with", "from", "there", "this", "that", "have", "has", "any",
    // Spanish
    "el", "la", "lo", "los", "las", "un", "una", "uno", "de", "del", "al", "que", "en", "y", "o",
    "es", "son", "su", "sus", "mi", "mis", "tu", "por", "para", "con", "cual", "cuales", "como",
    "cuando", "donde", "se", "hay", "tiene", "tienen", "puedo", "pueden", "usted", "ustedes",
];

/// Why the `faq` config could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaqError {
    /// The value is not a JSON array of entries of the expected shape.
    Json(String),
    /// The array has no entries.
    Empty,
    /// One entry is unusable.
    Entry {
        /// The entry's position in the array, from 0.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Display for FaqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaqError::Json(message) => write!(
                f,
                "not a JSON array of {{question, keywords, answer, locale}} entries: {message}"
            ),
            FaqError::Empty => f.write_str("the FAQ has no entries"),
            FaqError::Entry { index, problem } => write!(f, "entry {index}: {problem}"),
        }
    }
}

impl std::error::Error for FaqError {}

/// One entry as the operator writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    question: String,
    #[serde(default)]
    keywords: Vec<String>,
    answer: String,
    #[serde(default)]
    locale: Option<String>,
}

/// One entry, ready to match.
#[derive(Clone, Debug)]
struct Entry {
    answer: String,
    /// The primary language subtag, lower case.
    language: Option<String>,
    /// Each keyword's terms.
    keywords: Vec<Vec<String>>,
    /// The question's content terms, each once.
    question_terms: Vec<String>,
}

impl Entry {
    fn from_raw(index: usize, raw: RawEntry) -> Result<Entry, FaqError> {
        let problem = |problem: &str| FaqError::Entry {
            index,
            problem: problem.to_owned(),
        };
        if raw.answer.trim().is_empty() {
            return Err(problem("`answer` is empty"));
        }
        let language = match raw.locale {
            None => None,
            Some(locale) => {
                let language = primary_language(&locale);
                if language.is_empty() || !language.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(problem(&format!(
                        "`locale` {locale:?} is not a language tag such as \"en\" or \"es-MX\""
                    )));
                }
                Some(language)
            }
        };
        let mut keywords = Vec::with_capacity(raw.keywords.len());
        for (k, keyword) in raw.keywords.iter().enumerate() {
            let terms = normalize::terms(keyword);
            if terms.is_empty() {
                return Err(problem(&format!(
                    "keyword {k} ({keyword:?}) has no letters or digits"
                )));
            }
            if !keywords.contains(&terms) {
                keywords.push(terms);
            }
        }
        let mut question_terms: Vec<String> = Vec::new();
        for word in normalize::words(&raw.question) {
            if STOP_WORDS.contains(&word.as_str()) {
                continue;
            }
            let term = normalize::stem(word);
            if !question_terms.contains(&term) {
                question_terms.push(term);
            }
        }
        if keywords.is_empty() && question_terms.is_empty() {
            return Err(problem(
                "nothing to match: no `keywords` and no content words in `question`",
            ));
        }
        Ok(Entry {
            answer: raw.answer.trim().to_owned(),
            language,
            keywords,
            question_terms,
        })
    }

    /// The confidence that this entry answers a text with the terms `text`.
    fn score(&self, text: &[String]) -> f32 {
        let overlap = if self.question_terms.is_empty() {
            0.0
        } else {
            let present = self
                .question_terms
                .iter()
                .filter(|term| text.contains(term))
                .count();
            present as f32 / self.question_terms.len() as f32
        };
        if self.keywords.is_empty() {
            return 0.9 * overlap;
        }
        let hits = self
            .keywords
            .iter()
            .filter(|keyword| contains_phrase(text, keyword))
            .count();
        let keyword_score = match hits {
            0 => 0.0,
            1 => 0.55,
            2 => 0.70,
            _ => 0.80,
        };
        (keyword_score + 0.35 * overlap).min(1.0)
    }
}

/// Whether `phrase` appears in `text` as consecutive terms.
fn contains_phrase(text: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && text.windows(phrase.len()).any(|window| window == phrase)
}

/// The primary subtag of a BCP 47 tag, lower case (`es` for `es-MX`).
fn primary_language(locale: &str) -> String {
    locale
        .trim()
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A FAQ set, parsed from the operator's config.
#[derive(Clone, Debug)]
pub struct Faq {
    entries: Vec<Entry>,
    fallback: String,
}

/// What [`Faq::answer`] drafts.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The reply: the best entry's answer, or the fallback text.
    pub text: String,
    /// From 0.0 to 1.0, as described in the crate docs; 0.0 for the fallback.
    pub confidence: f32,
    /// `Some("handoff")` when the confidence is below the threshold (always for the fallback).
    pub next_step: Option<&'static str>,
    /// The position in the config of the entry answered, `None` for the fallback.
    pub entry: Option<usize>,
}

impl Faq {
    /// Parses the `faq` config value: a JSON array of `{question, keywords, answer, locale}`.
    ///
    /// # Errors
    ///
    /// [`FaqError`] when the value is not such an array, is empty, or has an unusable entry.
    pub fn from_json(json: &str) -> Result<Faq, FaqError> {
        let raw: Vec<RawEntry> =
            serde_json::from_str(json).map_err(|error| FaqError::Json(error.to_string()))?;
        if raw.is_empty() {
            return Err(FaqError::Empty);
        }
        let entries = raw
            .into_iter()
            .enumerate()
            .map(|(index, raw)| Entry::from_raw(index, raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Faq {
            entries,
            fallback: DEFAULT_FALLBACK.to_owned(),
        })
    }

    /// Uses `fallback` as the text drafted when no entry matches.
    #[must_use]
    pub fn with_fallback(mut self, fallback: impl Into<String>) -> Faq {
        self.fallback = fallback.into();
        self
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries (never, for a parsed FAQ).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Answers `text`, an inbound text of a conversation in `language` (a BCP 47 tag or its
    /// primary subtag). Below `min_confidence` the answer suggests a handoff.
    pub fn answer(&self, text: &str, language: &str, min_confidence: f32) -> Answer {
        let language = primary_language(language);
        let terms = normalize::terms(text);

        // (index, confidence, ranking score)
        let mut best: Option<(usize, f32, f32)> = None;
        for (index, entry) in self.entries.iter().enumerate() {
            let preferred = match &entry.language {
                None => false,
                Some(entry_language) if *entry_language == language => true,
                Some(_) => continue,
            };
            let confidence = entry.score(&terms);
            if confidence <= 0.0 {
                continue;
            }
            let rank = confidence + if preferred { LOCALE_PREFERENCE } else { 0.0 };
            if best.is_none_or(|(_, _, best_rank)| rank > best_rank) {
                best = Some((index, confidence, rank));
            }
        }

        match best {
            Some((index, confidence, _)) => Answer {
                text: self.entries[index].answer.clone(),
                confidence,
                next_step: (confidence < min_confidence).then_some(HANDOFF),
                entry: Some(index),
            },
            None => Answer {
                text: self.fallback.clone(),
                confidence: 0.0,
                next_step: Some(HANDOFF),
                entry: None,
            },
        }
    }
}

/// Parses the `min_confidence` config value: a number from 0 to 1.
///
/// # Errors
///
/// A message naming the problem when it is not such a number.
pub fn parse_min_confidence(value: &str) -> Result<f32, String> {
    match value.trim().parse::<f32>() {
        Ok(number) if (0.0..=1.0).contains(&number) => Ok(number),
        _ => Err(format!(
            "plugin config `min_confidence` is {value:?}, not a number from 0 to 1"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{
        DEFAULT_FALLBACK, DEFAULT_MIN_CONFIDENCE, Faq, FaqError, HANDOFF, parse_min_confidence,
    };

    const FAQ: &str = r#"[
        {"question": "What are your hours?", "keywords": ["hours", "open", "close", "opening times"],
         "answer": "We're open 9am-5pm Mon-Fri.", "locale": "en"},
        {"question": "¿Cuál es su horario?", "keywords": ["horario", "abierto", "abren", "cierran"],
         "answer": "Abrimos de 9 a 17 h, de lunes a viernes.", "locale": "es"},
        {"question": "Where are you located?", "keywords": ["address", "located", "where are you", "parking", "direccion"],
         "answer": "123 Main St. Parking is behind the building."},
        {"question": "Do you take insurance?", "keywords": ["insurance", "seguro"],
         "answer": "We accept most insurance plans.", "locale": "en"},
        {"question": "¿Aceptan seguro médico?", "keywords": ["seguro", "aseguradora"],
         "answer": "Aceptamos la mayoría de los seguros médicos.", "locale": "es"},
        {"question": "How do I pay my bill online?",
         "answer": "Pay at example.com/pay."}
    ]"#;

    fn faq() -> Faq {
        Faq::from_json(FAQ).unwrap()
    }

    fn ask(text: &str, language: &str) -> super::Answer {
        faq().answer(text, language, DEFAULT_MIN_CONFIDENCE)
    }

    #[test]
    fn parses_the_example() {
        let faq = faq();
        assert_eq!(faq.len(), 6);
        assert!(!faq.is_empty());
        let minimal = Faq::from_json(r#"[{"question": "Hours?", "answer": "9-5"}]"#).unwrap();
        assert_eq!(minimal.len(), 1);
    }

    #[test]
    fn malformed_json_is_an_error() {
        for json in [
            "",
            "not json",
            "{\"question\": \"x\"}",
            "[1, 2]",
            "[{\"question\": \"x\"}",
        ] {
            let error = Faq::from_json(json).unwrap_err();
            assert!(matches!(error, FaqError::Json(_)), "{json:?}: {error:?}");
            assert!(error.to_string().contains("JSON array"), "{error}");
        }
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let error = Faq::from_json(r#"[{"question": "Hours?"}]"#).unwrap_err();
        assert!(error.to_string().contains("answer"), "{error}");
        let error =
            Faq::from_json(r#"[{"question": "Hours?", "answer": "9-5", "keyword": ["hours"]}]"#)
                .unwrap_err();
        assert!(error.to_string().contains("keyword"), "{error}");
        let error =
            Faq::from_json(r#"[{"question": "Hours?", "answer": "9-5", "keywords": "hours"}]"#)
                .unwrap_err();
        assert!(matches!(error, FaqError::Json(_)), "{error:?}");
    }

    #[test]
    fn unusable_entries_are_named() {
        assert_eq!(Faq::from_json("[]").unwrap_err(), FaqError::Empty);
        let cases = [
            (
                r#"{"question": "Hours?", "answer": "  "}"#,
                "`answer` is empty",
            ),
            (
                r#"{"question": "Hours?", "answer": "9-5", "locale": ""}"#,
                "`locale`",
            ),
            (
                r#"{"question": "Hours?", "answer": "9-5", "locale": "e1"}"#,
                "`locale`",
            ),
            (
                r#"{"question": "Hours?", "answer": "9-5", "keywords": ["?!"]}"#,
                "keyword 0",
            ),
            (
                r#"{"question": "What is it?", "answer": "9-5"}"#,
                "nothing to match",
            ),
        ];
        for (entry, problem) in cases {
            let json = format!(r#"[{{"question": "Hi there", "answer": "Hello"}}, {entry}]"#);
            let error = Faq::from_json(&json).unwrap_err();
            assert!(
                matches!(&error, FaqError::Entry { index: 1, problem: p } if p.contains(problem)),
                "{entry}: {error:?}"
            );
            assert!(error.to_string().starts_with("entry 1: "), "{error}");
        }
    }

    #[test]
    fn answers_in_english() {
        let answer = ask("What time are you open on Friday?", "en");
        assert_eq!(answer.text, "We're open 9am-5pm Mon-Fri.");
        assert_eq!(answer.entry, Some(0));
        assert!(answer.confidence >= 0.5, "{answer:?}");
        assert_eq!(answer.next_step, None);
    }

    #[test]
    fn answers_in_spanish_with_accents_and_region() {
        let answer = ask("¿Cuál es el HORARIO?", "es-MX");
        assert_eq!(answer.entry, Some(1));
        assert_eq!(answer.next_step, None);
        let answer = ask("a que hora abren el sabado", "es");
        assert_eq!(answer.entry, Some(1));
    }

    #[test]
    fn asking_the_question_itself_is_most_confident() {
        let exact = ask("What are your hours?", "en");
        let keyword = ask("open saturday?", "en");
        assert_eq!(exact.entry, Some(0));
        assert_eq!(keyword.entry, Some(0));
        assert!(
            exact.confidence > keyword.confidence,
            "{exact:?} {keyword:?}"
        );
        assert!(exact.confidence >= 0.85, "{exact:?}");
    }

    #[test]
    fn locale_filters_entries() {
        // The English-only hours entry does not answer a Spanish conversation.
        let answer = ask("are you open?", "es");
        assert_ne!(answer.entry, Some(0));
        // A language-free entry answers everyone.
        assert_eq!(ask("where are you located", "en").entry, Some(2));
        assert_eq!(ask("¿Cuál es la dirección?", "es").entry, Some(2));
        // No language at all: only language-free entries apply.
        assert_eq!(ask("where are you located", "").entry, Some(2));
        assert_eq!(ask("hours", "").entry, None);
    }

    #[test]
    fn locale_preference() {
        // "seguro" is a keyword of both insurance entries; each language gets its own.
        assert_eq!(ask("seguro?", "es").entry, Some(4));
        assert_eq!(ask("seguro?", "en").entry, Some(3));
        // A locale entry is preferred to a language-free one that scores the same.
        let json = r#"[
            {"question": "Parking?", "keywords": ["parking"], "answer": "Behind the building."},
            {"question": "Parking?", "keywords": ["parking"], "answer": "Detrás del edificio.", "locale": "es"}
        ]"#;
        let faq = Faq::from_json(json).unwrap();
        assert_eq!(faq.answer("parking", "es", 0.5).entry, Some(1));
        assert_eq!(faq.answer("parking", "en", 0.5).entry, Some(0));
    }

    #[test]
    fn keywords_match_whole_words_and_phrases() {
        assert_eq!(ask("when do you close", "en").entry, Some(0));
        assert_eq!(ask("it was closed", "en").entry, None);
        assert_eq!(ask("opening times", "en").entry, Some(0));
        // Plural-insensitive: "hour" matches the keyword "hours".
        assert_eq!(ask("what hour", "en").entry, Some(0));
    }

    #[test]
    fn low_confidence_hands_off_with_the_best_answer() {
        // Only the question's words, no keyword: answered, but handed off.
        let answer = ask("paying the bill", "en");
        assert_eq!(answer.entry, Some(5));
        assert!(answer.confidence < 0.5, "{answer:?}");
        let answer = faq().answer("bill online", "en", 0.5);
        assert_eq!(answer.entry, Some(5));
        assert!(answer.confidence > 0.5, "{answer:?}");
        // A strict threshold hands off even a keyword hit.
        let answer = faq().answer("are you open", "en", 0.95);
        assert_eq!(answer.text, "We're open 9am-5pm Mon-Fri.");
        assert_eq!(answer.next_step, Some(HANDOFF));
        let lenient = faq().answer("are you open", "en", 0.0);
        assert_eq!(lenient.next_step, None);
    }

    #[test]
    fn no_match_gives_the_fallback() {
        let answer = ask("Is Dr. Smith in today?", "en");
        assert_eq!(answer.text, DEFAULT_FALLBACK);
        assert_eq!(answer.confidence, 0.0);
        assert_eq!(answer.next_step, Some(HANDOFF));
        assert_eq!(answer.entry, None);
        let answer = faq()
            .with_fallback("Un momento, por favor.")
            .answer("", "es", 0.5);
        assert_eq!(answer.text, "Un momento, por favor.");
        assert_eq!(answer.next_step, Some(HANDOFF));
    }

    #[test]
    fn min_confidence_parsing() {
        assert_eq!(parse_min_confidence("0.7"), Ok(0.7));
        assert_eq!(parse_min_confidence(" 1 "), Ok(1.0));
        assert_eq!(parse_min_confidence("0"), Ok(0.0));
        for bad in ["", "high", "1.5", "-0.1", "NaN"] {
            let error = parse_min_confidence(bad).unwrap_err();
            assert!(error.contains("min_confidence"), "{error}");
        }
    }
}
