//! The indexed classifier (word index and ASCII table laid out at build time, one pass of
//! normalisation) gives exactly what the table scan it replaced gave: same tokens, same intent,
//! same confidence, same entities, for every phrase of the table and for many random texts
//! built from the table's words, punctuation, emoji, accents, full-width letters and numbers.

#![allow(clippy::unwrap_used, missing_docs)]

mod reference;

use keyword_intents::classify;
use keyword_intents::normalize::{normalize, tokens};
use keyword_intents::rules::{FILLERS, rules};

/// Pieces a random text is made of, besides the table's own words.
const PIECES: &[&str] = &[
    "",
    " ",
    "  ",
    "\t",
    "\u{3000}",
    ",",
    ", ",
    "!",
    "!!!",
    "?",
    "¿",
    "¡",
    ".",
    "...",
    ":",
    "'",
    "’",
    "`",
    "-",
    "(",
    ")",
    "\"",
    "👍",
    "👍🏽",
    "👍\u{FE0F}",
    "👎",
    "😡",
    "🤬",
    "✅",
    "❌",
    "🙂",
    "🙏",
    "\u{200D}",
    "\u{0301}",
    "Sí",
    "SÍ",
    "mañana",
    "miércoles",
    "SÁBADO",
    "ÁÉÍÓÚÜÑ",
    "İ",
    "ＹＥＳ",
    "ｏｋ",
    "！",
    "yesss",
    "nooo",
    "okkk",
    "Yeees",
    "3",
    "3pm",
    "3:30",
    "3:30pm",
    "15:00",
    "25:00",
    "3:75",
    "13pm",
    "p.m.",
    "a.m.",
    "pm",
    "am",
    "at",
    "a las",
    "las",
    "9.99",
    "$9.99",
    "1000",
    "12345",
    "3::30",
    "3.:30",
    "thurs",
    "Thursday",
    "jueves",
    "mon",
    "fri",
    "the",
    "is",
    "weather",
    "yesterday",
    "know",
    "okra",
    "blah",
    "I",
    "you",
    "we",
    "it",
    "but",
    "Can't",
    "won't",
    "I'll",
    "don't",
    "NO",
    "Y",
    "K",
    "ok.",
    "y.",
    "no.",
    "si,",
];

/// A small deterministic generator (xorshift64*), so a failure names a reproducible case.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

fn assert_same(text: &str) {
    assert_eq!(tokens(text), reference::tokens(text), "tokens of {text:?}");
    assert_eq!(normalize(text), reference::normalize(text), "{text:?}");
    assert_eq!(classify(text), reference::classify(text), "{text:?}");
}

#[test]
fn every_phrase_and_filler_alone_and_in_company() {
    for rule in rules() {
        for text in [
            rule.phrase.to_owned(),
            rule.phrase.to_uppercase(),
            format!("{}!", rule.phrase),
            format!("ok {} please", rule.phrase),
            format!("{} no", rule.phrase),
            format!("please {} thursday at 3pm", rule.phrase),
        ] {
            assert_same(&text);
        }
    }
    for filler in FILLERS {
        assert_same(filler);
        assert_same(&format!("{filler} yes {filler}"));
    }
}

#[test]
fn random_texts_of_table_words_and_noise() {
    let words: Vec<&str> = rules()
        .flat_map(|rule| rule.phrase.split(' '))
        .chain(FILLERS.iter().copied())
        .collect();
    let mut random = Random(0x5EED_CAFE_F00D_0001);
    for case in 0..20_000 {
        let mut text = String::new();
        for _ in 0..random.below(12) {
            let piece = if random.below(2) == 0 {
                words[random.below(words.len())]
            } else {
                PIECES[random.below(PIECES.len())]
            };
            text.push_str(piece);
            if random.below(4) != 0 {
                text.push(' ');
            }
        }
        if case % 1000 == 0 {
            text = text.repeat(1 + random.below(40));
        }
        assert_same(&text);
    }
}
