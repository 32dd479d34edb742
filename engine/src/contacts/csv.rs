//! Contacts from CSV: a streaming reader of contact rows, and a writer for export.
//!
//! [`ContactRows`] reads one record at a time into a reused buffer, so a file of any size is
//! read in constant memory. Problems with the whole file (the header) are an
//! [`ImportError`] from [`ContactRows::new`]; problems with one row are a [`RowError`] for
//! that row, and reading goes on with the next.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

// `super`, not `crate`: the same path works here and as `contacts::csv` beside
// `contacts::number` in the engine.
use super::number::{self, Country};

/// The longest record read by default, in bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// The most header columns accepted by default.
pub const DEFAULT_MAX_COLUMNS: usize = 200;

/// The csv reader's buffer: also how far past `max_line_bytes` a record's memory can grow.
const BUFFER_BYTES: usize = 8 * 1024;

/// The longest field name, as the engine stores fields.
const MAX_FIELD_NAME: usize = 64;

/// How a CSV import reads its file.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// The country of numbers written without a `+` or international prefix.
    pub default_country: &'static Country,
    /// The longest record, in bytes; a longer one is a [`RowError`], which bounds memory.
    pub max_line_bytes: usize,
    /// The most columns the header may have.
    pub max_columns: usize,
}

impl ImportOptions {
    /// Options with the default limits and this default country.
    pub fn new(default_country: &'static Country) -> Self {
        Self {
            default_country,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_columns: DEFAULT_MAX_COLUMNS,
        }
    }
}

/// One contact row, parsed: `phone` normalised, `tags` split on ';' (trimmed, empty dropped,
/// lower-cased), `locale` and `time_zone` columns taken out if present, consent evidence
/// columns (`consent_source`, `consent_at`, `consent_disclosure`, `consent_program`) taken out
/// if present, every other non-empty column a field (header name trimmed; values trimmed;
/// empty cells left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The 1-based physical line where the record starts (the header is line 1).
    pub line: u64,
    /// The phone number in E.164.
    pub phone: String,
    /// The other non-empty cells, as (header name, value), in column order.
    pub fields: Vec<(String, String)>,
    /// The tags, lower-cased, each once, in the order written.
    pub tags: Vec<String>,
    /// The `locale` cell, if not empty.
    pub locale: Option<String>,
    /// The `time_zone` cell, if not empty.
    pub time_zone: Option<String>,
    /// The consent evidence, if any consent cell of the row is not empty.
    pub consent: Option<ConsentColumns>,
}

/// The consent evidence of a row, as written in the file; the engine checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentColumns {
    /// The `consent_source` cell: where consent was given.
    pub source: Option<String>,
    /// The `consent_at` cell: when consent was given.
    pub at: Option<String>,
    /// The `consent_disclosure` cell: what the person was shown.
    pub disclosure: Option<String>,
    /// The `consent_program` cell: which program the consent is for.
    pub program: Option<String>,
}

/// A row that could not be read; the message says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct RowError {
    /// The 1-based physical line where the record starts.
    pub line: u64,
    /// What is wrong, and how to fix it.
    pub error: String,
}

/// A problem with the whole file: nothing of it can be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file has no line at all.
    #[error(
        "the file is empty; its first line must name the columns, such as `phone,first_name,tags`"
    )]
    NoHeader,
    /// No column is named `phone`.
    #[error("{}", no_phone_message(.found, .suggestion.as_deref()))]
    NoPhoneColumn {
        /// The column names found in the header.
        found: Vec<String>,
        /// The found column that most likely holds the numbers.
        suggestion: Option<String>,
    },
    /// Two columns have the same name.
    #[error(
        "the header names `{name}` twice (columns {first} and {second}); rename or delete one of \
         them"
    )]
    DuplicateColumn {
        /// The name.
        name: String,
        /// The 1-based column where it first appears.
        first: usize,
        /// The 1-based column where it appears again.
        second: usize,
    },
    /// A header cell is not UTF-8.
    #[error(
        "column {column} of the header is not valid UTF-8; save the file as UTF-8 (in Excel: \
         Save As, then `CSV UTF-8`) and import it again"
    )]
    HeaderNotUtf8 {
        /// The 1-based column.
        column: usize,
    },
    /// A header name that cannot be a field name.
    #[error(
        "column {column} is named `{name}`, which cannot be a field name: use letters, digits \
         and `_`, not starting with a digit, at most 64 characters, such as `{suggestion}`"
    )]
    InvalidColumnName {
        /// The 1-based column.
        column: usize,
        /// The name as written.
        name: String,
        /// A valid name close to it.
        suggestion: String,
    },
    /// A `consent_` column that is not one of the four consent columns: likely a typo.
    #[error(
        "column {column} is named `{name}`, but the consent columns are `consent_source`, \
         `consent_at`, `consent_disclosure` and `consent_program`; rename it to one of them, or \
         drop the `consent_` prefix to keep it as a field"
    )]
    UnknownConsentColumn {
        /// The 1-based column.
        column: usize,
        /// The name as written.
        name: String,
    },
    /// More header columns than [`ImportOptions::max_columns`].
    #[error(
        "the header has {found} columns, more than the {max} allowed; delete the columns that \
         are not needed"
    )]
    TooManyColumns {
        /// How many columns the header has.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// The header is longer than [`ImportOptions::max_line_bytes`].
    #[error(
        "the header is longer than {max} bytes; delete the columns that are not needed, or look \
         for a quote `\"` left open in the first line"
    )]
    HeaderTooLong {
        /// The limit.
        max: usize,
    },
    /// Reading the file failed.
    #[error("reading the file failed: {0}; check that the file can be read and try again")]
    Io(#[from] io::Error),
}

