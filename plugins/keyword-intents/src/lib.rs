//! keyword-intents: a rule-based classifier for the common SMS replies, in English and Spanish.
//!
//! Intents: `confirm`, `cancel`, `reschedule`, `help_request`, `pricing_question`, `complaint`
//! ([`INTENTS`]), or `unknown` with confidence 0.0 when no rule matches. Opt-out words (STOP, BAJA)
//! are not here: the host handles them before any classifier runs.
//!
//! # How a text is classified
//!
//! 1. The text is normalised into tokens ([`normalize`]): lower case, full-width ASCII folded,
//!    Latin accents stripped (`sí` is `si`), punctuation as separators, emoji as tokens of their
//!    own (`👍🏽` is `👍`).
//! 2. Every keyword phrase of the table ([`rules`]) is matched against the tokens as whole words,
//!    so `yesterday` is not `yes` and `know` is not `no`. Some phrases only match in some places:
//!    `y` and `k` only as the whole text, `no` and `si` only as the first or last word, a lone
//!    `ayuda` never (it is the carrier HELP keyword). A match that shares a word with a longer
//!    match is dropped, so more specific phrases win: "cancel my account" is a complaint, not a
//!    cancel (nor is "please cancel my account");
//!    "no problem" is a confirm, not a cancel; neutral phrases such as "not sure" match only to hide
//!    the keywords inside them.
//!
//!    The table is laid out at compile time ([`rules::lookup`]: a hash index of the rules by their
//!    first word, and of the fillers), and the normalisation of ASCII text is a table look-up:
//!    in the wasm build every call is a fresh instance, so a call does no set-up and its work
//!    follows the text's length, not the table's.
//! 3. The intents with a match are the candidates. With several, the one of highest priority wins:
//!    complaint > reschedule > cancel > confirm > pricing_question > help_request (a complaint is an
//!    escalation cue and beats everything).
//!
//! # Confidence
//!
//! Let `share` be the part of the text the winning intent's phrases cover: covered tokens over
//! counted tokens, where fillers ("please", "thanks", "gracias", "por favor", 🙂, ...) are not
//! counted unless a phrase covers them.
//!
//! | case | confidence |
//! | --- | --- |
//! | one intent, its phrases are the whole text ("YES!!!", "Yes please", "Sí, confirmo") | 0.95 |
//! | one intent, in a longer text ("I want a refund") | 0.70 + 0.15 × share (0.70 to 0.85) |
//! | several intents ("yes but how much is it") | 0.45 + 0.15 × share (0.45 to 0.60) |
//! | nothing matched | 0.0, intent `unknown` |
//!
//! So a flow that routes on confidence ≥ 0.7 acts only on texts with a single kind of cue.
//!
//! # Entities
//!
//! Whatever the intent, a time of day in the text is reported as entity `time` (`3pm`, `3:30pm`,
//! `15:00`) and a weekday as entity `day` (`thursday`, `jueves`); see [`entities`].
//!
//! # Building
//!
//! The logic is plain Rust with no dependency and builds natively (the engine benchmarks
//! [`classify`] natively). Compiled for `wasm32`, the crate also exports the `classifier` world
//! through the plugin SDK.

pub mod entities;
pub mod normalize;
pub mod rules;

#[cfg(target_arch = "wasm32")]
mod component;

use normalize::Tokens;
use rules::{Intent, Place, Word};

/// The intents [`classify`] can return, besides [`UNKNOWN`].
pub const INTENTS: &[&str] = &[
    Intent::Confirm.name(),
    Intent::Cancel.name(),
    Intent::Reschedule.name(),
    Intent::HelpRequest.name(),
    Intent::PricingQuestion.name(),
    Intent::Complaint.name(),
];

/// The intent returned when no rule matches.
pub const UNKNOWN: &str = "unknown";

/// Confidence when one intent's phrases are the whole text.
pub const EXACT_CONFIDENCE: f32 = 0.95;

/// The result of [`classify`].
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    /// One of [`INTENTS`], or [`UNKNOWN`].
    pub intent: &'static str,
    /// From 0.0 to 1.0, as described in the crate docs.
    pub confidence: f32,
    /// `(name, value)` pairs: `("time", "3pm")`, `("day", "thursday")`, in text order.
    pub entities: Vec<(&'static str, String)>,
}

