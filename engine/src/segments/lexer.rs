//! Turns query text into tokens, each tagged with its 1-based column in chars.

use super::QueryError;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written in a query.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether this is `=` or `!=`, the only operators unordered types accept.
    pub fn is_equality(self) -> bool {
        matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A bare word: keyword, attribute, function, field or program name.
    Ident(String),
    /// `.` between `fields` and a field name.
    Dot,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// A comparison operator.
    Op(CmpOp),
    /// A double-quoted string, escapes already resolved.
    Str(String),
    /// A number literal such as `42` or `-3.5`.
    Number(f64),
    /// A duration such as `30d`, in milliseconds.
    Duration(i64),
    /// The end of the query text.
    End,
}

/// One token with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What the token is.
    pub kind: Kind,
    /// 1-based column of its first char, counted in chars.
    pub col: usize,
    /// Byte range in the source, so errors can quote it as written.
    pub span: (usize, usize),
}

const MS_PER_MINUTE: i64 = 60_000;

/// Splits `src` into tokens ending with [`Kind::End`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, QueryError> {
    let mut lexer = Lexer {
        src,
        chars: src.char_indices().collect(),
        pos: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

/// Lexer state: the source as indexed chars (so columns are char counts).
struct Lexer<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn run(&mut self) -> Result<(), QueryError> {
        while let Some(c) = self.peek(0) {
            if c.is_whitespace() {
                self.pos += 1;
                continue;
            }
            let start = self.pos;
            let kind = self.token(c)?;
            self.push(kind, start);
        }
        self.push(Kind::End, self.pos);
        Ok(())
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).map(|&(_, c)| c)
    }

    fn byte_at(&self, pos: usize) -> usize {
        self.chars.get(pos).map_or(self.src.len(), |&(b, _)| b)
    }

    fn push(&mut self, kind: Kind, start: usize) {
        let span = (self.byte_at(start), self.byte_at(self.pos));
        self.tokens.push(Token {
            kind,
            col: start + 1,
            span,
        });
    }

    /// An error at char index `pos` (0-based), reported as a 1-based column.
    fn error(pos: usize, message: impl Into<String>) -> QueryError {
        QueryError::new(pos + 1, message)
    }

    /// Lexes the token starting with `c` at `self.pos`, leaving `pos` after it.
    fn token(&mut self, c: char) -> Result<Kind, QueryError> {
        match c {
            '(' | ')' | '.' => {
                self.pos += 1;
                Ok(match c {
                    '(' => Kind::LParen,
                    ')' => Kind::RParen,
                    _ => Kind::Dot,
                })
            }
            '=' | '!' | '<' | '>' => self.operator(c).map(Kind::Op),
            '"' => self.string().map(Kind::Str),
            '-' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number(),
            '0'..='9' => self.number(),
            c if c.is_ascii_alphabetic() || c == '_' => Ok(Kind::Ident(self.word())),
            _ => Err(self.unexpected(c)),
        }
    }

    /// A helpful error for a char that starts no token, naming the likely intent.
    fn unexpected(&self, c: char) -> QueryError {
        let hint = match (c, self.peek(1)) {
            ('&', _) => "; use `and`",
            ('|', _) => "; use `or`",
            ('\'', _) => "; strings use double quotes, like \"vip\"",
            (',', _) => "; functions take one argument",
            ('-', _) => "; a minus sign must be followed by digits, like -3.5",
            _ => "",
        };
        Self::error(self.pos, format!("unexpected character '{c}'{hint}"))
    }

    fn operator(&mut self, c: char) -> Result<CmpOp, QueryError> {
        let next_is_eq = self.peek(1) == Some('=');
        let op = match (c, next_is_eq) {
            ('=', true) => return Err(Self::error(self.pos, "`==` is not an operator; use `=`")),
            ('=', false) => CmpOp::Eq,
            ('!', true) => CmpOp::Ne,
            ('!', false) => {
                return Err(Self::error(
                    self.pos,
                    "unexpected `!`; use `!=`, or `not` to negate",
                ));
            }
            ('<', true) => CmpOp::Le,
            ('<', false) => CmpOp::Lt,
            ('>', true) => CmpOp::Ge,
            _ => CmpOp::Gt,
        };
        self.pos += if next_is_eq { 2 } else { 1 };
        Ok(op)
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .peek(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        self.src[self.byte_at(start)..self.byte_at(self.pos)].to_owned()
    }

    /// A double-quoted string; only `\"` and `\\` escapes exist, so a stray
    /// backslash is reported rather than guessed at.
    fn string(&mut self) -> Result<String, QueryError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek(0) {
                None => {
                    return Err(Self::error(open, "unclosed string; add a closing `\"`"));
                }
                Some('"') => break,
                Some('\\') => out.push(self.escape()?),
                Some(c) => out.push(c),
            }
            self.pos += 1;
        }
        self.pos += 1;
        Ok(out)
    }

    /// Resolves the escape at `self.pos` (a backslash), leaving `pos` on its last char.
    fn escape(&mut self) -> Result<char, QueryError> {
        match self.peek(1) {
            Some(c @ ('"' | '\\')) => {
                self.pos += 1;
                Ok(c)
            }
            Some(c) => Err(Self::error(
                self.pos,
                format!("unknown escape `\\{c}` in string; only `\\\"` and `\\\\` are allowed"),
            )),
            None => Err(Self::error(self.pos, "unclosed string; add a closing `\"`")),
        }
    }

    fn digits(&mut self) {
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// A number (`42`, `-3.5`) or, when letters follow at once, a duration (`30d`).
    fn number(&mut self) -> Result<Kind, QueryError> {
        let start = self.pos;
        if self.peek(0) == Some('-') {
            self.pos += 1;
        }
        self.digits();
        let is_fraction =
            self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit());
        if is_fraction {
            self.pos += 1;
            self.digits();
        }
        let literal = &self.src[self.byte_at(start)..self.byte_at(self.pos)];
        if self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
            return self.duration(start, literal);
        }
        match literal.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Kind::Number(n)),
            _ => Err(Self::error(start, format!("number {literal} is too large"))),
        }
    }

    /// The unit after the digits `amount` (which start at char `start`).
    fn duration(&mut self, start: usize, amount: &str) -> Result<Kind, QueryError> {
        let amount = amount.to_owned();
        let unit_pos = self.pos;
        let unit = self.word();
        let written = format!("{amount}{unit}");
        let minutes = match unit.as_str() {
            "m" => 1,
            "h" => 60,
            "d" => 24 * 60,
            "w" => 7 * 24 * 60,
            _ => {
                return Err(Self::error(
                    unit_pos,
                    format!(
                        "bad duration unit `{unit}` in {written}; use d (days), h (hours), \
                         m (minutes) or w (weeks), like 30d"
                    ),
                ));
            }
        };
        if amount.starts_with('-') {
            return Err(Self::error(
                start,
                format!("duration {written} cannot be negative"),
            ));
        }
        if amount.contains('.') {
            return Err(Self::error(
                start,
                format!("duration {written} must be a whole number; use a smaller unit, like 36h"),
            ));
        }
        amount
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(minutes * MS_PER_MINUTE))
            .map(Kind::Duration)
            .ok_or_else(|| Self::error(start, format!("duration {written} is too large")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        tokenize(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn err(src: &str) -> String {
        tokenize(src).unwrap_err().to_string()
    }

    #[test]
    fn tokens_of_a_full_query() {
        use Kind::*;
        assert_eq!(
            kinds(r#"tag="v\"i\\p" and fields.age>=-3.5 or (last_inbound < 30d)"#),
            vec![
                Ident("tag".into()),
                Op(CmpOp::Eq),
                Str("v\"i\\p".into()),
                Ident("and".into()),
                Ident("fields".into()),
                Dot,
                Ident("age".into()),
                Op(CmpOp::Ge),
                Number(-3.5),
                Ident("or".into()),
                LParen,
                Ident("last_inbound".into()),
                Op(CmpOp::Lt),
                Duration(30 * 86_400_000),
                RParen,
                End,
            ]
        );
    }

    #[test]
    fn every_operator() {
        let ops: Vec<Kind> = kinds("= != < <= > >=");
        let expected = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ];
        for (kind, op) in ops.iter().zip(expected) {
            assert_eq!(kind, &Kind::Op(op));
        }
    }

    #[test]
    fn duration_units() {
        assert_eq!(kinds("45m")[0], Kind::Duration(45 * 60_000));
        assert_eq!(kinds("12h")[0], Kind::Duration(12 * 3_600_000));
        assert_eq!(kinds("2w")[0], Kind::Duration(14 * 86_400_000));
    }

    #[test]
    fn columns_count_chars_not_bytes() {
        let tokens = tokenize("\"héé\" x").unwrap();
        assert_eq!(tokens[1].col, 7);
        assert_eq!(tokens[1].span, (8, 9));
        assert_eq!(tokens[2].col, 8);
    }

    #[test]
    fn lexical_errors() {
        assert_eq!(
            err("tag = \"vip"),
            "column 7: unclosed string; add a closing `\"`"
        );
        assert_eq!(
            err("x < 30y"),
            "column 7: bad duration unit `y` in 30y; use d (days), h (hours), m (minutes) or \
             w (weeks), like 30d"
        );
        assert_eq!(
            err("x < 30D").split(';').next(),
            Some("column 7: bad duration unit `D` in 30D")
        );
        assert_eq!(
            err("x < 1.5d"),
            "column 5: duration 1.5d must be a whole number; use a smaller unit, like 36h"
        );
        assert_eq!(err("x < -2d"), "column 5: duration -2d cannot be negative");
        assert_eq!(
            err("x < 99999999999999999w"),
            "column 5: duration 99999999999999999w is too large"
        );
        assert_eq!(err("a == 1"), "column 3: `==` is not an operator; use `=`");
        assert_eq!(
            err("!a"),
            "column 1: unexpected `!`; use `!=`, or `not` to negate"
        );
        assert_eq!(
            err("a && b"),
            "column 3: unexpected character '&'; use `and`"
        );
        assert_eq!(err("é # b"), "column 1: unexpected character 'é'");
        assert_eq!(err("\"é\" # b"), "column 5: unexpected character '#'");
        assert_eq!(
            err(r#""a\nb""#),
            "column 3: unknown escape `\\n` in string; only `\\\"` and `\\\\` are allowed"
        );
        assert_eq!(
            err("\"ab\\"),
            "column 4: unclosed string; add a closing `\"`"
        );
    }
}