/// The message of [`ImportError::NoPhoneColumn`].
fn no_phone_message(found: &[String], suggestion: Option<&str>) -> String {
    const SHOWN: usize = 20;
    let named: Vec<String> = found
        .iter()
        .filter(|name| !name.is_empty())
        .map(|name| format!("`{name}`"))
        .collect();
    let listed = match named.len() {
        0 => "its columns have no names".to_owned(),
        n if n > SHOWN => format!(
            "it has {} and {} more",
            named[..SHOWN].join(", "),
            n - SHOWN
        ),
        _ => format!("it has {}", named.join(", ")),
    };
    let fix = match suggestion {
        Some(name) => format!("did you mean `{name}`? Rename it to `phone`"),
        None => "name the column that holds the numbers `phone`".to_owned(),
    };
    format!("the header has no `phone` column ({listed}); {fix}")
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Phone,
    Tags,
    Locale,
    TimeZone,
    ConsentSource,
    ConsentAt,
    ConsentDisclosure,
    ConsentProgram,
    Field,
    /// A column whose header cell is empty: its cells must be empty too.
    Unnamed,
}

/// The kind of a reserved column name, given lower-cased.
fn reserved(name: &str) -> Option<Kind> {
    Some(match name {
        "phone" => Kind::Phone,
        "tags" => Kind::Tags,
        "locale" => Kind::Locale,
        "time_zone" => Kind::TimeZone,
        "consent_source" => Kind::ConsentSource,
        "consent_at" => Kind::ConsentAt,
        "consent_disclosure" => Kind::ConsentDisclosure,
        "consent_program" => Kind::ConsentProgram,
        _ => return None,
    })
}

/// A streaming reader of contact rows: one [`Row`] or [`RowError`] per non-blank record.
pub struct ContactRows<R: Read> {
    csv: csv::Reader<Source<R>>,
    /// Reused for every record, so memory stays what the longest record needs.
    record: csv::ByteRecord,
    columns: Vec<String>,
    kinds: Vec<Kind>,
    options: ImportOptions,
    finished: bool,
    truncated: bool,
}

impl<R: Read> ContactRows<R> {
    /// Reads and checks the header; the rows are read as the iterator is advanced.
    pub fn new(reader: R, options: ImportOptions) -> Result<Self, ImportError> {
        let limit = options.max_line_bytes as u64;
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            // Short and long rows are checked here, with messages that say how to fix them.
            .flexible(true)
            // `\n` alone ends a record, so the csv reader's line count is always one past a
            // record's last line; the `\r` of CRLF is trimmed with the rest of the whitespace.
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(Source::new(reader, limit));
        let mut rows = Self {
            csv,
            record: csv::ByteRecord::new(),
            columns: Vec::new(),
            kinds: Vec::new(),
            options,
            finished: false,
            truncated: false,
        };
        rows.read_header()?;
        Ok(rows)
    }

    /// The header's column names: reserved names lower-cased, others trimmed as written,
    /// unnamed columns empty.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Whether reading stopped before the end of the input (an I/O error, or a record too long
    /// to find its end); the last item was the [`RowError`] that says why.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Reads the first non-blank record and makes it the header.
    fn read_header(&mut self) -> Result<(), ImportError> {
        loop {
            let start = self.csv.position().byte();
            self.csv.get_mut().begin_record(start);
            match self.csv.read_byte_record(&mut self.record) {
                Ok(true) if self.is_blank() => continue,
                Ok(true) => break,
                Ok(false) => return Err(ImportError::NoHeader),
                Err(_) if self.csv.get_ref().tripped => {
                    let max = self.options.max_line_bytes;
                    return Err(ImportError::HeaderTooLong { max });
                }
                Err(error) => return Err(ImportError::Io(error.into())),
            }
        }
        if self.record.len() > self.options.max_columns {
            let (found, max) = (self.record.len(), self.options.max_columns);
            return Err(ImportError::TooManyColumns { found, max });
        }
        let (columns, kinds) = parse_header(&self.record)?;
        (self.columns, self.kinds) = (columns, kinds);
        Ok(())
    }

