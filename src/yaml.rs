//! The one way the sidecar decodes a YAML config, so that every config file
//! and inline config gets the same two guarantees:
//!
//! - an error names the key path and the line, as Go's YAML errors do
//!   (serde_yaml tracks both only when it decodes straight from the text,
//!   not from a `serde_yaml::Value`);
//! - a deeply nested document fails at once. libyaml's scanner re-checks
//!   every open flow level on every token, so 100,000 nested `[` cost
//!   minutes of CPU before serde_yaml's own recursion limit (128) is even
//!   reached; [`check_depth`] refuses them in one linear pass first.

use serde::de::DeserializeOwned;

/// serde_yaml refuses documents nested deeper than this anyway; the
/// pre-scan only makes that refusal cheap, so it never rejects a document
/// serde_yaml would have accepted.
pub const MAX_DEPTH: usize = 128;

/// Decodes the single document in `text` into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    decode(text, T::deserialize)
}

/// Decodes `text` with `decode` (e.g. to wrap the deserializer in
/// `serde_ignored`, or to read only the first document), after the depth
/// check; errors come back rendered by [`error`].
pub fn decode<'a, T>(
    text: &'a str,
    decode: impl FnOnce(serde_yaml::Deserializer<'a>) -> Result<T, serde_yaml::Error>,
) -> Result<T, String> {
    check_depth(text)?;
    decode(serde_yaml::Deserializer::from_str(text)).map_err(|e| error(&e))
}

/// serde_yaml's message: key path first, then `at line L column C`.
/// Quoted values are redacted: they may be secrets (a mistyped password).
pub fn error(e: &serde_yaml::Error) -> String {
    crate::logging::redact_quoted(&e.to_string())
}

/// Refuses YAML nested deeper than [`MAX_DEPTH`] levels, in time linear in
/// the text.
///
/// The count is a lower bound of the nesting serde_yaml sees: each flow
/// `[`/`{` outside quotes and comments, plus each block indentation libyaml
/// opens (a `- `, `? ` or key at a deeper column), so a document this
/// rejects is one serde_yaml would reject too. Malformed YAML is left for
/// serde_yaml to report.
pub fn check_depth(text: &str) -> Result<(), String> {
    let mut scan = Scan {
        b: text.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        indents: Vec::new(),
        skip_deeper: false,
    };
    scan.document().map_err(|()| {
        format!(
            "YAML nested deeper than {MAX_DEPTH} levels at line {} column {}",
            scan.line,
            scan.pos - scan.line_start + 1
        )
    })
}

struct Scan<'a> {
    b: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
    /// Columns of the open block collections, as libyaml's indent stack.
    indents: Vec<usize>,
    /// The last node's text may go on in more-indented lines (a block
    /// scalar, or a plain scalar's continuation), which hold no structure.
    skip_deeper: bool,
}

