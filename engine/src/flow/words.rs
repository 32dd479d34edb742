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
    fn phrases_match_whole_words_only() {
        let haystack = words("I want my money back, now");
        assert!(contains_phrase(&haystack, &words("money back")));
        assert!(!contains_phrase(&haystack, &words("money now")));
        assert!(!contains_phrase(&words("yesterday"), &words("yes")));
        assert!(!contains_phrase(&haystack, &[]));
    }
}