    /// Reads the next record into `self.record`, returning the line it starts on, or `None`
    /// at the end of the input.
    fn read_record(&mut self) -> Result<Option<u64>, RowError> {
        let start = self.csv.position().clone();
        self.csv.get_mut().begin_record(start.byte());
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                // Never before where reading began: a quote left open to the end of the file
                // takes its last newline into the record (found by fuzzing).
                let line = self.record_line().max(start.line());
                let bytes = self.csv.position().byte() - start.byte();
                if bytes > self.options.max_line_bytes as u64 {
                    return Err(RowError {
                        line,
                        error: self.too_long_message(),
                    });
                }
                Ok(Some(line))
            }
            Err(error) => Err(self.read_failure(&error, start.line())),
        }
    }

    /// The line where the record just read starts: the csv reader counts every `\n` it has
    /// consumed, and a record ends just after its terminating `\n` (the input always ends
    /// with one, see [`Source`]), so subtract the newlines inside the record's quoted values.
    /// A quote left open to the end of the file took that last `\n` into its value: then
    /// there is no terminator to subtract (found by the `contacts_csv` fuzz target).
    fn record_line(&self) -> u64 {
        let bytes = self.record.as_slice();
        // `contains` runs std's optimised memchr, and most records hold no newline: counting
        // byte by byte every time is slow in the debug builds that tests run.
        let inside = if bytes.contains(&b'\n') {
            bytes.iter().filter(|&&b| b == b'\n').count()
        } else {
            0
        };
        let terminator = u64::from(!self.csv.get_ref().told_end);
        let after = self.csv.position().line();
        after.saturating_sub(inside as u64 + terminator).max(1)
    }

    /// The error for a record that could not be read; an I/O failure ends the import.
    fn read_failure(&mut self, error: &csv::Error, line: u64) -> RowError {
        let error = if self.csv.get_ref().tripped {
            format!(
                "{}; the rest of the file was not read",
                self.too_long_message()
            )
        } else if let csv::ErrorKind::Io(io) = error.kind() {
            format!("reading the file failed: {io}; the rest of the file was not read")
        } else {
            // Recoverable: the csv reader goes on with the next record.
            return RowError {
                line,
                error: format!("this row is not valid CSV: {error}"),
            };
        };
        self.finished = true;
        self.truncated = true;
        RowError { line, error }
    }

    /// Why a record is too long, and the usual cause.
    fn too_long_message(&self) -> String {
        format!(
            "this row is longer than {} bytes; shorten its values, or look for a quote `\"` \
             opened here and never closed, which runs the lines after it into this row",
            self.options.max_line_bytes
        )
    }

    /// Whether every cell of the record is empty or whitespace, as in a blank line or a
    /// spreadsheet's `,,,` for an empty row.
    fn is_blank(&self) -> bool {
        self.record.iter().all(|cell| cell.trim_ascii().is_empty())
    }

    /// Parses the record just read into a row.
    fn parse_row(&self, line: u64) -> Result<Row, String> {
        self.check_width()?;
        let mut row = Row {
            line,
            phone: String::new(),
            fields: Vec::new(),
            tags: Vec::new(),
            locale: None,
            time_zone: None,
            consent: None,
        };
        let mut phone = "";
        for (column, bytes) in self.record.iter().enumerate().take(self.columns.len()) {
            let value = self.cell(column, bytes)?;
            if value.is_empty() {
                continue;
            }
            match self.kinds[column] {
                Kind::Phone => phone = value,
                Kind::Unnamed => return Err(unnamed_value(column, value)),
                kind => self.put(&mut row, column, kind, value),
            }
        }
        row.phone = number::normalize(phone, self.options.default_country)
            .map_err(|error| error.to_string())?;
        Ok(row)
    }

    /// Refuses a record with more cells than the header has columns, unless the extra ones
    /// are empty (spreadsheets pad rows with trailing commas).
    fn check_width(&self) -> Result<(), String> {
        let (cells, columns) = (self.record.len(), self.columns.len());
        let extra_blank = self
            .record
            .iter()
            .skip(columns)
            .all(|cell| cell.trim_ascii().is_empty());
        if extra_blank {
            return Ok(());
        }
        Err(format!(
            "{cells} cells, the header has {columns} columns; quote a value that contains a comma"
        ))
    }

    /// The trimmed text of a cell.
    fn cell<'a>(&self, column: usize, bytes: &'a [u8]) -> Result<&'a str, String> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.trim()),
            Err(error) => Err(format!(
                "{} is not valid UTF-8 (at byte {} of the cell); save the file as UTF-8 (in \
                 Excel: Save As, then `CSV UTF-8`) and import it again",
                self.column_label(column),
                error.valid_up_to() + 1
            )),
        }
    }

    /// How messages name a column.
    fn column_label(&self, column: usize) -> String {
        match self.columns[column].as_str() {
            "" => format!("column {}", column + 1),
            name => format!("column `{name}`"),
        }
    }

    /// Stores a non-empty value of a column other than `phone`.
    fn put(&self, row: &mut Row, column: usize, kind: Kind, value: &str) {
        let slot = match kind {
            Kind::Tags => return add_tags(&mut row.tags, value),
            Kind::Locale => &mut row.locale,
            Kind::TimeZone => &mut row.time_zone,
            Kind::ConsentSource => &mut consent(row).source,
            Kind::ConsentAt => &mut consent(row).at,
            Kind::ConsentDisclosure => &mut consent(row).disclosure,
            Kind::ConsentProgram => &mut consent(row).program,
            Kind::Field | Kind::Phone | Kind::Unnamed => {
                let name = self.columns[column].clone();
                return row.fields.push((name, value.to_owned()));
            }
        };
        *slot = Some(value.to_owned());
    }
}

impl<R: Read> Iterator for ContactRows<R> {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            match self.read_record() {
                Ok(None) => self.finished = true,
                Ok(Some(_)) if self.is_blank() => continue,
                Ok(Some(line)) => {
                    return Some(
                        self.parse_row(line)
                            .map_err(|error| RowError { line, error }),
                    );
                }
                Err(error) => return Some(Err(error)),
            }
        }
        None
    }
}

