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
    /// The byte offset where each line starts, so that locating an offset is a binary search
    /// and a walk along one line: scanning from the file's start for each of a big flow's
    /// steps made compiling 50,000 steps take most of a minute.
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// A map for `text`, read from `path`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(newline, _)| newline + 1))
            .collect();
        Self {
            path,
            text,
            line_starts,
        }
    }

    /// The location of byte `offset` (clamped to the text).
    pub fn locate(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The last line starting at or before `offset`; line 0 starts at 0, so there is one.
        let line = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1);
        let line_start = self.line_starts.get(line).copied().unwrap_or(0);
        Location {
            line: line + 1,
            column: self.text[line_start..offset].chars().count() + 1,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The location as counted from the start of the text, which the line index replaces.
    fn counted(text: &str, offset: usize) -> Location {
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    #[test]
    fn the_line_index_agrees_with_counting_from_the_start() {
        let text = "id = \"é\"\n\n# 👍 ¿qué?\r\n[steps.a]\ntype = \"send\" # ü\n\n";
        let map = SourceMap::new(Path::new("f.toml"), text);
        for offset in 0..=text.len() {
            let boundary = (0..=offset)
                .rev()
                .find(|at| text.is_char_boundary(*at))
                .unwrap_or(0);
            assert_eq!(map.locate(offset), counted(text, boundary), "{offset}");
        }
        assert_eq!(map.locate(text.len() + 10), counted(text, text.len()));
        let empty = SourceMap::new(Path::new("f.toml"), "");
        assert_eq!(empty.locate(3), Location { line: 1, column: 1 });
    }
}
