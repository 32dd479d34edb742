//! Text normalisation: turns an inbound text into the tokens the rules and the entity extraction
//! match against.
//!
//! In order, for each character:
//!
//! - full-width ASCII (U+FF01..U+FF5E) becomes ASCII and the ideographic space (U+3000) a space;
//! - letters and digits are lower-cased and common Latin accents are stripped
//!   (`á é í ó ú ü ñ ç` and friends become `a e i o u u n c`); combining accents are dropped;
//! - apostrophes (`'`, `’`, `‘`, `` ` ``, `´`) are dropped, joining the word: `can't` is `cant`;
//! - `:` and `.` are kept only between two digits (`3:30`, `9.99`); elsewhere they separate;
//! - symbols and emoji (arrows, dingbats, U+1F000..U+1FAFF) are tokens of their own; skin-tone
//!   modifiers, variation selectors, zero-width joiners and keycap marks after them are dropped, so
//!   `👍🏽` and `👍️` are `👍`;
//! - everything else (punctuation, `¿`, `¡`, quotes, whitespace) separates tokens.
//!
//! Finally a run of three or more of the same letter is shortened to one, so `yesss`, `okkk` and
//! `nooo` are `yes`, `ok` and `no`.

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

#[cfg(test)]
mod tests {
    use super::{normalize, tokens};

    #[test]
    fn lowercases_and_separates_punctuation() {
        assert_eq!(normalize("  YES!!!  Please, now?? "), "yes please now");
        assert_eq!(normalize("¿Cuánto cuesta?"), "cuanto cuesta");
        assert_eq!(normalize("¡Sí!"), "si");
    }

    #[test]
    fn full_width_and_ideographic_space() {
        assert_eq!(normalize("ＹＥＳ"), "yes");
        assert_eq!(normalize("ｏｋ\u{3000}ｔｈａｎｋｓ！"), "ok thanks");
    }

    #[test]
    fn strips_accents_precomposed_and_combining() {
        assert_eq!(
            normalize("Sí, mañana, miércoles, sábado"),
            "si manana miercoles sabado"
        );
        assert_eq!(normalize("Si\u{0301}"), "si");
        assert_eq!(normalize("ÁÉÍÓÚÜÑ"), "aeiouun");
    }

    #[test]
    fn apostrophes_join_words() {
        assert_eq!(normalize("I can't, won’t"), "i cant wont");
    }

    #[test]
    fn times_and_amounts_keep_their_separators() {
        assert_eq!(normalize("3:30 pm or 15:00."), "3:30 pm or 15:00");
        assert_eq!(normalize("$9.99. ok: fine"), "9.99 ok fine");
        assert_eq!(normalize("3 p.m."), "3 p m");
    }

    #[test]
    fn emoji_are_tokens_without_modifiers() {
        assert_eq!(tokens("👍"), ["👍"]);
        assert_eq!(tokens("👍🏽"), ["👍"]);
        assert_eq!(tokens("👍\u{FE0F}"), ["👍"]);
        assert_eq!(tokens("ok👍yes"), ["ok", "👍", "yes"]);
        assert_eq!(tokens("✅✅"), ["✅", "✅"]);
    }

    #[test]
    fn collapses_elongated_letters() {
        assert_eq!(normalize("Yesss okkk nooo"), "yes ok no");
        assert_eq!(normalize("good 1000"), "good 1000");
    }

    #[test]
    fn empty_and_blank() {
        assert!(tokens("").is_empty());
        assert!(tokens(" ?! ... ").is_empty());
    }
}