/// The consent evidence of a row, created at its first non-empty consent cell.
fn consent(row: &mut Row) -> &mut ConsentColumns {
    row.consent.get_or_insert_with(ConsentColumns::default)
}

/// Adds the tags of a `tags` cell: `;`-separated, trimmed, lower-cased, each once.
fn add_tags(tags: &mut Vec<String>, cell: &str) {
    for tag in cell.split(';').map(str::trim).filter(|tag| !tag.is_empty()) {
        let tag = tag.to_lowercase();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
}

/// The error for a value in a column without a header name.
fn unnamed_value(column: usize, value: &str) -> String {
    format!(
        "column {} has no name in the header, but this row has `{}` in it; name the column in the \
         header, or delete the value",
        column + 1,
        crate::input::shorten(value)
    )
}

/// Checks the header record, returning the column names and what each holds.
fn parse_header(record: &csv::ByteRecord) -> Result<(Vec<String>, Vec<Kind>), ImportError> {
    let names = header_names(record)?;
    // A missing `phone` column first: a column such as `Mobile Number` is then named as the
    // one to rename to `phone`, not as an invalid field name.
    if !names.iter().any(|name| name.eq_ignore_ascii_case("phone")) {
        let suggestion = suggest_phone_column(&names);
        return Err(ImportError::NoPhoneColumn {
            found: names,
            suggestion,
        });
    }
    let mut columns = Vec::with_capacity(names.len());
    let mut kinds = Vec::with_capacity(names.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, name) in names.iter().enumerate() {
        let column = index + 1;
        let (name, kind) = column_name(column, name)?;
        if !name.is_empty()
            && let Some(first) = seen.insert(name.clone(), column)
        {
            return Err(ImportError::DuplicateColumn {
                name,
                first,
                second: column,
            });
        }
        columns.push(name);
        kinds.push(kind);
    }
    Ok((columns, kinds))
}

/// The header cells as text, trimmed.
fn header_names(record: &csv::ByteRecord) -> Result<Vec<String>, ImportError> {
    let mut names = Vec::with_capacity(record.len());
    for (index, bytes) in record.iter().enumerate() {
        let column = index + 1;
        let text = std::str::from_utf8(bytes).map_err(|_| ImportError::HeaderNotUtf8 { column })?;
        // csv strips a BOM only when it arrives whole in the first read, so strip it here too.
        let text = match index {
            0 => text.trim_start_matches('\u{FEFF}'),
            _ => text,
        };
        names.push(text.trim().to_owned());
    }
    Ok(names)
}

/// The name a header cell gives its column, and what the column holds.
fn column_name(column: usize, name: &str) -> Result<(String, Kind), ImportError> {
    if name.is_empty() {
        return Ok((String::new(), Kind::Unnamed));
    }
    let lower = name.to_lowercase();
    if let Some(kind) = reserved(&lower) {
        return Ok((lower, kind));
    }
    if lower.starts_with("consent_") {
        return Err(ImportError::UnknownConsentColumn {
            column,
            name: name.to_owned(),
        });
    }
    if !is_field_name(name) {
        let suggestion = field_name_like(name);
        return Err(ImportError::InvalidColumnName {
            column,
            name: name.to_owned(),
            suggestion,
        });
    }
    Ok((name.to_owned(), Kind::Field))
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters: a name templates can refer to.
fn is_field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok
        && name.len() <= MAX_FIELD_NAME
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A valid field name close to `name`: `First Name` gives `First_Name`.
fn field_name_like(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_owned();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "field_");
    }
    out.truncate(MAX_FIELD_NAME);
    out
}

/// The column most likely meant to be `phone`: a usual other name for it, or a near typo.
fn suggest_phone_column(columns: &[String]) -> Option<String> {
    const SYNONYMS: [&str; 14] = [
        "phone_number",
        "phonenumber",
        "phone number",
        "phone_no",
        "mobile",
        "mobile_number",
        "mobile number",
        "cell",
        "cell_phone",
        "cellphone",
        "telephone",
        "tel",
        "msisdn",
        "number",
    ];
    columns
        .iter()
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let score = if SYNONYMS.contains(&lower.as_str()) {
                0
            } else {
                edit_distance(&lower, "phone")
            };
            (score <= 2).then_some((score, name))
        })
        .min_by_key(|(score, _)| *score)
        .map(|(_, name)| name.clone())
}

/// The Levenshtein distance between two short strings, counting a swap of neighbours as one
/// edit (so `phnoe` is 1 away from `phone`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: the distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = rows[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(rows[i - 1][j] + 1).min(rows[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The input as the csv reader sees it: it always ends with `\n`, so that every record ends
/// with one, and it refuses to read on once the current record is longer than the limit, so
/// that an unclosed quote cannot pull a whole file into memory.
struct Source<R> {
    inner: R,
    /// Bytes handed to the csv reader so far.
    produced: u64,
    /// The byte offset where the record being read starts.
    record_start: u64,
    limit: u64,
    last: u8,
    ended: bool,
    /// Whether a read was refused for the limit: the csv reader then stops for good.
    tripped: bool,
    /// Whether the csv reader was told the input ended. It asks for more only inside a record
    /// it has not finished, so a record it returns after that was ended by the end of the
    /// input (in an unclosed quote), not by a `\n`.
    told_end: bool,
    /// Whether the input's first bytes were read (and a byte-order mark dropped).
    started: bool,
    /// The first bytes, read ahead to look for the mark, not yet handed out.
    pending: Vec<u8>,
}