fn blank_or_end(c: Option<u8>) -> bool {
    matches!(c, None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.b.get(self.pos + offset).copied()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += 1;
            if c == b'\n' {
                self.line += 1;
                self.line_start = self.pos;
            }
        }
    }

    fn column(&self) -> usize {
        self.pos - self.line_start
    }

    /// Moves past the next line break (or to the end).
    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.bump();
            if c == b'\n' {
                return;
            }
        }
    }

    fn skip_inline_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.bump();
        }
    }

    /// A block collection starts at `column` if it is deeper than the
    /// enclosing one (libyaml's `roll_indent`).
    fn roll(&mut self, column: usize) -> Result<(), ()> {
        if self.indents.last().is_none_or(|&top| column > top) {
            self.indents.push(column);
            if self.indents.len() > MAX_DEPTH {
                return Err(());
            }
        }
        Ok(())
    }

    fn document(&mut self) -> Result<(), ()> {
        while self.pos < self.b.len() {
            self.block_line()?;
        }
        Ok(())
    }

    fn block_line(&mut self) -> Result<(), ()> {
        let mut indent = 0;
        while self.peek_at(indent) == Some(b' ') {
            indent += 1;
        }
        let first = self.peek_at(indent);
        let blank = matches!(first, None | Some(b'\n' | b'\r' | b'#'));
        let deeper = self.indents.last().is_none_or(|&top| indent > top);
        if blank || (self.skip_deeper && deeper) {
            self.skip_line();
            return Ok(());
        }
        self.skip_deeper = false;
        self.pos += indent;
        let marker = &self.b[self.pos..];
        if indent == 0
            && (marker.starts_with(b"---") || marker.starts_with(b"..."))
            && blank_or_end(marker.get(3).copied())
        {
            self.indents.clear();
            self.pos += 3;
        } else {
            while self.indents.last().is_some_and(|&top| top > indent) {
                self.indents.pop();
            }
        }
        self.block_nodes()
    }

    /// The tokens of one line in block context, from the current position.
    fn block_nodes(&mut self) -> Result<(), ()> {
        loop {
            self.skip_inline_blanks();
            let column = self.column();
            match self.peek() {
                None => return Ok(()),
                Some(b'\n' | b'#') => {
                    self.skip_line();
                    return Ok(());
                }
                Some(b'-' | b'?') if blank_or_end(self.peek_at(1)) => {
                    self.roll(column)?;
                    self.bump();
                }
                Some(b':') if blank_or_end(self.peek_at(1)) => self.bump(),
                Some(b'[' | b'{') => {
                    self.flow()?;
                    self.key_after_node(column)?;
                }
                Some(b'"' | b'\'') => {
                    self.quoted();
                    self.key_after_node(column)?;
                }
                Some(b'|' | b'>') => {
                    self.skip_line();
                    self.skip_deeper = true;
                    return Ok(());
                }
                Some(b'!' | b'&') => {
                    while !blank_or_end(self.peek()) {
                        self.bump();
                    }
                }
                Some(_) => match self.plain_key_colon() {
                    Some(colon) => {
                        self.roll(column)?;
                        self.pos = colon + 1;
                    }
                    None => {
                        self.skip_line();
                        self.skip_deeper = true;
                        return Ok(());
                    }
                },
            }
        }
    }

    /// Where a plain scalar starting here ends as a key (its `: `), if it
    /// does: it cannot hold `: ` or ` #`, and in block context it otherwise
    /// runs to the line's end.
    fn plain_key_colon(&self) -> Option<usize> {
        let line = &self.b[self.pos..];
        for (i, &c) in line.iter().enumerate() {
            match c {
                b'\n' => return None,
                b'#' if i > 0 && blank_or_end(Some(line[i - 1])) => return None,
                b':' if blank_or_end(line.get(i + 1).copied()) => return Some(self.pos + i),
                _ => {}
            }
        }
        None
    }

    /// A flow collection or quoted scalar followed by `: ` was a key.
    fn key_after_node(&mut self, column: usize) -> Result<(), ()> {
        self.skip_inline_blanks();
        if self.peek() == Some(b':') && blank_or_end(self.peek_at(1)) {
            self.roll(column)?;
            self.bump();
        }
        Ok(())
    }

    /// A flow collection, from its opening bracket to the matching close.
    fn flow(&mut self) -> Result<(), ()> {
        let base = self.indents.len();
        let mut level = 0usize;
        // Quotes open a scalar only where a token starts (`[it's]` is plain).
        let mut token_start = true;
        while let Some(c) = self.peek() {
            match c {
                b'[' | b'{' => {
                    level += 1;
                    if base + level > MAX_DEPTH {
                        return Err(());
                    }
                    token_start = true;
                }
                b']' | b'}' => {
                    level = level.saturating_sub(1);
                    if level == 0 {
                        self.bump();
                        return Ok(());
                    }
                    token_start = false;
                }
                b',' | b':' | b'?' => token_start = true,
                b'"' | b'\'' if token_start => {
                    self.quoted();
                    token_start = false;
                    continue;
                }
                b'#' if blank_or_end(self.b.get(self.pos.wrapping_sub(1)).copied()) => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.bump();
                    }
                    continue;
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'!' | b'&' if token_start => {
                    while !blank_or_end(self.peek())
                        && !matches!(self.peek(), Some(b',' | b'[' | b']' | b'{' | b'}'))
                    {
                        self.bump();
                    }
                    continue;
                }
                _ => token_start = false,
            }
            self.bump();
        }
        Ok(())
    }

    /// A single- or double-quoted scalar, which may span lines.
    fn quoted(&mut self) {
        let Some(quote) = self.peek() else { return };
        self.bump();
        while let Some(c) = self.peek() {
            self.bump();
            if quote == b'"' && c == b'\\' {
                self.bump();
            } else if c == quote {
                if quote == b'\'' && self.peek() == Some(b'\'') {
                    self.bump();
                } else {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str) -> String {
        match check_depth(text) {
            Ok(()) => panic!("accepted {:?}", &text[..text.len().min(60)]),
            Err(e) => e,
        }
    }

    #[test]
    fn flow_bombs_fail_at_the_limit() {
        let err = depth_error(&format!("type: S3\nconfig: {}", "[".repeat(100_000)));
        assert_eq!(
            err,
            "YAML nested deeper than 128 levels at line 2 column 136"
        );
        let err = depth_error(&format!("a: {}", "{a: ".repeat(100_000)));
        assert!(err.contains("line 1"), "{err}");
        // Comments and line breaks inside the flow do not hide the nesting.
        let err = depth_error(&"[ # x\n".repeat(200));
        assert!(err.contains("line 129 column 1"), "{err}");
    }

    #[test]
    fn block_bombs_fail_at_the_limit() {
        let err = depth_error(&format!("a:\n  {}x\n", "- ".repeat(100_000)));
        assert!(err.contains("line 2 column"), "{err}");
        let err = depth_error(&format!("{}x\n", "? ".repeat(100_000)));
        assert!(err.contains("line 1 "), "{err}");
        let nested: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let err = depth_error(&nested);
        assert!(err.contains("line 129 column 129"), "{err}");
    }

    /// What the scan counts is never more than serde_yaml's own limit lets
    /// through: at 128 levels both accept, at 129 both refuse.
    #[test]
    fn the_limit_is_serde_yamls() {
        for (depth, ok) in [(MAX_DEPTH, true), (MAX_DEPTH + 1, false)] {
            let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let block: String = (0..depth)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect();
            let mixed = format!(
                "a:\n  b: {}{}",
                "[".repeat(depth - 2),
                "]".repeat(depth - 2)
            );
            for text in [flow, block, mixed] {
                let serde = serde_yaml::from_str::<serde_yaml::Value>(&text);
                assert_eq!(serde.is_ok(), ok, "serde_yaml at {depth}: {serde:?}");
                assert_eq!(check_depth(&text).is_ok(), ok, "scan at {depth}");
            }
        }
    }

    /// Brackets, dashes and colons inside scalars are text, not nesting.
    #[test]
    fn scalars_are_not_structure() {
        let deep = "[".repeat(200);
        let dashes = "- ".repeat(200);
        let docs = [
            format!("a: x{deep}\n"),
            format!("a: \"{deep}\"\n"),
            format!("a: '{deep}'\nb: 'it''s {deep}'\n"),
            format!("a: \"multi\n  line {deep} \\\" {deep}\"\n"),
            format!("a: |\n  {deep}\n\n  {dashes}\nb: >-\n  {deep}\n"),
            format!("a: [\"{deep}\", '{deep}', it's, x]\n"),
            format!("- plain\n  {dashes}x\n"),
            format!("a: b # {deep}\n# {deep}\n"),
            format!("--- |\n  {deep}\n...\n"),
            format!("a: !!str &x x{deep}\nb: *x\n"),
        ];
        for doc in docs {
            check_depth(&doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
            assert!(
                serde_yaml::from_str::<serde_yaml::Value>(&doc).is_ok(),
                "not YAML: {doc:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_path_and_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct C {
            a: Inner,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            b: bool,
        }
        let err = from_str::<C>("a:\n  b: \"secret\"\n").unwrap_err();
        assert_eq!(
            err,
            "a.b: invalid type: string (redacted), expected a boolean at line 2 column 6"
        );
    }
}
