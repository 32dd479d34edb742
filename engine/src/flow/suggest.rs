//! "Did you mean": the nearest of the names a file could have meant, for the errors that name
//! a step, a field, a plugin or a key that does not exist.

/// The candidate closest to `word` by edit distance, when it is close enough to be the name the
/// author meant: at most one edit for short names, about one in three for longer ones. A
/// transposition (`on_timoeut`) counts as one edit.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != word)
        .map(|candidate| {
            let distance = strsim::damerau_levenshtein(word, candidate)
                .min(strsim::damerau_levenshtein(&word.to_lowercase(), candidate));
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate)
}

/// `": did you mean `x`?"`, or nothing when no candidate is close.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    closest(word, candidates)
        .map(|candidate| format!(": did you mean `{candidate}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_transpositions() {
        let steps = ["await_answer", "bye", "hello"];
        assert_eq!(closest("await_anwser", steps), Some("await_answer"));
        assert_eq!(closest("hallo", steps), Some("hello"));
        assert_eq!(closest("timout", ["timeout", "on_reply"]), Some("timeout"));
        assert_eq!(closest("Program", ["program"]), Some("program"));
    }

    #[test]
    fn says_nothing_when_nothing_is_close() {
        assert_eq!(closest("confirmation", ["bye", "hello"]), None);
        assert_eq!(closest("ab", ["xy"]), None);
        assert_eq!(did_you_mean("zzz", ["hello"]), "");
        assert_eq!(
            did_you_mean("helo", ["hello"]),
            ": did you mean `hello`?".to_owned()
        );
    }
}