/// The UTF-8 byte-order mark Excel writes at the start of a `CSV UTF-8` file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<R: Read> Source<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            produced: 0,
            record_start: 0,
            limit,
            last: b'\n',
            ended: false,
            tripped: false,
            told_end: false,
            started: false,
            pending: Vec::new(),
        }
    }

    /// Marks where the next record starts (the csv reader's byte position).
    fn begin_record(&mut self, start: u64) {
        self.record_start = start;
    }

    /// Reads from the inner reader, retrying an interrupted read, which the csv reader would
    /// otherwise take as the end of the file. A byte-order mark at the start is dropped here:
    /// the csv reader drops one only when it arrives whole in its first read, and takes a first
    /// read that held nothing else for an empty file (found by the `contacts_csv` fuzz target).
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            self.pending = self.first_bytes()?;
        }
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        self.read_retrying(buf)
    }

    /// The input's first bytes (up to a mark's length), without the mark if they are one.
    fn first_bytes(&mut self) -> io::Result<Vec<u8>> {
        let mut head = [0; BOM.len()];
        let mut filled = 0;
        while filled < head.len() {
            let n = self.read_retrying(&mut head[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let head = &head[..filled];
        Ok(if head == BOM {
            Vec::new()
        } else {
            head.to_vec()
        })
    }

    fn read_retrying(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The csv reader asks for more only once it has parsed all it was given, so the bytes
        // handed out since the record started all belong to that record.
        if self.produced.saturating_sub(self.record_start) > self.limit {
            self.tripped = true;
            return Err(io::Error::other("record longer than the limit"));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.ended {
            self.told_end = true;
            return Ok(0);
        }
        let n = self.read_inner(buf)?;
        if n == 0 {
            self.ended = true;
            if self.last == b'\n' {
                self.told_end = true;
                return Ok(0);
            }
            buf[0] = b'\n';
            self.produced += 1;
            return Ok(1);
        }
        self.last = buf[n - 1];
        self.produced += n as u64;
        Ok(n)
    }
}

/// Writes a CSV file for export: the column names, then one record per row, quoting values
/// that need it (commas, quotes, line breaks). Every row must have one value per column.
pub fn write_csv<W: Write>(
    out: W,
    columns: &[String],
    rows: impl Iterator<Item = Vec<String>>,
) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(columns)?;
    for row in rows {
        writer.write_record(&row)?;
    }
    writer.flush()
}

/// A CSV input of `rows` contact rows, generated as it is read (never held in memory), for
/// the streaming test and the engine's import benchmark.
#[doc(hidden)]
pub fn generated_input(rows: u64) -> impl Read {
    Generated {
        rows,
        next: 0,
        header: true,
        buf: Vec::with_capacity(BUFFER_BYTES + 256),
        pos: 0,
    }
}

/// The reader behind [`generated_input`]: fills a small buffer with a batch of rows at a time.
struct Generated {
    rows: u64,
    next: u64,
    header: bool,
    buf: Vec<u8>,
    pos: usize,
}

impl Generated {
    const HEADER: &'static str =
        "phone,first_name,last_name,tags,locale,time_zone,consent_source,consent_at\r\n";

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        if std::mem::take(&mut self.header) {
            self.buf.extend_from_slice(Self::HEADER.as_bytes());
        }
        while self.buf.len() < BUFFER_BYTES && self.next < self.rows {
            self.buf.extend_from_slice(Self::row(self.next).as_bytes());
            self.next += 1;
        }
    }

    /// Row `i`: a distinct valid North American number, a quoted comma, tags to split.
    /// Every row has the same length, so a test can tell how far into the input a row is.
    fn row(i: u64) -> String {
        let area = 200 + (i / 10_000_000) % 800;
        let exchange = 200 + (i / 10_000) % 800;
        let line = i % 10_000;
        format!(
            "+1 {area} {exchange} {line:04},First{i:010},\"Smith, {i:010}\",VIP; promo{},en-US,\
             America/New_York,web_form,2024-05-01T12:00:00Z\r\n",
            i % 7
        )
    }
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.refill();
        }
        let available = &self.buf[self.pos..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn options() -> ImportOptions {
        ImportOptions::new(number::country("US").unwrap())
    }

    fn open(input: &[u8]) -> ContactRows<&[u8]> {
        ContactRows::new(input, options()).unwrap()
    }

    fn rows(input: &[u8]) -> Vec<Result<Row, RowError>> {
        open(input).collect()
    }

    fn ok_rows(input: &[u8]) -> Vec<Row> {
        rows(input).into_iter().map(Result::unwrap).collect()
    }

    fn header_error(input: &[u8]) -> ImportError {
        match ContactRows::new(input, options()) {
            Ok(_) => panic!("the header was accepted"),
            Err(error) => error,
        }
    }

    fn field<'a>(row: &'a Row, name: &str) -> Option<&'a str> {
        row.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn a_bom_at_the_start_is_skipped() {
        let mut rows = open(b"\xef\xbb\xbfphone,name\n2125550143,Ann\n");
        assert_eq!(rows.columns(), ["phone", "name"]);
        let row = rows.next().unwrap().unwrap();
        assert_eq!((row.line, row.phone.as_str()), (2, "+12125550143"));
    }

    /// Hands out one byte per read, so the BOM never arrives whole in one read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn a_bom_arriving_byte_by_byte_is_skipped_too() {
        let input =
            Trickle(b"\xef\xbb\xbfPhone,name\n2125550143,Ann\n\"212 555 0144\",\"B\nob\"\n");
        let rows = ContactRows::new(input, options()).unwrap();
        assert_eq!(rows.columns(), ["phone", "name"]);
        let lines: Vec<u64> = rows.map(|row| row.unwrap().line).collect();
        assert_eq!(lines, [2, 3]);
    }

    #[test]
    fn crlf_and_lf_both_work_with_the_right_lines() {
        for input in [
            &b"phone,name\r\n2125550143,Ann\r\n\r\n2125550144,Bob\r\n"[..],
            b"phone,name\n2125550143,Ann\n\n2125550144,Bob",
        ] {
            let rows = ok_rows(input);
            let got: Vec<(u64, Option<&str>)> = rows
                .iter()
                .map(|row| (row.line, field(row, "name")))
                .collect();
            assert_eq!(got, [(2, Some("Ann")), (4, Some("Bob"))], "{input:?}");
        }
    }

    #[test]
    fn a_quoted_comma_stays_in_its_value() {
        let rows = ok_rows(b"phone,name,city\n2125550143,\"Smith, Ann\",NYC\n");
        assert_eq!(field(&rows[0], "name"), Some("Smith, Ann"));
        assert_eq!(field(&rows[0], "city"), Some("NYC"));
    }

    #[test]
    fn quoted_quotes_and_newlines_keep_line_numbers_right() {
        let input = b"phone,note\r\n2125550143,\"say \"\"hi\"\"\"\r\n2125550144,\"two\r\nlines\r\nhere\"\r\n\
                      2125550145,after\r\nbad,x\n";
        let rows = rows(input);
        let row = rows[0].as_ref().unwrap();
        assert_eq!((row.line, field(row, "note")), (2, Some("say \"hi\"")));
        let row = rows[1].as_ref().unwrap();
        assert_eq!(
            (row.line, field(row, "note")),
            (3, Some("two\r\nlines\r\nhere"))
        );
        assert_eq!(rows[2].as_ref().unwrap().line, 6);
        assert_eq!(rows[3].as_ref().unwrap_err().line, 7);
    }

    #[test]
    fn the_six_national_forms_import_to_one_number() {
        let input = b"phone\n(212) 555-0143\n212-555-0143\n212.555.0143\n2125550143\n\
                      1 212 555 0143\n1-212-555-0143\n";
        let phones: Vec<String> = ok_rows(input).into_iter().map(|row| row.phone).collect();
        assert_eq!(phones, vec!["+12125550143"; 6]);
    }

    #[test]
    fn more_cells_than_columns_is_a_row_error() {
        let input = b"phone,first,last,city\n2125550143,a,b,c\n\n\n\n\n2125550144,Smith, Ann,b,c\n";
        let rows = rows(input);
        let error = rows[1].as_ref().unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 7: 5 cells, the header has 4 columns; quote a value that contains a comma"
        );
    }

    #[test]
    fn fewer_cells_and_trailing_empty_cells_are_accepted() {
        let rows = ok_rows(b"phone,first,last\n2125550143,Ann\n2125550144,Bob,Li,,\n");
        assert_eq!(rows[0].fields, [("first".to_owned(), "Ann".to_owned())]);
        assert_eq!(rows[1].fields.len(), 2);
    }

    #[test]
    fn invalid_utf8_is_a_row_error_and_the_next_row_is_read() {
        let rows = rows(b"phone,name\n2125550143,Ann\n2125550144,Jos\xe9\n2125550145,Bob\n");
        let error = rows[1].as_ref().unwrap_err();
        assert_eq!(error.line, 3);
        assert!(
            error.error.contains("column `name` is not valid UTF-8"),
            "{error}"
        );
        assert_eq!(field(rows[2].as_ref().unwrap(), "name"), Some("Bob"));
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn a_missing_phone_column_suggests_the_closest() {
        let error = header_error(b"phnoe,name\n2125550143,Ann\n");
        let message = error.to_string();
        assert!(message.contains("it has `phnoe`, `name`"), "{message}");
        assert!(
            message.contains("did you mean `phnoe`? Rename it to `phone`"),
            "{message}"
        );
        let error = header_error(b"Mobile Number,name\n");
        assert!(
            error.to_string().contains("did you mean `Mobile Number`"),
            "{error}"
        );
        let error = header_error(b"name,city\n");
        assert!(
            error
                .to_string()
                .contains("name the column that holds the numbers"),
            "{error}"
        );
    }

    #[test]
    fn duplicate_headers_are_refused() {
        let error = header_error(b"phone,name,Phone\n");
        assert!(
            matches!(&error, ImportError::DuplicateColumn { name, first: 1, second: 3 } if name == "phone"),
            "{error}"
        );
        assert!(matches!(
            header_error(b"phone,name, name\n"),
            ImportError::DuplicateColumn { .. }
        ));
    }

    #[test]
    fn header_names_are_checked() {
        let error = header_error(b"phone,First Name\n");
        assert!(
            error.to_string().contains("such as `First_Name`"),
            "{error}"
        );
        assert!(matches!(
            header_error(b"phone,2nd\n"),
            ImportError::InvalidColumnName { .. }
        ));
        let long = format!("phone,{}\n", "a".repeat(65));
        assert!(matches!(
            header_error(long.as_bytes()),
            ImportError::InvalidColumnName { .. }
        ));
        let error = header_error(b"phone,consent_sorce\n");
        assert!(
            matches!(error, ImportError::UnknownConsentColumn { column: 2, .. }),
            "{error}"
        );
        assert!(matches!(
            header_error(b"phone,\xff\n"),
            ImportError::HeaderNotUtf8 { column: 2 }
        ));
        assert!(matches!(header_error(b""), ImportError::NoHeader));
        assert!(matches!(header_error(b"\n\n,,\n"), ImportError::NoHeader));
        let mut small = options();
        small.max_columns = 2;
        let error = ContactRows::new(&b"phone,a,b\n"[..], small).err().unwrap();
        assert!(
            matches!(error, ImportError::TooManyColumns { found: 3, max: 2 }),
            "{error}"
        );
        let rows = open(b" PHONE , Tags ,Time_Zone,first_name\n");
        assert_eq!(rows.columns(), ["phone", "tags", "time_zone", "first_name"]);
    }

    #[test]
    fn tags_are_split_trimmed_lowercased_and_deduplicated() {
        let rows = ok_rows(b"phone,tags\n2125550143,\"VIP; Promo ;;vip; \"\n2125550144,\n");
        assert_eq!(rows[0].tags, ["vip", "promo"]);
        assert!(rows[1].tags.is_empty());
    }

    #[test]
    fn locale_time_zone_and_consent_columns_are_taken_out() {
        let input = b"phone,consent_source,Consent_At,consent_disclosure,consent_program,locale,\
                      time_zone,name\n\
                      2125550143,web_form,2024-05-01T12:00:00Z,Reply STOP to end,alerts,es-MX,\
                      America/Chicago,Ann\n\
                      2125550144,,,,,,,Bob\n\
                      2125550145,,2024-06-01,,,,,\n";
        let rows = ok_rows(input);
        let consent = rows[0].consent.as_ref().unwrap();
        assert_eq!(consent.source.as_deref(), Some("web_form"));
        assert_eq!(consent.at.as_deref(), Some("2024-05-01T12:00:00Z"));
        assert_eq!(consent.disclosure.as_deref(), Some("Reply STOP to end"));
        assert_eq!(consent.program.as_deref(), Some("alerts"));
        assert_eq!(rows[0].locale.as_deref(), Some("es-MX"));
        assert_eq!(rows[0].time_zone.as_deref(), Some("America/Chicago"));
        assert_eq!(rows[0].fields, [("name".to_owned(), "Ann".to_owned())]);
        assert_eq!(
            (rows[1].consent.as_ref(), rows[1].locale.as_ref()),
            (None, None)
        );
        let at_only = ConsentColumns {
            at: Some("2024-06-01".to_owned()),
            ..Default::default()
        };
        assert_eq!(rows[2].consent, Some(at_only));
    }

    #[test]
    fn empty_cells_are_left_out_and_values_trimmed() {
        let rows = ok_rows(b"phone,first,last,city\n 2125550143 ,  ,Li,\"  NYC \"\n");
        let expected = [("last", "Li"), ("city", "NYC")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(rows[0].fields, expected);
    }

    #[test]
    fn blank_lines_are_skipped() {
        let rows = ok_rows(b"\nphone,name\n\n  \n,,\n\r\n2125550143,Ann\n\n");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 7);
    }

    #[test]
    fn an_unnamed_column_must_stay_empty() {
        let rows = rows(b"phone,,name\n2125550143,,Ann\n2125550144,oops,Bob\n");
        assert_eq!(rows[0].as_ref().unwrap().fields.len(), 1);
        let error = rows[1].as_ref().unwrap_err();
        assert!(
            error.error.contains("column 2 has no name in the header"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_phone_is_a_row_error_with_the_numbers_message() {
        let rows = rows(b"phone,name\n555-0143,Ann\n,Bob\n2125550143,Cy\n");
        let error = rows[0].as_ref().unwrap_err();
        assert_eq!(error.line, 2);
        assert!(
            error.error.starts_with("`555-0143` has 7 digits"),
            "{error}"
        );
        assert!(rows[1].as_ref().unwrap_err().error.contains("empty"));
        assert!(rows[2].is_ok());
    }

    #[test]
    fn row_errors_serialize_as_line_and_error() {
        let error = RowError {
            line: 7,
            error: "bad".to_owned(),
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"line":7,"error":"bad"}"#
        );
    }

    #[test]
    fn an_over_long_row_is_a_row_error_and_reading_goes_on() {
        let mut small = options();
        small.max_line_bytes = 100;
        let input = format!(
            "phone,note\n2125550143,{}\n2125550144,ok\n",
            "x".repeat(200)
        );
        let rows: Vec<_> = ContactRows::new(input.as_bytes(), small).unwrap().collect();
        assert!(
            rows[0]
                .as_ref()
                .unwrap_err()
                .error
                .contains("longer than 100 bytes")
        );
        assert_eq!(rows[1].as_ref().unwrap().line, 3);
    }

    #[test]
    fn an_unclosed_quote_stops_reading_in_bounded_memory() {
        let mut small = options();
        small.max_line_bytes = 1024;
        let input = ("phone,note\n2125550143,\"open\n".to_owned()
            + &"2125550144,x\n".repeat(100_000))
            .into_bytes();
        let read = Rc::new(Cell::new(0));
        let counted = Counted {
            inner: &input[..],
            read: Rc::clone(&read),
        };
        let mut rows = ContactRows::new(counted, small).unwrap();
        let error = rows.next().unwrap().unwrap_err();
        assert_eq!(error.line, 2);
        assert!(
            error.error.contains("the rest of the file was not read"),
            "{error}"
        );
        assert!(rows.next().is_none());
        assert!(rows.truncated());
        // The open quote would swallow the whole input: reading stopped near the limit.
        assert!(
            read.get() < 1024 + 3 * BUFFER_BYTES as u64,
            "read {} bytes",
            read.get()
        );
    }

    #[test]
    fn an_io_error_ends_the_rows() {
        /// Hands out its bytes, then fails.
        struct Failing(&'static [u8]);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("disk gone"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut rows = ContactRows::new(Failing(b"phone\n2125550143\n"), options()).unwrap();
        assert!(rows.next().unwrap().is_ok());
        let error = rows.next().unwrap().unwrap_err();
        assert!(error.error.contains("disk gone"), "{error}");
        assert!(rows.next().is_none() && rows.truncated());
    }

    #[test]
    fn exported_csv_reads_back_the_same() {
        let columns: Vec<String> = ["phone", "first_name", "note", "tags"]
            .map(str::to_owned)
            .to_vec();
        let written = vec![
            vec!["+12125550143", "Ann", "says \"hi\", twice", "a;b"],
            vec!["+447700900123", "Bob", "two\nlines", ""],
            vec!["+12125550144", "Ç'est", "plain", "x"],
        ];
        let mut file = tempfile::tempfile().unwrap();
        let rows = written
            .iter()
            .map(|row| row.iter().map(|v| (*v).to_owned()).collect());
        write_csv(&mut file, &columns, rows).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let read = ContactRows::new(file, options()).unwrap();
        assert_eq!(read.columns(), columns);
        let read: Vec<Row> = read.map(Result::unwrap).collect();
        for (row, expected) in read.iter().zip(&written) {
            assert_eq!(row.phone, expected[0]);
            assert_eq!(field(row, "first_name"), Some(expected[1]));
            assert_eq!(field(row, "note"), Some(expected[2]));
            assert_eq!(row.tags.join(";"), expected[3]);
        }
        assert_eq!([read[0].line, read[1].line, read[2].line], [2, 3, 5]);
    }

    #[test]
    fn write_csv_refuses_a_row_of_the_wrong_width() {
        let columns = vec!["phone".to_owned(), "name".to_owned()];
        let rows = std::iter::once(vec!["+12125550143".to_owned()]);
        assert!(write_csv(Vec::new(), &columns, rows).is_err());
    }

    /// Counts the bytes read through it, shared with the test.
    struct Counted<R> {
        inner: R,
        read: Rc<Cell<u64>>,
    }

    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    /// Reads `megabytes` of generated rows, checking at every row that the reader has not
    /// read ahead of it by more than its buffers: the input is streamed, never held.
    fn stream(megabytes: u64) {
        let row_bytes = Generated::row(0).len() as u64;
        let header_bytes = Generated::HEADER.len() as u64;
        let count = megabytes * 1024 * 1024 / row_bytes;
        let read = Rc::new(Cell::new(0));
        let input = Counted {
            inner: generated_input(count),
            read: Rc::clone(&read),
        };
        let mut rows = ContactRows::new(input, options()).unwrap();
        let first = rows.next().unwrap().unwrap();
        assert_eq!(first.phone, "+12002000000");
        assert_eq!(field(&first, "last_name"), Some("Smith, 0000000000"));
        assert_eq!(first.tags, ["vip", "promo0"]);
        let mut seen = 1;
        for row in rows.by_ref() {
            let row = row.unwrap();
            seen += 1;
            assert_eq!(row.line, seen + 1);
            let through_row = header_bytes + seen * row_bytes;
            let ahead = read.get() - through_row;
            assert!(
                ahead <= 2 * BUFFER_BYTES as u64,
                "read {ahead} bytes past row {seen}"
            );
        }
        assert_eq!(seen, count);
        assert_eq!(read.get(), header_bytes + count * row_bytes);
        assert!(!rows.truncated());
    }

    /// The bounded read-ahead checked at every row shows the input is streamed, not held; 20 MB
    /// keeps the unit tests quick (the 200 MB import, with its peak memory, is in `just bench`).
    #[test]
    fn a_20_mb_input_streams() {
        stream(20);
    }
}
