//! Problems found in a flow file, each pointing at its file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a file: line and column from 1, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// Where in the file.
    pub at: Location,
    /// What is wrong, and how to fix it when that is not obvious.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.at.line,
            self.at.column,
            self.message
        )
    }
}

/// Turns byte offsets of one file into [`Diagnostic`]s.
#[derive(Debug, Clone)]
pub struct SourceMap<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> SourceMap<'a> {
    /// A map for `text`, read from `path`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    /// The location of byte `offset` (clamped to the text).
    pub fn locate(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// A diagnostic at the start of `span`.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.error_at(self.locate(span.start), message)
    }

    /// A diagnostic at `at`.
    pub fn error_at(&self, at: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: self.path.to_owned(),
            at,
            message: message.into(),
        }
    }
}
