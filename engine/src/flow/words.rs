//! Normalising what people type, so that keywords and cue words match however they are written.

use unicode_normalization::UnicodeNormalization as _;

/// The words of `text`: NFKC (so full-width `ＳＴＯＰ` is `STOP`), lower case, with
/// everything that is not a letter or digit (punctuation, emoji, spaces) as a separator.
pub fn words(text: &str) -> Vec<String> {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether the words of `phrase` appear, in order and next to each other, in `haystack`.
pub fn contains_phrase(haystack: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty()
        && haystack
            .windows(phrase.len())
            .any(|window| window == phrase)
}

/// Words that turn the meaning of the next few around: "not", "never", the "t" that
/// `words` leaves of "haven't", run-together contractions, and their Spanish kin.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "t", "without", "nothing", "nor", "cannot", "havent", "hasnt", "hadnt",
    "didnt", "dont", "doesnt", "isnt", "arent", "wasnt", "werent", "wont", "cant", "couldnt",
    "shouldnt", "wouldnt", "aint", "nunca", "sin", "ni", "tampoco", "jamas", "jamás",
];

/// How many words before a phrase a negation still turns it around ("I have not yet paid").
const NEGATION_REACH: usize = 3;

/// Whether `phrase` appears in `haystack` with no negation among the few words before it:
/// "I haven't paid yet" does not affirm `paid`, "paid it yesterday" does. A phrase that is
/// itself negative (`not sure`) is matched as written.
pub fn contains_affirmed(haystack: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty()
        && haystack
            .windows(phrase.len())
            .enumerate()
            .any(|(at, window)| {
                window == phrase
                    && !haystack[at.saturating_sub(NEGATION_REACH)..at]
                        .iter()
                        .any(|word| NEGATIONS.contains(&word.as_str()))
            })
}

/// A keyword as flows declare and match it: its words joined by one space, lower case.
pub fn keyword(text: &str) -> String {
    words(text).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_case_and_punctuation() {
        assert_eq!(words("  ＡＰＰＴ!! please🙂"), vec!["appt", "please"]);
        assert_eq!(keyword("Order-Status"), "order status");
    }

    #[test]
    fn a_negated_phrase_is_not_affirmed() {
        let paid = words("paid");
        for negated in [
            "I haven't paid yet",
            "not paid",
            "I have not yet paid",
            "never paid it",
            "todavía no paid",
            "I didnt paid",
        ] {
            assert!(!contains_affirmed(&words(negated), &paid), "{negated}");
        }
        for affirmed in ["paid", "I paid it yesterday", "Paid! not a problem"] {
            assert!(contains_affirmed(&words(affirmed), &paid), "{affirmed}");
        }
        // A negative phrase is matched as written.
        assert!(contains_affirmed(
            &words("I am not sure"),
            &words("not sure")
        ));
    }

    #[test]
    fn phrases_match_whole_words_only() {
        let haystack = words("I want my money back, now");
        assert!(contains_phrase(&haystack, &words("money back")));
        assert!(!contains_phrase(&haystack, &words("money now")));
        assert!(!contains_phrase(&words("yesterday"), &words("yes")));
        assert!(!contains_phrase(&haystack, &[]));
    }
}
