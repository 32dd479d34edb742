//! The contacts CSV importer's reader: header checks, rows, numbers, tags, line numbers.
//!
//! Input: a CSV file. It is read as one slice, in small chunks (as a request body arrives),
//! and with tight limits.

use std::io::Read;

use smsflow::contacts::csv::{ContactRows, DEFAULT_MAX_LINE_BYTES, ImportOptions, Row, RowError};
use smsflow::contacts::number::{self, Country};
use smsflow::phone::parse_e164;

/// What one read of a file gave: the header's error, or the columns and every item.
type Outcome = Result<(Vec<String>, Vec<Result<Row, RowError>>), String>;

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Some(us) = number::country("US") else {
        panic!("the US is a known country");
    };
    let whole = read(data, ImportOptions::new(us));
    check(&whole);
    if data.len() < DEFAULT_MAX_LINE_BYTES {
        // Below the limit, how the bytes arrive changes nothing.
        let chunk = data.len() % 7 + 1;
        let chunked = read(Chunks { data, chunk }, ImportOptions::new(us));
        assert_eq!(chunked, whole, "read in chunks of {chunk} bytes");
    }
    let tight = ImportOptions {
        max_line_bytes: 48,
        max_columns: 4,
        ..ImportOptions::new(country("GB"))
    };
    check(&read(data, tight));
}

fn country(iso2: &str) -> &'static Country {
    match number::country(iso2) {
        Some(country) => country,
        None => panic!("{iso2} is a known country"),
    }
}

/// Reads the whole file (the input is small: a few thousand rows at most).
fn read(input: impl Read, options: ImportOptions) -> Outcome {
    let rows = ContactRows::new(input, options).map_err(|error| error.to_string())?;
    let columns = rows.columns().to_vec();
    Ok((columns, rows.collect()))
}

/// Rows start on increasing lines after the header, hold an E.164 number, trimmed non-empty
/// values, and tags lower-cased once each.
fn check(outcome: &Outcome) {
    let Ok((columns, items)) = outcome else {
        return;
    };
    let mut last_line = 1;
    for item in items {
        let line = match item {
            Ok(row) => {
                check_row(columns, row);
                row.line
            }
            Err(error) => error.line,
        };
        assert!(line > last_line, "line {line} after line {last_line}");
        last_line = line;
    }
}

fn check_row(columns: &[String], row: &Row) {
    assert!(parse_e164(&row.phone).is_ok(), "{row:?}");
    for (name, value) in &row.fields {
        assert!(columns.contains(name), "{row:?}");
        assert!(!value.is_empty() && value.trim() == value, "{row:?}");
    }
    for (index, tag) in row.tags.iter().enumerate() {
        assert!(
            !tag.is_empty() && tag.trim() == tag && !tag.contains(';'),
            "{row:?}"
        );
        assert_eq!(&tag.to_lowercase(), tag, "{row:?}");
        assert!(!row.tags[..index].contains(tag), "{row:?}");
    }
    for value in [&row.locale, &row.time_zone].into_iter().flatten() {
        assert!(!value.is_empty() && value.trim() == value, "{row:?}");
    }
}

/// A reader that hands out at most `chunk` bytes at a time.
struct Chunks<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        let (now, rest) = self.data.split_at(n);
        buf[..n].copy_from_slice(now);
        self.data = rest;
        Ok(n)
    }
}