/// Classifies an inbound text.
pub fn classify(text: &str) -> Classification {
    let tokens = Tokens::new(text);
    let words: Vec<&str> = tokens.iter().collect();
    let entities = entities::extract(&words);
    let looked_up: Vec<Option<&Word>> = words.iter().map(|word| rules::lookup(word)).collect();
    let matches = find_matches(&tokens, &looked_up);

    // For each token, a bit for each intent whose phrases cover it.
    let mut covered = vec![0_u8; tokens.len()];
    for m in &matches {
        if let Some(intent) = m.intent {
            for flags in covered.iter_mut().skip(m.start).take(m.len) {
                *flags |= intent.bit();
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

    let filler = |word: &Option<&Word>| word.is_some_and(|word| word.filler);
    let counted = looked_up
        .iter()
        .zip(&covered)
        .filter(|(word, flags)| **flags != 0 || !filler(word))
        .count();
    let winner_covered = covered.iter().filter(|f| *f & winner.bit() != 0).count();
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
/// Each token is looked up once in the word index laid out at build time ([`rules::lookup`]);
/// only the rules that start with it are compared further, against the joined tokens.
fn find_matches(tokens: &Tokens, looked_up: &[Option<&Word>]) -> Vec<Match> {
    let n = tokens.len();
    let mut found = Vec::new();
    for (start, word) in looked_up.iter().enumerate() {
        let Some(word) = word else {
            continue;
        };
        for candidate in word.rules() {
            let len = candidate.words;
            let end = start + len;
            let placed = end <= n
                && match candidate.rule.place {
                    Place::Anywhere => true,
                    Place::Edge => start == 0 || end == n,
                    Place::Whole => len == n,
                    Place::NotWhole => len < n,
                };
            // A one-word phrase is the word looked up; a longer one is compared in full.
            if placed && (len == 1 || tokens.starts_with_at(start, candidate.rule.phrase)) {
                found.push(Match {
                    intent: candidate.rule.intent,
                    start,
                    len,
                });
            }
        }
    }
    // `found` is in order of `start`, and a match can only overlap those that start fewer than
    // `LONGEST_PHRASE` tokens before it: the check stays linear in the number of matches.
    let shadowed = |m: Match| {
        let near = found.partition_point(|other| other.start + rules::LONGEST_PHRASE <= m.start);
        found[near..]
            .iter()
            .take_while(|other| other.start < m.end())
            .any(|other| m.shadowed_by(*other))
    };
    found.iter().copied().filter(|m| !shadowed(*m)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{EXACT_CONFIDENCE, INTENTS, UNKNOWN, classify};

    /// Realistic inbound texts and the intent each should get.
    const CASES: &[(&str, &str)] = &[
        // confirm, English
        ("YES", "confirm"),
        ("yes", "confirm"),
        ("Yes please!", "confirm"),
        ("YES!!!", "confirm"),
        ("Y", "confirm"),
        ("y.", "confirm"),
        ("yep", "confirm"),
        ("Yeah that works", "confirm"),
        ("yup see you then", "confirm"),
        ("Sure thing", "confirm"),
        ("Confirmed, thanks!", "confirm"),
        ("ok", "confirm"),
        ("Okay 👍", "confirm"),
        ("k", "confirm"),
        ("👍", "confirm"),
        ("👍🏽", "confirm"),
        ("👍\u{FE0F}", "confirm"),
        ("✅", "confirm"),
        ("Sounds good, see you then", "confirm"),
        ("ＹＥＳ", "confirm"),
        ("Yesss", "confirm"),
        ("No problem, I'll be there", "confirm"),
        ("I'll be there on Thursday at 3pm", "confirm"),
        // confirm, Spanish
        ("si", "confirm"),
        ("Sí", "confirm"),
        ("Sí, confirmo", "confirm"),
        ("SI CLARO", "confirm"),
        ("Claro que sí", "confirm"),
        ("De acuerdo, gracias", "confirm"),
        ("vale", "confirm"),
        ("Perfecto, nos vemos el jueves", "confirm"),
        // cancel
        ("cancel", "cancel"),
        ("Please cancel it", "cancel"),
        ("I can't make it", "cancel"),
        ("I cannot come tomorrow, sorry", "cancel"),
        ("won’t make it today", "cancel"),
        ("No", "cancel"),
        ("no.", "cancel"),
        ("Nope", "cancel"),
        ("No thanks", "cancel"),
        ("Sorry, no", "cancel"),
        ("👎", "cancel"),
        ("Cancelar", "cancel"),
        ("No puedo ir mañana", "cancel"),
        ("Quiero cancelar la cita", "cancel"),
        // reschedule
        ("Can I reschedule?", "reschedule"),
        ("can we do thursday at 3pm instead", "reschedule"),
        ("Another time maybe", "reschedule"),
        ("Is a different day possible?", "reschedule"),
        ("Can you move it to next week", "reschedule"),
        ("I need to change the time", "reschedule"),
        ("Can't make it, can we do another day?", "reschedule"),
        ("¿Podemos cambiar la cita?", "reschedule"),
        ("Mejor otro día", "reschedule"),
        ("Quisiera reprogramar para el viernes", "reschedule"),
        ("No puedo, ¿otro día?", "reschedule"),
        // help_request
        ("Help me please", "help_request"),
        ("I have a question", "help_request"),
        ("How do I get there?", "help_request"),
        ("Can someone call me?", "help_request"),
        ("I want to talk to a person", "help_request"),
        ("Necesito ayuda con mi cita", "help_request"),
        ("Tengo una pregunta", "help_request"),
        // pricing_question
        ("How much is it?", "pricing_question"),
        ("What's the price?", "pricing_question"),
        ("Is there a fee for that?", "pricing_question"),
        ("Can I get a quote", "pricing_question"),
        ("¿Cuánto cuesta?", "pricing_question"),
        ("cuanto cuesta la consulta", "pricing_question"),
        ("Precio?", "pricing_question"),
        ("I have a question about the cost", "pricing_question"),
        // complaint
        ("I want a refund", "complaint"),
        ("This is terrible service", "complaint"),
        ("worst experience ever", "complaint"),
        ("This is a scam", "complaint"),
        ("I'm calling my lawyer", "complaint"),
        ("Cancel my account", "complaint"),
        ("I want to speak to a manager", "complaint"),
        ("Quiero un reembolso", "complaint"),
        ("Voy a llamar a mi abogado", "complaint"),
        ("Tengo una queja", "complaint"),
        ("Yes, but I want a refund", "complaint"),
        ("😡😡", "complaint"),
        // unknown
        ("yesterday was fine", UNKNOWN),
        ("I know", UNKNOWN),
        ("nothing", UNKNOWN),
        ("Who is this?", UNKNOWN),
        ("thanks", UNKNOWN),
        ("", UNKNOWN),
        ("?!", UNKNOWN),
        ("Is there no parking?", UNKNOWN),
        ("I'm not sure", UNKNOWN),
        ("AYUDA", UNKNOWN),
        ("yay", UNKNOWN),
        ("Okra is on the menu", UNKNOWN),
    ];

    #[test]
    fn table() {
        assert!(CASES.len() >= 60);
        let mut failures = Vec::new();
        for (text, intent) in CASES {
            let got = classify(text);
            if got.intent != *intent {
                failures.push(format!("{text:?}: expected {intent}, got {got:?}"));
            }
            assert!((0.0..=1.0).contains(&got.confidence), "{text:?}: {got:?}");
            assert_eq!(
                got.confidence == 0.0,
                got.intent == UNKNOWN,
                "{text:?}: {got:?}"
            );
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_intent_is_listed_and_covered() {
        for intent in INTENTS {
            assert!(CASES.iter().any(|(_, i)| i == intent), "{intent}");
        }
        assert!(!INTENTS.contains(&UNKNOWN));
        assert_eq!(INTENTS.len(), 6);
    }

    #[test]
    fn reschedule_with_day_and_time() {
        let got = classify("can we do thursday at 3pm instead");
        assert_eq!(got.intent, "reschedule");
        assert_eq!(
            got.entities,
            [("day", "thursday".to_owned()), ("time", "3pm".to_owned())]
        );
        let got = classify("¿El jueves a las 15:00?");
        assert_eq!(
            got.entities,
            [("day", "jueves".to_owned()), ("time", "15:00".to_owned())]
        );
    }

    #[test]
    fn unknown_is_zero_but_keeps_entities() {
        let got = classify("Monday 10am");
        assert_eq!(got.intent, UNKNOWN);
        assert_eq!(got.confidence, 0.0);
        assert_eq!(got.entities.len(), 2);
    }

    #[test]
    fn exact_keyword_is_most_confident() {
        for text in [
            "YES",
            "Yes please!",
            "Sí, confirmo",
            "👍",
            "cancel it",
            "Cancel my account",
        ] {
            assert_eq!(classify(text).confidence, EXACT_CONFIDENCE, "{text}");
        }
    }

    #[test]
    fn confidence_ordering() {
        let exact = classify("yes").confidence;
        let short = classify("yes I will").confidence;
        let long = classify("yes I will come with my sister tomorrow").confidence;
        let mixed = classify("yes but how much is it").confidence;
        assert!(exact > short, "{exact} > {short}");
        assert!(short > long, "{short} > {long}");
        assert!(long >= 0.70, "{long}");
        assert!(short <= 0.85, "{short}");
        assert!(long > mixed, "{long} > {mixed}");
        assert!(mixed < 0.7, "{mixed}");
        assert_eq!(classify("yes but how much is it").intent, "confirm");
    }

    #[test]
    fn complaint_beats_everything_with_lower_confidence() {
        let got = classify("ok cancel, I want a refund, how much was the fee");
        assert_eq!(got.intent, "complaint");
        assert!(got.confidence < 0.7, "{got:?}");
    }

    #[test]
    fn more_specific_phrase_wins_without_conflict() {
        // "cancel my account" hides "cancel"; "no problem" hides "no".
        let got = classify("please cancel my account");
        assert_eq!(got.intent, "complaint");
        assert!(got.confidence >= 0.7, "{got:?}");
        let got = classify("no problem");
        assert_eq!(got.intent, "confirm");
        assert_eq!(got.confidence, EXACT_CONFIDENCE);
    }

    #[test]
    fn long_input_is_fine() {
        let text = "blah ".repeat(2000) + "refund";
        assert_eq!(classify(&text).intent, "complaint");
    }
}
