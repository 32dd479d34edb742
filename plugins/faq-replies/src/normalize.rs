//! Text normalisation (a trimmed copy of keyword-intents' one, without the emoji and time rules):
//! full-width ASCII folded and the ideographic space made a space, lower case, common Latin
//! accents stripped (`á é í ó ú ü ñ ç` to `a e i o u u n c`, combining accents dropped), apostrophes
//! dropped (`what's` is `whats`), and anything that is not a letter or a digit separating words.
//!
//! For matching, each word is then lightly stemmed ([`stem`]): a final `s` is dropped from words of
//! more than three letters that do not end in `ss`, so `hours` matches `hour` and `precios` matches
//! `precio`.

/// The normalised words of `text`, not stemmed.
pub fn words(text: &str) -> Vec<String> {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        let c = match u32::from(c) {
            code @ 0xFF01..=0xFF5E => char::from_u32(code - 0xFEE0).unwrap_or(' '),
            0x3000 => ' ',
            _ => c,
        };
        match c {
            '\u{0300}'..='\u{036F}' | '\u{200B}'..='\u{200D}' | '\u{FE00}'..='\u{FE0F}' => {}
            '\'' | '\u{2018}' | '\u{2019}' | '`' | '\u{00B4}' => {}
            c if c.is_alphanumeric() => {
                for lower in c.to_lowercase() {
                    folded.push(strip_accent(lower));
                }
            }
            _ => folded.push(' '),
        }
    }
    folded.split_whitespace().map(str::to_owned).collect()
}

/// The normalised, stemmed words of `text`.
pub fn terms(text: &str) -> Vec<String> {
    words(text).into_iter().map(stem).collect()
}

/// Drops a plural-looking final `s` (`hours` to `hour`, not `is`, `yes` or `address`).
pub fn stem(mut word: String) -> String {
    if word.chars().count() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word.pop();
    }
    word
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

#[cfg(test)]
mod tests {
    use super::{terms, words};

    #[test]
    fn folds_case_accents_width_and_punctuation() {
        assert_eq!(
            words("¿Cuál es su HORARIO?"),
            ["cual", "es", "su", "horario"]
        );
        assert_eq!(words("ＷＨＡＴ’s\u{3000}up!!"), ["whats", "up"]);
        assert_eq!(words("Si\u{0301}, mañana"), ["si", "manana"]);
        assert!(words(" ?! ").is_empty());
    }

    #[test]
    fn stems_plurals_lightly() {
        assert_eq!(
            terms("Hours prices is yes address horarios"),
            ["hour", "price", "is", "yes", "address", "horario"]
        );
    }
}
