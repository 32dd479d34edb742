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

/// A normalised text: its tokens joined by single spaces, and where each one is.
///
/// Built in one pass over the characters, into one string: no string per token. The rules
/// compare a phrase against the joined text directly (phrases are written with single spaces).
#[derive(Debug, Default)]
pub struct Tokens {
    text: String,
    /// Byte range of each token in `text`.
    spans: Vec<(usize, usize)>,
}

impl Tokens {
    /// The normalised tokens of `text`.
    pub fn new(text: &str) -> Self {
        let mut builder = Builder {
            out: Tokens {
                text: String::with_capacity(text.len()),
                spans: Vec::new(),
            },
            ..Builder::default()
        };
        for c in text.chars() {
            fold_char(c, &mut builder);
        }
        builder.separate();
        builder.out
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `i`-th token.
    pub fn get(&self, i: usize) -> &str {
        let Some(&(start, end)) = self.spans.get(i) else {
            return "";
        };
        self.text.get(start..end).unwrap_or_default()
    }

    /// Every token, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Whether the tokens from the `i`-th on start with `phrase`'s words (single spaces).
    pub fn starts_with_at(&self, i: usize, phrase: &str) -> bool {
        let Some(&(start, _)) = self.spans.get(i) else {
            return false;
        };
        let rest = self.text.as_bytes().get(start..).unwrap_or_default();
        rest.starts_with(phrase.as_bytes())
            && rest.get(phrase.len()).is_none_or(|&next| next == b' ')
    }

    /// The tokens joined by single spaces.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The normalised tokens of `text`.
pub fn tokens(text: &str) -> Vec<String> {
    Tokens::new(text).iter().map(str::to_owned).collect()
}

/// The normalised tokens of `text`, joined by single spaces.
pub fn normalize(text: &str) -> String {
    Tokens::new(text).text
}

/// What an ASCII character becomes, laid out at build time: the character the tokens see
/// (lower case for a letter), or [`SEPARATES`], or [`DROPPED`]. Most texts are all ASCII, and
/// one load here replaces the range tests below.
static ASCII: [u8; 128] = {
    let mut table = [SEPARATES; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        table[b] = match c {
            b'a'..=b'z' | b'0'..=b'9' | b':' | b'.' => c,
            b'A'..=b'Z' => c.to_ascii_lowercase(),
            b'\'' | b'`' => DROPPED,
            _ => SEPARATES,
        };
        b += 1;
    }
    table
};
/// In [`ASCII`]: the character separates tokens.
const SEPARATES: u8 = 0;
/// In [`ASCII`]: the character is dropped, joining the word (an apostrophe).
const DROPPED: u8 = 1;

/// Folds one character of the input into what the tokens see: nothing, a separator, or one or
/// more characters.
fn fold_char(c: char, out: &mut Builder) {
    if let Some(&folded) = ASCII.get(c as usize) {
        match folded {
            SEPARATES => out.separate(),
            DROPPED => {}
            folded => out.push(char::from(folded)),
        }
        return;
    }
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
            out.separate();
            out.push(c);
            out.separate();
        }
        _ => out.separate(),
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

/// Cuts the folded characters into tokens as they come.
///
/// Between separators, `:` and `.` split a token unless they stand between two digits; the
/// character after them decides, so one of them waits in `pending`. A run of three or more of
/// the same letter is shortened to one letter.
#[derive(Default)]
struct Builder {
    out: Tokens,
    /// Where the token being built starts in `out.text`, if one is.
    start: Option<usize>,
    /// The character before, since the last separator.
    previous: Option<char>,
    /// A `:` or `.` that stays only if a digit follows, and whether a digit came before it.
    pending: Option<(char, bool)>,
    /// The last character pushed into the token, and how many times in a row.
    last: Option<char>,
    run: usize,
}

impl Builder {
    fn push(&mut self, c: char) {
        if let Some((mark, after_digit)) = self.pending.take() {
            if after_digit && c.is_ascii_digit() && self.start.is_some() {
                self.push_to_token(mark);
            } else {
                self.end_token();
            }
        }
        if c == ':' || c == '.' {
            let after_digit = self.previous.is_some_and(|p| p.is_ascii_digit());
            self.pending = Some((c, after_digit));
        } else {
            self.push_to_token(c);
        }
        self.previous = Some(c);
    }

    /// Whitespace, punctuation or the end of the text: a `:` or `.` waiting is dropped.
    fn separate(&mut self) {
        self.pending = None;
        self.end_token();
        self.previous = None;
    }

    fn push_to_token(&mut self, c: char) {
        if self.last == Some(c) {
            self.run += 1;
        } else {
            self.last = Some(c);
            self.run = 1;
        }
        if self.run >= 3 && c.is_alphabetic() {
            // The third of a run takes back the second; later ones are dropped.
            if self.run == 3 {
                self.out.text.pop();
            }
            return;
        }
        if self.start.is_none() {
            if !self.out.text.is_empty() {
                self.out.text.push(' ');
            }
            self.start = Some(self.out.text.len());
        }
        self.out.text.push(c);
    }

    fn end_token(&mut self) {
        if let Some(start) = self.start.take() {
            self.out.spans.push((start, self.out.text.len()));
        }
        self.last = None;
        self.run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::{Tokens, normalize, tokens};

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
    fn phrases_match_whole_tokens_from_a_token_on() {
        let tokens = Tokens::new("Please, cancel it!  cancelled");
        assert_eq!(tokens.as_str(), "please cancel it cancelled");
        assert_eq!(
            tokens.iter().collect::<Vec<_>>(),
            ["please", "cancel", "it", "cancelled"]
        );
        assert!(tokens.starts_with_at(1, "cancel it"));
        assert!(tokens.starts_with_at(0, "please cancel"));
        assert!(!tokens.starts_with_at(1, "cancel i"));
        assert!(!tokens.starts_with_at(3, "cancel"));
        assert!(tokens.starts_with_at(3, "cancelled"));
        assert!(!tokens.starts_with_at(4, "cancelled"));
        assert_eq!(tokens.get(9), "");
    }

    #[test]
    fn empty_and_blank() {
        assert!(tokens("").is_empty());
        assert!(tokens(" ?! ... ").is_empty());
    }
}
