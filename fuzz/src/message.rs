//! Inputs that need more than a body (a URL, signature headers): written as an HTTP request is,
//! `name: value` lines, a blank line, then the body. Seeds stay readable, and the fuzzer can
//! change a header and the body independently.

/// A fuzz input split into its headers and body.
pub(crate) struct Message<'a> {
    headers: Vec<(&'a str, &'a str)>,
    /// The bytes after the blank line, or the whole input when it has no header block.
    pub(crate) body: &'a [u8],
}

impl<'a> Message<'a> {
    /// Splits `data` at its first blank line; anything that is not a header block above it
    /// makes the whole input the body.
    pub(crate) fn parse(data: &'a [u8]) -> Self {
        let whole = Message {
            headers: Vec::new(),
            body: data,
        };
        let Some(end) = data.windows(2).position(|pair| pair == b"\n\n") else {
            return whole;
        };
        let (Ok(head), Some(body)) = (std::str::from_utf8(&data[..end]), data.get(end + 2..))
        else {
            return whole;
        };
        let headers: Option<Vec<(&str, &str)>> = head
            .lines()
            .map(|line| line.split_once(':').map(|(n, v)| (n.trim(), v.trim())))
            .collect();
        match headers {
            Some(headers) => Message { headers, body },
            None => whole,
        }
    }

    /// The first header called `name` (case-insensitive), if any.
    pub(crate) fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}
