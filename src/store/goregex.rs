//! Go's regular-expression syntax, checked and translated for the `regex` crate.
//!
//! Prometheus and Thanos compile `=~`/`!~` matcher values with Go's
//! `regexp/syntax` (`Parse(value, Perl|DotNL)`, then `^(?s:…)$`). Go's
//! dialect is close to the `regex` crate's but not the same: Go refuses
//! stacked repetitions (`a**`, `x{2}{3}`), counts above 1000 (also as a
//! product of nested counts) and nesting deeper than 1000; it accepts
//! `\Q…\E`, octal escapes (`\0`, `\012`) and `(?P<n>…)`/`(?<n>…)`; its `\d`,
//! `\s`, `\w` and `\b` are ASCII-only; `\p{Greek}` is the Script property
//! (the `regex` crate reads Script_Extensions) and `\p{…}` names are a fixed
//! set. A matcher Go refuses must be refused before Prometheus is asked, with
//! Go's reason, and one Go accepts must mean the same here.
//!
//! [`translate`] walks a pattern the way Go's parser does — same order of
//! checks, so the same error kind and offending text — and builds a small
//! tree from which it writes an equivalent `regex` pattern. The output spells
//! out every flag-dependent construct (`.`, `^`, `$`, classes, case folding),
//! so it means the same whatever flags it is embedded under.
//!
//! The verdicts in `tests` are Go 1.26's, from running its parser on the
//! same patterns. Not mirrored: Go's "expression too large" (it depends on
//! how Go's parser allocates and factors nodes, and takes megabyte-sized
//! patterns to reach); nesting depth is measured on this tree, which can
//! differ from Go's by a level where Go factors alternatives; literal
//! surrogate code points (`\x{D800}`), which no valid UTF-8 string holds,
//! never match (Go's matcher is inconsistent about them); Unicode tables are
//! the `regex` crate's (Unicode 16) where Go 1.26 has 15.0; a pattern whose
//! compiled form exceeds `SIZE_LIMIT` here cannot be evaluated (only those
//! on external labels are).

use std::fmt;

use regex::{Regex, RegexBuilder};

/// Go's limit on `{n,m}` counts and on the height of the parse tree.
const MAX_REPEAT: u32 = 1000;
const MAX_HEIGHT: u32 = 1000;

/// `regex` crate limits for [`GoRegex::compile`].
const NEST_LIMIT: u32 = 4 * MAX_HEIGHT;
const SIZE_LIMIT: usize = 64 << 20;
/// Deeper trees than this are compiled on a thread with a `DEEP_STACK`.
const INLINE_HEIGHT: u32 = 50;
const DEEP_STACK: usize = 64 << 20;

/// An empty class: matches nothing, as a surrogate code point in Go.
const NEVER: &str = r"[^\x{0}-\x{10FFFF}]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidCharRange,
    InvalidEscape,
    InvalidNamedCapture,
    InvalidPerlOp,
    InvalidRepeatOp,
    InvalidRepeatSize,
    MissingBracket,
    MissingParen,
    MissingRepeatArgument,
    TrailingBackslash,
    UnexpectedParen,
    NestingDepth,
}

impl ErrorKind {
    /// Go's wording, which clients (and Thanos' users) already know.
    fn text(self) -> &'static str {
        match self {
            ErrorKind::InvalidCharRange => "invalid character class range",
            ErrorKind::InvalidEscape => "invalid escape sequence",
            ErrorKind::InvalidNamedCapture => "invalid named capture",
            ErrorKind::InvalidPerlOp => "invalid or unsupported Perl syntax",
            ErrorKind::InvalidRepeatOp => "invalid nested repetition operator",
            ErrorKind::InvalidRepeatSize => "invalid repeat count",
            ErrorKind::MissingBracket => "missing closing ]",
            ErrorKind::MissingParen => "missing closing )",
            ErrorKind::MissingRepeatArgument => "missing argument to repetition operator",
            ErrorKind::TrailingBackslash => "trailing backslash at end of expression",
            ErrorKind::UnexpectedParen => "unexpected )",
            ErrorKind::NestingDepth => "expression nests too deeply",
        }
    }
}

/// A refusal: the kind and the part of the pattern Go quotes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub expr: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error parsing regexp: {}: `{}`",
            self.kind.text(),
            self.expr
        )
    }
}

impl std::error::Error for Error {}

fn err<T>(kind: ErrorKind, expr: &str) -> Result<T, Error> {
    Err(Error {
        kind,
        expr: expr.to_string(),
    })
}

/// A pattern Go accepts, in `regex` crate syntax (unanchored).
#[derive(Debug, Clone)]
pub struct GoRegex {
    translated: String,
    /// Height of the tree: how deep compiling it recurses.
    height: u32,
}

/// Checks `pattern` as Prometheus does (Go's `regexp/syntax.Parse(pattern,
/// Perl|DotNL)`, then compiling `^(?s:…)$`) and translates it.
pub fn translate(pattern: &str) -> Result<GoRegex, Error> {
    let tree = Parser::new(pattern).parse()?;
    let mut translated = String::with_capacity(pattern.len() + 16);
    tree.render(&mut translated);
    Ok(GoRegex {
        translated,
        height: tree.height,
    })
}

impl GoRegex {
    pub fn as_str(&self) -> &str {
        &self.translated
    }

    /// Compiles the pattern to match whole values only.
    ///
    /// The `regex` crate's limits are raised for what Go accepts: nesting
    /// up to 1000 levels (each can be two here, a group and its repetition)
    /// and counts up to 1000 of classes that are one instruction in Go but
    /// a UTF-8 automaton here (`\pL{1000}`). Its compiler recurses per
    /// level, some 10 KiB each in a debug build: deep patterns are compiled
    /// on a thread of their own with a stack to match.
    pub fn compile(&self) -> Result<Regex, String> {
        let build = || {
            RegexBuilder::new(&format!(r"\A(?:{})\z", self.translated))
                .nest_limit(NEST_LIMIT)
                .size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| e.to_string())
        };
        if self.height <= INLINE_HEIGHT {
            return build();
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("regex-compile".into())
                .stack_size(DEEP_STACK)
                .spawn_scoped(scope, build)
                .map_err(|e| format!("cannot start a thread to compile the regex: {e}"))?
                .join()
                .map_err(|_| "compiling the regex failed".to_string())?
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Flags {
    /// `i`: case folding, Go's simple folding orbits (the `regex` crate's too).
    fold: bool,
    /// `m`: `^` and `$` also at line breaks; off in Go's Perl mode.
    multi_line: bool,
    /// `s`: `.` matches `\n`; on, as Prometheus parses with DotNL.
    dot_nl: bool,
    // `U` (ungreedy) is accepted and dropped: a matcher asks whether the
    // whole value matches, which greediness does not change.
}

/// One element of a bracketed class (or a lone `\d`, `\pL`).
#[derive(Debug, Clone, Copy)]
enum ClassItem {
    Range(u32, u32),
    /// One of Go's ASCII tables: `\d`, `\s`, `\w`, `[:alpha:]`…
    Ascii {
        ranges: &'static [(u32, u32)],
        negated: bool,
    },
    /// `\p{…}`, by the `regex` crate's name for the table Go picks.
    Unicode {
        name: &'static str,
        negated: bool,
    },
}

#[derive(Debug)]
enum Kind {
    Empty,
    Literal {
        c: u32,
        fold: bool,
    },
    /// Already written in `regex` syntax: a class, a dot or an assertion.
    /// `char_like` as Go's `isCharClass`: it matches exactly one character.
    Leaf {
        text: String,
        char_like: bool,
    },
    Capture(Box<Node>),
    /// `*`, `+`, `?` (not `counted`) or `{min,max}` (`counted`; only these
    /// count towards Go's limit of 1000).
    Repeat {
        sub: Box<Node>,
        min: u32,
        max: Option<u32>,
        counted: bool,
    },
    Concat(Vec<Node>),
    Alternate(Vec<Node>),
}

/// A node of the tree and its height as Go's parser would measure it.
#[derive(Debug)]
struct Node {
    kind: Kind,
    height: u32,
}

impl Node {
    fn leaf(kind: Kind) -> Node {
        Node { kind, height: 1 }
    }

    fn wrap(sub: Node, make: impl FnOnce(Box<Node>) -> Kind) -> Node {
        let height = sub.height + 1;
        Node {
            kind: make(Box::new(sub)),
            height,
        }
    }

    fn is_literal(&self) -> Option<bool> {
        match self.kind {
            Kind::Literal { fold, .. } => Some(fold),
            _ => None,
        }
    }

    fn is_char_like(&self) -> bool {
        matches!(
            self.kind,
            Kind::Literal { .. }
                | Kind::Leaf {
                    char_like: true,
                    ..
                }
        )
    }

    /// Go hoists a concatenation's concatenations into it, and a run of
    /// literals with the same case flag is one node there.
    fn concat(items: Vec<Node>) -> Node {
        let mut flat = Vec::with_capacity(items.len());
        for item in items {
            match item.kind {
                Kind::Concat(subs) => flat.extend(subs),
                _ => flat.push(item),
            }
        }
        if flat.len() <= 1 {
            return flat.pop().unwrap_or_else(|| Node::leaf(Kind::Empty));
        }
        let fold = flat[0].is_literal();
        let height = if fold.is_some() && flat.iter().all(|n| n.is_literal() == fold) {
            1
        } else {
            1 + flat.iter().map(|n| n.height).max().unwrap_or(0)
        };
        Node {
            kind: Kind::Concat(flat),
            height,
        }
    }

    /// Go hoists nested alternations, and merges alternatives that each
    /// match one character into a single class.
    fn alternate(branches: Vec<Node>) -> Node {
        let mut flat = Vec::with_capacity(branches.len());
        for branch in branches {
            match branch.kind {
                Kind::Alternate(subs) => flat.extend(subs),
                _ => flat.push(branch),
            }
        }
        if flat.len() <= 1 {
            return flat.pop().unwrap_or_else(|| Node::leaf(Kind::Empty));
        }
        let height = if flat.iter().all(Node::is_char_like) {
            1
        } else {
            1 + flat.iter().map(|n| n.height).max().unwrap_or(0)
        };
        Node {
            kind: Kind::Alternate(flat),
            height,
        }
    }

    fn subs(&self) -> &[Node] {
        match &self.kind {
            Kind::Capture(sub) | Kind::Repeat { sub, .. } => std::slice::from_ref(&**sub),
            Kind::Concat(subs) | Kind::Alternate(subs) => subs,
            _ => &[],
        }
    }

    /// Go's rule for counted repetitions: along any path, the product of the
    /// counts (the maximum, or the minimum when unbounded) stays within
    /// `n`; a `{0}` ends the path.
    fn repeat_is_valid(&self, mut n: u32) -> bool {
        if let Kind::Repeat {
            min,
            max,
            counted: true,
            ..
        } = self.kind
        {
            let m = match max {
                Some(0) => return true,
                Some(m) => m,
                None => min,
            };
            if m > n {
                return false;
            }
            // `{0,}` leaves the budget as it is.
            n = n.checked_div(m).unwrap_or(n);
        }
        self.subs().iter().all(|sub| sub.repeat_is_valid(n))
    }

    fn render(&self, out: &mut String) {
        match &self.kind {
            Kind::Empty => out.push_str("(?:)"),
            Kind::Literal { c, fold: false } => push_literal(out, *c),
            Kind::Literal { c, fold: true } => {
                out.push_str("(?i:");
                push_literal(out, *c);
                out.push(')');
            }
            Kind::Leaf { text, .. } => out.push_str(text),
            Kind::Capture(sub) => {
                // Submatches are never read: a plain group.
                out.push_str("(?:");
                sub.render(out);
                out.push(')');
            }
            Kind::Repeat {
                sub,
                min,
                max,
                counted,
            } => {
                out.push_str("(?:");
                sub.render(out);
                out.push(')');
                match (counted, min, max) {
                    (false, 0, None) => out.push('*'),
                    (false, 1, None) => out.push('+'),
                    (false, _, _) => out.push('?'),
                    (true, min, None) => out.push_str(&format!("{{{min},}}")),
                    (true, min, Some(max)) => out.push_str(&format!("{{{min},{max}}}")),
                }
            }
            Kind::Concat(subs) => {
                // Runs of case-folded literals share one group.
                let mut folding = false;
                for sub in subs {
                    match sub.kind {
                        Kind::Literal { c, fold: true } => {
                            if !folding {
                                out.push_str("(?i:");
                                folding = true;
                            }
                            push_literal(out, c);
                        }
                        _ => {
                            if folding {
                                out.push(')');
                                folding = false;
                            }
                            sub.render(out);
                        }
                    }
                }
                if folding {
                    out.push(')');
                }
            }
            Kind::Alternate(subs) => {
                out.push_str("(?:");
                for (i, sub) in subs.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    sub.render(out);
                }
                out.push(')');
            }
        }
    }
}

/// A code point as a `regex` literal: letters, digits and non-ASCII as
/// themselves, ASCII punctuation and controls as `\x{…}` (never special).
fn push_literal(out: &mut String, c: u32) {
    match char::from_u32(c) {
        Some(ch) if ch.is_ascii_alphanumeric() || !ch.is_ascii() => out.push(ch),
        Some(_) => out.push_str(&format!("\\x{{{c:X}}}")),
        None => out.push_str(NEVER),
    }
}

/// A range in a class, without the surrogates the `regex` crate refuses
/// (no valid string holds them, so nothing is lost).
fn push_range(out: &mut String, lo: u32, hi: u32) {
    let mut one = |lo: u32, hi: u32| {
        if lo == hi {
            out.push_str(&format!("\\x{{{lo:X}}}"));
        } else {
            out.push_str(&format!("\\x{{{lo:X}}}-\\x{{{hi:X}}}"));
        }
    };
    if hi < 0xD800 || lo > 0xDFFF {
        one(lo, hi);
        return;
    }
    if lo < 0xD800 {
        one(lo, 0xD7FF);
    }
    if hi > 0xDFFF {
        one(0xE000, hi);
    }
}

/// A class in `regex` syntax. Folding applies to the whole class, each part
/// folded before any negation, as in Go.
fn render_class(items: &[ClassItem], negated: bool, fold: bool) -> String {
    let mut body = String::new();
    for item in items {
        match *item {
            ClassItem::Range(lo, hi) => push_range(&mut body, lo, hi),
            ClassItem::Ascii { ranges, negated } => {
                body.push_str(if negated { "[^" } else { "[" });
                for &(lo, hi) in ranges {
                    push_range(&mut body, lo, hi);
                }
                body.push(']');
            }
            ClassItem::Unicode { name: "", negated } => {
                if negated {
                    push_range(&mut body, 0, 0x10FFFF);
                }
            }
            ClassItem::Unicode { name, negated } => {
                body.push_str(if negated { "\\P{" } else { "\\p{" });
                body.push_str(name);
                body.push('}');
            }
        }
    }
    let class = match (body.is_empty(), negated) {
        // Only surrogates were named.
        (true, false) => NEVER.to_string(),
        (true, true) => "(?s:.)".to_string(),
        (false, false) => format!("[{body}]"),
        (false, true) => format!("[^{body}]"),
    };
    if fold {
        format!("(?i:{class})")
    } else {
        class
    }
}

const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
// Go's `\s` leaves out `\v`; `[:space:]` has it.
const PERL_SPACE: &[(u32, u32)] = &[(0x9, 0xA), (0xC, 0xD), (0x20, 0x20)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];

fn perl_class(name: u8) -> Option<ClassItem> {
    let (ranges, negated) = match name {
        b'd' => (DIGIT, false),
        b'D' => (DIGIT, true),
        b's' => (PERL_SPACE, false),
        b'S' => (PERL_SPACE, true),
        b'w' => (WORD, false),
        b'W' => (WORD, true),
        _ => return None,
    };
    Some(ClassItem::Ascii { ranges, negated })
}

/// `[:name:]` or `[:^name:]`, Go's POSIX classes (ASCII only).
fn posix_class(spelled: &str) -> Option<ClassItem> {
    let name = spelled.strip_prefix("[:")?.strip_suffix(":]")?;
    let (name, negated) = match name.strip_prefix('^') {
        Some(name) => (name, true),
        None => (name, false),
    };
    let ranges: &'static [(u32, u32)] = match name {
        "alnum" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
        "alpha" => &[(0x41, 0x5A), (0x61, 0x7A)],
        "ascii" => &[(0x0, 0x7F)],
        "blank" => &[(0x9, 0x9), (0x20, 0x20)],
        "cntrl" => &[(0x0, 0x1F), (0x7F, 0x7F)],
        "digit" => DIGIT,
        "graph" => &[(0x21, 0x7E)],
        "lower" => &[(0x61, 0x7A)],
        "print" => &[(0x20, 0x7E)],
        "punct" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        "space" => &[(0x9, 0xD), (0x20, 0x20)],
        "upper" => &[(0x41, 0x5A)],
        "word" => WORD,
        "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    };
    Some(ClassItem::Ascii { ranges, negated })
}

/// Go looks `\p{…}` names up after folding them to one spelling: separators
/// (`_`, `-`, space) dropped, the first letter upper case, the rest lower.
fn canonical_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut first = true;
    for &b in name.as_bytes() {
        match b {
            b'_' | b'-' | b' ' => continue,
            _ if first => {
                first = false;
                out.push(b.to_ascii_uppercase());
            }
            _ => out.push(b.to_ascii_lowercase()),
        }
    }
    out
}

fn unicode_class_name(name: &str) -> Option<&'static str> {
    let key = canonical_name(name);
    UNICODE_CLASSES
        .binary_search_by(|(go, _)| go.as_bytes().cmp(&key))
        .ok()
        .map(|i| UNICODE_CLASSES[i].1)
}

/// Every `\p{…}` name Go 1.26 accepts, in its canonical spelling (sorted),
/// with the `regex` crate's name for the same table. Go's general categories
/// and their long aliases; scripts by the Script property (`sc=`), not
/// Script_Extensions, which the `regex` crate uses for bare script names.
/// Scripts whose Go name has an underscore (`Old_Italic`) are missing: Go's
/// lookup folds the name before looking it up and never finds them.
const UNICODE_CLASSES: &[(&str, &str)] = &[
    ("Adlam", "sc=Adlam"),
    ("Ahom", "sc=Ahom"),
    ("Any", "Any"),
    ("Arabic", "sc=Arabic"),
    ("Armenian", "sc=Armenian"),
    ("Ascii", "ASCII"),
    ("Assigned", "Assigned"),
    ("Avestan", "sc=Avestan"),
    ("Balinese", "sc=Balinese"),
    ("Bamum", "sc=Bamum"),
    ("Batak", "sc=Batak"),
    ("Bengali", "sc=Bengali"),
    ("Bhaiksuki", "sc=Bhaiksuki"),
    ("Bopomofo", "sc=Bopomofo"),
    ("Brahmi", "sc=Brahmi"),
    ("Braille", "sc=Braille"),
    ("Buginese", "sc=Buginese"),
    ("Buhid", "sc=Buhid"),
    ("C", "gc=C"),
    ("Carian", "sc=Carian"),
    ("Casedletter", "gc=LC"),
    ("Cc", "gc=Cc"),
    ("Cf", "gc=Cf"),
    ("Chakma", "sc=Chakma"),
    ("Cham", "sc=Cham"),
    ("Cherokee", "sc=Cherokee"),
    ("Chorasmian", "sc=Chorasmian"),
    ("Closepunctuation", "gc=Pe"),
    ("Cn", "gc=Cn"),
    ("Cntrl", "gc=Cc"),
    ("Co", "gc=Co"),
    ("Combiningmark", "gc=M"),
    ("Common", "sc=Common"),
    ("Connectorpunctuation", "gc=Pc"),
    ("Control", "gc=Cc"),
    ("Coptic", "sc=Coptic"),
    // Surrogates: Go has the table, no string holds them (`regex` refuses).
    ("Cs", ""),
    ("Cuneiform", "sc=Cuneiform"),
    ("Currencysymbol", "gc=Sc"),
    ("Cypriot", "sc=Cypriot"),
    ("Cyrillic", "sc=Cyrillic"),
    ("Dashpunctuation", "gc=Pd"),
    ("Decimalnumber", "gc=Nd"),
    ("Deseret", "sc=Deseret"),
    ("Devanagari", "sc=Devanagari"),
    ("Digit", "gc=Nd"),
    ("Dogra", "sc=Dogra"),
    ("Duployan", "sc=Duployan"),
    ("Elbasan", "sc=Elbasan"),
    ("Elymaic", "sc=Elymaic"),
    ("Enclosingmark", "gc=Me"),
    ("Ethiopic", "sc=Ethiopic"),
    ("Finalpunctuation", "gc=Pf"),
    ("Format", "gc=Cf"),
    ("Georgian", "sc=Georgian"),
    ("Glagolitic", "sc=Glagolitic"),
    ("Gothic", "sc=Gothic"),
    ("Grantha", "sc=Grantha"),
    ("Greek", "sc=Greek"),
    ("Gujarati", "sc=Gujarati"),
    ("Gurmukhi", "sc=Gurmukhi"),
    ("Han", "sc=Han"),
    ("Hangul", "sc=Hangul"),
    ("Hanunoo", "sc=Hanunoo"),
    ("Hatran", "sc=Hatran"),
    ("Hebrew", "sc=Hebrew"),
    ("Hiragana", "sc=Hiragana"),
    ("Inherited", "sc=Inherited"),
    ("Initialpunctuation", "gc=Pi"),
    ("Javanese", "sc=Javanese"),
    ("Kaithi", "sc=Kaithi"),
    ("Kannada", "sc=Kannada"),
    ("Katakana", "sc=Katakana"),
    ("Kawi", "sc=Kawi"),
    ("Kharoshthi", "sc=Kharoshthi"),
    ("Khmer", "sc=Khmer"),
    ("Khojki", "sc=Khojki"),
    ("Khudawadi", "sc=Khudawadi"),
    ("L", "gc=L"),
    ("Lao", "sc=Lao"),
    ("Latin", "sc=Latin"),
    ("Lc", "gc=LC"),
    ("Lepcha", "sc=Lepcha"),
    ("Letter", "gc=L"),
    ("Letternumber", "gc=Nl"),
    ("Limbu", "sc=Limbu"),
    ("Lineseparator", "gc=Zl"),
    ("Lisu", "sc=Lisu"),
    ("Ll", "gc=Ll"),
    ("Lm", "gc=Lm"),
    ("Lo", "gc=Lo"),
    ("Lowercaseletter", "gc=Ll"),
    ("Lt", "gc=Lt"),
    ("Lu", "gc=Lu"),
    ("Lycian", "sc=Lycian"),
    ("Lydian", "sc=Lydian"),
    ("M", "gc=M"),
    ("Mahajani", "sc=Mahajani"),
    ("Makasar", "sc=Makasar"),
    ("Malayalam", "sc=Malayalam"),
    ("Mandaic", "sc=Mandaic"),
    ("Manichaean", "sc=Manichaean"),
    ("Marchen", "sc=Marchen"),
    ("Mark", "gc=M"),
    ("Mathsymbol", "gc=Sm"),
    ("Mc", "gc=Mc"),
    ("Me", "gc=Me"),
    ("Medefaidrin", "sc=Medefaidrin"),
    ("Miao", "sc=Miao"),
    ("Mn", "gc=Mn"),
    ("Modi", "sc=Modi"),
    ("Modifierletter", "gc=Lm"),
    ("Modifiersymbol", "gc=Sk"),
    ("Mongolian", "sc=Mongolian"),
    ("Mro", "sc=Mro"),
    ("Multani", "sc=Multani"),
    ("Myanmar", "sc=Myanmar"),
    ("N", "gc=N"),
    ("Nabataean", "sc=Nabataean"),
    ("Nandinagari", "sc=Nandinagari"),
    ("Nd", "gc=Nd"),
    ("Newa", "sc=Newa"),
    ("Nko", "sc=Nko"),
    ("Nl", "gc=Nl"),
    ("No", "gc=No"),
    ("Nonspacingmark", "gc=Mn"),
    ("Number", "gc=N"),
    ("Nushu", "sc=Nushu"),
    ("Ogham", "sc=Ogham"),
    ("Openpunctuation", "gc=Ps"),
    ("Oriya", "sc=Oriya"),
    ("Osage", "sc=Osage"),
    ("Osmanya", "sc=Osmanya"),
    ("Other", "gc=C"),
    ("Otherletter", "gc=Lo"),
    ("Othernumber", "gc=No"),
    ("Otherpunctuation", "gc=Po"),
    ("Othersymbol", "gc=So"),
    ("P", "gc=P"),
    ("Palmyrene", "sc=Palmyrene"),
    ("Paragraphseparator", "gc=Zp"),
    ("Pc", "gc=Pc"),
    ("Pd", "gc=Pd"),
    ("Pe", "gc=Pe"),
    ("Pf", "gc=Pf"),
    ("Phoenician", "sc=Phoenician"),
    ("Pi", "gc=Pi"),
    ("Po", "gc=Po"),
    ("Privateuse", "gc=Co"),
    ("Ps", "gc=Ps"),
    ("Punct", "gc=P"),
    ("Punctuation", "gc=P"),
    ("Rejang", "sc=Rejang"),
    ("Runic", "sc=Runic"),
    ("S", "gc=S"),
    ("Samaritan", "sc=Samaritan"),
    ("Saurashtra", "sc=Saurashtra"),
    ("Sc", "gc=Sc"),
    ("Separator", "gc=Z"),
    ("Sharada", "sc=Sharada"),
    ("Shavian", "sc=Shavian"),
    ("Siddham", "sc=Siddham"),
    ("Sinhala", "sc=Sinhala"),
    ("Sk", "gc=Sk"),
    ("Sm", "gc=Sm"),
    ("So", "gc=So"),
    ("Sogdian", "sc=Sogdian"),
    ("Soyombo", "sc=Soyombo"),
    ("Spaceseparator", "gc=Zs"),
    ("Spacingmark", "gc=Mc"),
    ("Sundanese", "sc=Sundanese"),
    ("Surrogate", ""),
    ("Symbol", "gc=S"),
    ("Syriac", "sc=Syriac"),
    ("Tagalog", "sc=Tagalog"),
    ("Tagbanwa", "sc=Tagbanwa"),
    ("Takri", "sc=Takri"),
    ("Tamil", "sc=Tamil"),
    ("Tangsa", "sc=Tangsa"),
    ("Tangut", "sc=Tangut"),
    ("Telugu", "sc=Telugu"),
    ("Thaana", "sc=Thaana"),
    ("Thai", "sc=Thai"),
    ("Tibetan", "sc=Tibetan"),
    ("Tifinagh", "sc=Tifinagh"),
    ("Tirhuta", "sc=Tirhuta"),
    ("Titlecaseletter", "gc=Lt"),
    ("Toto", "sc=Toto"),
    ("Ugaritic", "sc=Ugaritic"),
    ("Unassigned", "gc=Cn"),
    ("Uppercaseletter", "gc=Lu"),
    ("Vai", "sc=Vai"),
    ("Vithkuqi", "sc=Vithkuqi"),
    ("Wancho", "sc=Wancho"),
    ("Yezidi", "sc=Yezidi"),
    ("Yi", "sc=Yi"),
    ("Z", "gc=Z"),
    ("Zl", "gc=Zl"),
    ("Zp", "gc=Zp"),
    ("Zs", "gc=Zs"),
];

/// An open group: its alternatives so far and the items of the current one.
struct Frame {
    capture: bool,
    /// Flags to restore at `)`: `(?i)` inside a group ends with it.
    saved: Flags,
    branches: Vec<Node>,
    items: Vec<Node>,
}

struct Parser<'a> {
    s: &'a str,
    flags: Flags,
    /// Never empty: the bottom frame is the whole pattern.
    frames: Vec<Frame>,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Parser<'a> {
        let flags = Flags {
            fold: false,
            multi_line: false,
            dot_nl: true,
        };
        Parser {
            s,
            flags,
            frames: vec![Frame {
                capture: false,
                saved: flags,
                branches: Vec::new(),
                items: Vec::new(),
            }],
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    fn char_at(&self, i: usize) -> char {
        self.s[i..].chars().next().unwrap_or('\u{FFFD}')
    }

    fn items(&mut self) -> &mut Vec<Node> {
        let last = self.frames.len() - 1;
        &mut self.frames[last].items
    }

    /// Go refuses a tree taller than 1000 as soon as a node makes it so.
    fn check(&self, node: Node) -> Result<Node, Error> {
        if node.height > MAX_HEIGHT {
            return err(ErrorKind::NestingDepth, self.s);
        }
        Ok(node)
    }

    fn push(&mut self, node: Node) {
        self.items().push(node);
    }

    fn push_leaf(&mut self, text: &str, char_like: bool) {
        self.push(Node::leaf(Kind::Leaf {
            text: text.to_string(),
            char_like,
        }));
    }

    fn literal(&mut self, c: u32) {
        let fold = self.flags.fold;
        self.push(Node::leaf(Kind::Literal { c, fold }));
    }

    fn open(&mut self, capture: bool) {
        self.frames.push(Frame {
            capture,
            saved: self.flags,
            branches: Vec::new(),
            items: Vec::new(),
        });
    }

    /// The alternation of a frame's branches, current one included.
    fn finish(&self, mut frame: Frame) -> Result<Node, Error> {
        let last = self.check(Node::concat(frame.items))?;
        frame.branches.push(last);
        self.check(Node::alternate(frame.branches))
    }

    fn parse(mut self) -> Result<Node, Error> {
        let s = self.s;
        let b = self.bytes();
        let mut i = 0;
        // Where the previous token started if it was a repetition operator:
        // Go refuses one directly after another (`a**`, `a{2}{3}`).
        let mut last_repeat: Option<usize> = None;
        while i < b.len() {
            let mut repeat = None;
            match b[i] {
                b'(' if b.get(i + 1) == Some(&b'?') => i = self.perl_group(i)?,
                b'(' => {
                    self.open(true);
                    i += 1;
                }
                b'|' => {
                    let items = std::mem::take(self.items());
                    let branch = self.check(Node::concat(items))?;
                    let last = self.frames.len() - 1;
                    self.frames[last].branches.push(branch);
                    i += 1;
                }
                b')' => {
                    if self.frames.len() == 1 {
                        return err(ErrorKind::UnexpectedParen, s);
                    }
                    let Some(frame) = self.frames.pop() else {
                        return err(ErrorKind::UnexpectedParen, s);
                    };
                    self.flags = frame.saved;
                    let capture = frame.capture;
                    let mut node = self.finish(frame)?;
                    if capture {
                        node = self.check(Node::wrap(node, Kind::Capture))?;
                    }
                    self.push(node);
                    i += 1;
                }
                b'^' if self.flags.multi_line => {
                    self.push_leaf("(?m:^)", false);
                    i += 1;
                }
                b'^' => {
                    self.push_leaf(r"\A", false);
                    i += 1;
                }
                b'$' if self.flags.multi_line => {
                    self.push_leaf("(?m:$)", false);
                    i += 1;
                }
                b'$' => {
                    self.push_leaf(r"\z", false);
                    i += 1;
                }
                b'.' if self.flags.dot_nl => {
                    self.push_leaf("(?s:.)", true);
                    i += 1;
                }
                b'.' => {
                    self.push_leaf(r"[^\n]", true);
                    i += 1;
                }
                b'[' => i = self.class(i)?,
                op @ (b'*' | b'+' | b'?') => {
                    let (min, max) = match op {
                        b'*' => (0, None),
                        b'+' => (1, None),
                        _ => (0, Some(1)),
                    };
                    let start = i;
                    i = self.repeat(min, max, false, i, i + 1, last_repeat)?;
                    repeat = Some(start);
                }
                b'{' => match parse_repeat(b, i) {
                    // Not a count: a literal `{`.
                    None => {
                        self.literal(u32::from('{'));
                        i += 1;
                    }
                    Some((min, max, after)) => {
                        if !(0..=MAX_REPEAT as i64).contains(&min)
                            || max > MAX_REPEAT as i64
                            || (max >= 0 && min > max)
                        {
                            return err(ErrorKind::InvalidRepeatSize, &s[i..after]);
                        }
                        let start = i;
                        let max = u32::try_from(max).ok();
                        i = self.repeat(min as u32, max, true, i, after, last_repeat)?;
                        repeat = Some(start);
                    }
                },
                b'\\' => i = self.escape(i)?,
                _ => {
                    let c = self.char_at(i);
                    self.literal(u32::from(c));
                    i += c.len_utf8();
                }
            }
            last_repeat = repeat;
        }
        let Some(frame) = self.frames.pop() else {
            return err(ErrorKind::MissingParen, s);
        };
        let node = self.finish(frame)?;
        if !self.frames.is_empty() {
            return err(ErrorKind::MissingParen, s);
        }
        // Prometheus then compiles `^(?s:…)$`: one level more, unless the
        // tree is a concatenation, which takes `^` and `$` in.
        let wrapped = node.height + u32::from(!matches!(node.kind, Kind::Concat(_)));
        if wrapped > MAX_HEIGHT {
            return err(ErrorKind::NestingDepth, &format!("^(?s:{s})$"));
        }
        Ok(node)
    }

    /// Applies a repetition to the item before it; returns where parsing
    /// goes on (after a trailing `?`, which makes it lazy in Go).
    fn repeat(
        &mut self,
        min: u32,
        max: Option<u32>,
        counted: bool,
        before: usize,
        after: usize,
        last_repeat: Option<usize>,
    ) -> Result<usize, Error> {
        let s = self.s;
        let after = if s.as_bytes().get(after) == Some(&b'?') {
            after + 1
        } else {
            after
        };
        if let Some(last) = last_repeat {
            return err(ErrorKind::InvalidRepeatOp, &s[last..after]);
        }
        let Some(sub) = self.items().pop() else {
            return err(ErrorKind::MissingRepeatArgument, &s[before..after]);
        };
        let node = self.check(Node::wrap(sub, |sub| Kind::Repeat {
            sub,
            min,
            max,
            counted,
        }))?;
        if counted && (min >= 2 || max.is_some_and(|m| m >= 2)) && !node.repeat_is_valid(MAX_REPEAT)
        {
            return err(ErrorKind::InvalidRepeatSize, &s[before..after]);
        }
        self.push(node);
        Ok(after)
    }

    /// `(?…`: a named capture, a non-capturing group, flags, or both.
    fn perl_group(&mut self, i: usize) -> Result<usize, Error> {
        let t = &self.s[i..];
        let tb = t.as_bytes();
        let with_p = tb.len() > 4 && tb[2] == b'P' && tb[3] == b'<';
        let with_name = tb.len() > 3 && tb[2] == b'<';
        if with_p || with_name {
            let start = if with_p { 4 } else { 3 };
            let Some(end) = t.find('>') else {
                return err(ErrorKind::InvalidNamedCapture, t);
            };
            let name = &t[start..end];
            if name.is_empty() || !name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric()) {
                return err(ErrorKind::InvalidNamedCapture, &t[..=end]);
            }
            self.open(true);
            return Ok(i + end + 1);
        }
        let mut flags = self.flags;
        let mut j = i + 2;
        let mut negated = false;
        let mut saw_flag = false;
        while j < self.s.len() {
            let c = self.char_at(j);
            j += c.len_utf8();
            match c {
                'i' => flags.fold = !negated,
                'm' => flags.multi_line = !negated,
                's' => flags.dot_nl = !negated,
                'U' => {}
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                    continue;
                }
                ':' | ')' if !negated || saw_flag => {
                    if c == ':' {
                        self.open(false);
                    }
                    self.flags = flags;
                    return Ok(j);
                }
                _ => break,
            }
            saw_flag = true;
        }
        err(ErrorKind::InvalidPerlOp, &self.s[i..j])
    }

    /// `\…` outside a class.
    fn escape(&mut self, i: usize) -> Result<usize, Error> {
        let s = self.s;
        match self.bytes().get(i + 1) {
            Some(b'A') => self.push_leaf(r"\A", false),
            // Go's word boundaries are ASCII ones.
            Some(b'b') => self.push_leaf(r"(?-u:\b)", false),
            Some(b'B') => self.push_leaf(r"(?-u:\B)", false),
            // Any byte: Go refuses it.
            Some(b'C') => return err(ErrorKind::InvalidEscape, &s[i..i + 2]),
            Some(b'Q') => {
                let quoted = &s[i + 2..];
                let (text, next) = match quoted.find(r"\E") {
                    Some(end) => (&quoted[..end], i + 2 + end + 2),
                    None => (quoted, s.len()),
                };
                // One item per character, as in Go: `\Qab\E*` repeats `b`.
                for c in text.chars() {
                    self.literal(u32::from(c));
                }
                return Ok(next);
            }
            Some(b'z') => self.push_leaf(r"\z", false),
            Some(b'p' | b'P') => {
                let (item, next) = self.unicode_class(i)?;
                let text = render_class(&[item], false, self.flags.fold);
                self.push_leaf(&text, true);
                return Ok(next);
            }
            Some(&c) if perl_class(c).is_some() => {
                if let Some(item) = perl_class(c) {
                    let text = render_class(&[item], false, self.flags.fold);
                    self.push_leaf(&text, true);
                }
            }
            _ => {
                let (c, next) = self.parse_escape(i)?;
                self.literal(c);
                return Ok(next);
            }
        }
        Ok(i + 2)
    }

    /// A single-character escape at `i` (the backslash): its code point and
    /// where it ends.
    fn parse_escape(&self, i: usize) -> Result<(u32, usize), Error> {
        let s = self.s;
        let b = self.bytes();
        let mut t = i + 1;
        if t >= b.len() {
            return err(ErrorKind::TrailingBackslash, "");
        }
        let c = self.char_at(t);
        t += c.len_utf8();
        let octal = |t: usize| b.get(t).copied().filter(|d| (b'0'..=b'7').contains(d));
        match c {
            // `\1`…`\7` alone would be backreferences: refused. With more
            // digits, and from `\0`, up to three octal digits.
            '0'..='7' if c == '0' || octal(t).is_some() => {
                let mut r = u32::from(c) - u32::from('0');
                for _ in 1..3 {
                    match octal(t) {
                        Some(d) => {
                            r = r * 8 + u32::from(d - b'0');
                            t += 1;
                        }
                        None => break,
                    }
                }
                return Ok((r, t));
            }
            'x' if t < b.len() => {
                let c = self.char_at(t);
                t += c.len_utf8();
                if c == '{' {
                    // `\x{…}`: at least one hex digit, at most U+10FFFF.
                    let mut r: u32 = 0;
                    let mut digits = 0;
                    loop {
                        if t >= b.len() {
                            return err(ErrorKind::InvalidEscape, &s[i..t]);
                        }
                        let c = self.char_at(t);
                        t += c.len_utf8();
                        if c == '}' {
                            break;
                        }
                        match c.to_digit(16) {
                            Some(v) if r * 16 + v <= 0x10FFFF => r = r * 16 + v,
                            _ => return err(ErrorKind::InvalidEscape, &s[i..t]),
                        }
                        digits += 1;
                    }
                    if digits > 0 {
                        return Ok((r, t));
                    }
                } else {
                    // Exactly two hex digits.
                    let x = c.to_digit(16);
                    let y = if t < b.len() {
                        let c = self.char_at(t);
                        t += c.len_utf8();
                        c.to_digit(16)
                    } else {
                        None
                    };
                    if let (Some(x), Some(y)) = (x, y) {
                        return Ok((x * 16 + y, t));
                    }
                }
            }
            'a' => return Ok((0x7, t)),
            'f' => return Ok((0xC, t)),
            'n' => return Ok((0xA, t)),
            'r' => return Ok((0xD, t)),
            't' => return Ok((0x9, t)),
            'v' => return Ok((0xB, t)),
            // Escaped ASCII punctuation is itself; escaped letters, digits
            // and non-ASCII are refused unless listed above.
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => return Ok((u32::from(c), t)),
            _ => {}
        }
        err(ErrorKind::InvalidEscape, &s[i..t])
    }

    /// `\pN`, `\p{Name}`, `\PN`, `\P{Name}`, `\p{^Name}` at `i`.
    fn unicode_class(&self, i: usize) -> Result<(ClassItem, usize), Error> {
        let s = self.s;
        let mut negated = s.as_bytes()[i + 1] == b'P';
        let t = i + 2;
        let (name, end) = if s.as_bytes().get(t) == Some(&b'{') {
            match s[i..].find('}') {
                Some(close) => (&s[i + 3..i + close], i + close + 1),
                None => return err(ErrorKind::InvalidCharRange, &s[i..]),
            }
        } else {
            let len = s[t..].chars().next().map_or(0, char::len_utf8);
            (&s[t..t + len], t + len)
        };
        let name = match name.strip_prefix('^') {
            Some(name) => {
                negated = !negated;
                name
            }
            None => name,
        };
        match unicode_class_name(name) {
            Some(name) => Ok((ClassItem::Unicode { name, negated }, end)),
            None => err(ErrorKind::InvalidCharRange, &s[i..end]),
        }
    }

    /// `[…]` at `i`; returns where parsing goes on.
    fn class(&mut self, i: usize) -> Result<usize, Error> {
        let s = self.s;
        let b = self.bytes();
        let mut t = i + 1;
        let negated = b.get(t) == Some(&b'^');
        if negated {
            t += 1;
        }
        let mut items = Vec::new();
        // `]` first is a literal; `-` is a literal where it cannot be a range.
        let mut first = true;
        while t >= b.len() || b[t] != b']' || first {
            first = false;
            if b.len() - t > 2 && b[t] == b'[' && b[t + 1] == b':' {
                if let Some(len) = s[t + 2..].find(":]") {
                    let spelled = &s[t..t + 2 + len + 2];
                    match posix_class(spelled) {
                        Some(item) => items.push(item),
                        None => return err(ErrorKind::InvalidCharRange, spelled),
                    }
                    t += spelled.len();
                    continue;
                }
            }
            if b.len() - t >= 2 && b[t] == b'\\' && matches!(b[t + 1], b'p' | b'P') {
                let (item, next) = self.unicode_class(t)?;
                items.push(item);
                t = next;
                continue;
            }
            if b.len() - t >= 2 && b[t] == b'\\' {
                if let Some(item) = perl_class(b[t + 1]) {
                    items.push(item);
                    t += 2;
                    continue;
                }
            }
            let start = t;
            let (lo, next) = self.class_char(t, i)?;
            t = next;
            let mut hi = lo;
            if b.len() - t >= 2 && b[t] == b'-' && b[t + 1] != b']' {
                let (c, next) = self.class_char(t + 1, i)?;
                t = next;
                if c < lo {
                    return err(ErrorKind::InvalidCharRange, &s[start..t]);
                }
                hi = c;
            }
            items.push(ClassItem::Range(lo, hi));
        }
        let text = render_class(&items, negated, self.flags.fold);
        self.push_leaf(&text, true);
        Ok(t + 1)
    }

    fn class_char(&self, t: usize, class_start: usize) -> Result<(u32, usize), Error> {
        match self.bytes().get(t) {
            None => err(ErrorKind::MissingBracket, &self.s[class_start..]),
            Some(b'\\') => self.parse_escape(t),
            Some(_) => {
                let c = self.char_at(t);
                Ok((u32::from(c), t + c.len_utf8()))
            }
        }
    }
}

/// `{n}`, `{n,}` or `{n,m}` at `i`: `(min, max or -1, end)`; `None` if it is
/// not one (then `{` is a literal). A number of 10^8 or more reads as -1.
fn parse_repeat(b: &[u8], i: usize) -> Option<(i64, i64, usize)> {
    let (mut min, mut j) = parse_int(b, i + 1)?;
    let max;
    match b.get(j)? {
        b',' => {
            j += 1;
            if *b.get(j)? == b'}' {
                max = -1;
            } else {
                let (m, next) = parse_int(b, j)?;
                j = next;
                max = m;
                if m < 0 {
                    min = -1;
                }
            }
        }
        _ => max = min,
    }
    (*b.get(j)? == b'}').then_some((min, max, j + 1))
}

/// A decimal number without leading zeros.
fn parse_int(b: &[u8], i: usize) -> Option<(i64, usize)> {
    if !b.get(i)?.is_ascii_digit() {
        return None;
    }
    if b[i] == b'0' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let end = i + b[i..].iter().take_while(|d| d.is_ascii_digit()).count();
    let mut n: i64 = 0;
    for &d in &b[i..end] {
        if n >= 100_000_000 {
            n = -1;
            break;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some((n, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pattern and Go's verdict: the samples it matches or not, or the
    /// reason it is refused.
    type Case = (
        &'static str,
        Result<&'static [(&'static str, bool)], &'static str>,
    );
    /// As `Case`, accepted, with samples as `(unit, times, matches)`.
    type LongCase = (&'static str, &'static [(&'static str, usize, bool)]);

    fn regex(pattern: &str) -> Result<Regex, String> {
        let translated = translate(pattern).map_err(|e| e.to_string())?;
        translated
            .compile()
            .map_err(|e| format!("{}: {e}", translated.as_str()))
    }

    fn check(pattern: &str, want: Result<Vec<(String, bool)>, String>) -> Vec<String> {
        let mut failures = Vec::new();
        match (regex(pattern), want) {
            (Ok(re), Ok(samples)) => {
                for (sample, matches) in samples {
                    if re.is_match(&sample) != matches {
                        failures.push(format!("{pattern:?} on {sample:?}: want {matches}"));
                    }
                }
            }
            (Err(got), Err(want)) if got == format!("error parsing regexp: {want}") => {}
            (got, want) => failures.push(format!(
                "{pattern:?}: got {:?}, want {want:?}",
                got.map(|r| r.to_string())
            )),
        }
        failures
    }

    #[test]
    fn go_verdicts() {
        let mut failures = Vec::new();
        for (pattern, want) in GO_CASES {
            let want = want
                .map(|s| s.iter().map(|(s, m)| (s.to_string(), *m)).collect())
                .map_err(str::to_string);
            failures.extend(check(pattern, want));
        }
        for (pattern, samples) in GO_LONG_CASES {
            let want = samples
                .iter()
                .map(|(unit, times, m)| (unit.repeat(*times), *m))
                .collect();
            failures.extend(check(pattern, Ok(want)));
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Nesting at Go's limit, verdicts from Go as for `GO_CASES`; the
    /// accepted ones also compile here, from a test thread's 2 MiB stack.
    #[test]
    fn nesting_depth_as_go() {
        let nested = |n: usize, open: &str, inner: &str, close: &str, tail: &str| {
            format!("{}{inner}{}{tail}", open.repeat(n), close.repeat(n))
        };
        let x1000a = format!("{}a", "x".repeat(1000));
        let cases = [
            // Captures: `^(?s:…)$` puts the root one level down...
            (nested(998, "(", "a", ")", ""), Some("a")),
            (nested(999, "(", "a", ")", ""), None),
            (nested(1000, "(", "a", ")", ""), None),
            // ... unless it is a concatenation, which takes `^` and `$` in.
            (nested(998, "(", "a", ")", "b"), Some("ab")),
            (nested(999, "(", "a", ")", "b"), None),
            (nested(499, "(", "a", ")*", ""), Some("aa")),
            (nested(500, "(", "a", ")*", ""), None),
            (nested(997, "(?:", "a*", ")*", ""), Some("aa")),
            (nested(998, "(?:", "a*", ")*", ""), None),
            // Plain groups, and concatenations in concatenations, add none.
            (nested(5000, "(?:", "a", ")", ""), Some("a")),
            (nested(1000, "x(?:", "a", ")", ""), Some(x1000a.as_str())),
            // An alternation of single characters is one class in Go.
            (nested(500, "(?:a|b", "", ")", ""), Some("a")),
            (nested(501, "(?:a|b", "", ")", ""), None),
        ];
        for (pattern, sample) in cases {
            let head = &pattern[..12];
            match (regex(&pattern), sample) {
                (Ok(re), Some(sample)) => assert!(re.is_match(sample), "{head}…"),
                (Err(e), None) => assert!(
                    e.starts_with("error parsing regexp: expression nests too deeply: `"),
                    "{head}…: {}",
                    &e[..80]
                ),
                (Ok(_), None) => panic!("{head}… ({} bytes): accepted", pattern.len()),
                (Err(e), Some(_)) => panic!("{head}… ({} bytes): {}", pattern.len(), &e[..80]),
            }
        }
    }

    #[test]
    fn surrogates_never_match() {
        // Go accepts them; its matcher sometimes takes U+FFFD for one.
        for pattern in [
            r"\x{D800}",
            r"[\x{D800}]",
            r"\x{DFFF}+",
            r"[\x{D800}-\x{DFFF}]",
        ] {
            let re = regex(pattern).unwrap();
            assert!(!re.is_match("\u{FFFD}") && !re.is_match(""), "{pattern}");
        }
        assert!(regex(r"[^\x{D800}]").unwrap().is_match("a"));
    }

    #[test]
    fn every_unicode_name_compiles_and_the_table_is_sorted() {
        for pair in UNICODE_CLASSES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{pair:?}");
        }
        for (go, name) in UNICODE_CLASSES.iter().filter(|(_, n)| !n.is_empty()) {
            assert!(Regex::new(&format!(r"\p{{{name}}}")).is_ok(), "{go}");
            assert_eq!(unicode_class_name(go), Some(*name));
        }
    }

    #[test]
    fn errors_read_as_go_writes_them() {
        let e = translate("a**").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRepeatOp);
        assert_eq!(
            e.to_string(),
            "error parsing regexp: invalid nested repetition operator: `**`"
        );
    }

    #[test]
    fn big_counts_of_unicode_classes_compile() {
        let re = regex(r"\pL{1000}").unwrap();
        assert!(re.is_match(&"é".repeat(1000)));
        assert!(!re.is_match(&"é".repeat(999)));
    }
    /// Generated from Go 1.26's verdicts: `syntax.Parse(p, Perl|DotNL)`, then
    /// `regexp.Compile("^(?s:" + parsed.String() + ")$").MatchString(sample)`.
    /// `Err` holds Go's message after `error parsing regexp: `.
    const GO_CASES: &[Case] = &[
        (
            r".",
            Ok(&[(r"a", true), ("\n", true), (r"", false), (r"ab", false)]),
        ),
        (
            r"[xyz]",
            Ok(&[(r"x", true), (r"z", true), (r"a", false), (r"xy", false)]),
        ),
        (
            r"[^xyz]",
            Ok(&[(r"a", true), (r"x", false), ("\n", true), (r"", false)]),
        ),
        (
            r"\d",
            Ok(&[
                (r"5", true),
                (r"a", false),
                ("\u{663}", false),
                (r"", false),
            ]),
        ),
        (
            r"\D",
            Ok(&[(r"5", false), (r"a", true), ("\u{663}", true), ("\n", true)]),
        ),
        (
            r"[[:alpha:]]",
            Ok(&[(r"a", true), (r"Z", true), (r"5", false), ("é", false)]),
        ),
        (
            r"[[:^alpha:]]",
            Ok(&[(r"a", false), (r"5", true), ("é", true), ("\n", true)]),
        ),
        (
            r"\pN",
            Ok(&[
                (r"5", true),
                ("\u{663}", true),
                ("\u{2167}", true),
                (r"a", false),
            ]),
        ),
        (
            r"\p{Greek}",
            Ok(&[
                ("α", true),
                ("Ω", true),
                (r"a", false),
                (r"", false),
                ("\u{342}", false),
            ]),
        ),
        (r"\p{Cs}", Ok(&[("\u{fffd}", false), (r"a", false)])),
        (
            r"\p{digit}",
            Ok(&[(r"5", true), (r"a", false), ("\u{663}", true)]),
        ),
        (r"\p{Common}", Ok(&[(r"1", true), (r"a", false)])),
        (
            r"\p{Zzzz}",
            Err(r"invalid character class range: `\p{Zzzz}`"),
        ),
        (r"\p{Nko}", Ok(&[("\u{7c0}", true), (r"a", false)])),
        (
            r"\PN",
            Ok(&[(r"5", false), (r"a", true), ("\u{663}", false)]),
        ),
        (r"\P{Greek}", Ok(&[("α", false), (r"a", true)])),
        (r"\p{^Greek}", Ok(&[("α", false), (r"a", true)])),
        (r"\P{^Greek}", Ok(&[("α", true), (r"a", false)])),
        (r"\p{greek}", Ok(&[("α", true), (r"a", false)])),
        (
            r"\p{Old_Italic}",
            Err(r"invalid character class range: `\p{Old_Italic}`"),
        ),
        (
            r"\p{OldItalic}",
            Err(r"invalid character class range: `\p{OldItalic}`"),
        ),
        (r"\p{Letter}", Ok(&[(r"a", true), (r"5", false)])),
        (
            r"\p{Cased_Letter}",
            Ok(&[(r"a", true), ("\u{1c5}", true), ("\u{2b0}", false)]),
        ),
        (r"\p{LC}", Ok(&[(r"a", true), ("\u{2b0}", false)])),
        (r"\p{L&}", Err(r"invalid character class range: `\p{L&}`")),
        (r"\p{Any}", Ok(&[(r"a", true), ("\n", true)])),
        (r"\p{Assigned}", Ok(&[(r"a", true), ("\u{e0080}", false)])),
        (r"\p{ASCII}", Ok(&[(r"a", true), ("é", false)])),
        (r"\p{Cn}", Ok(&[(r"a", false), ("\u{e0080}", true)])),
        (r"\p{Han}+", Ok(&[("日本", true), (r"a", false)])),
        (r"\p{Foo}", Err(r"invalid character class range: `\p{Foo}`")),
        (
            r"\p{Greek",
            Err(r"invalid character class range: `\p{Greek`"),
        ),
        (r"\pX", Err(r"invalid character class range: `\pX`")),
        (r"\p", Err(r"invalid character class range: `\p`")),
        (r"\pZ", Ok(&[(r" ", true), (r"a", false)])),
        (
            r"\p{Garay}",
            Err(r"invalid character class range: `\p{Garay}`"),
        ),
        (
            r"\p{Script=Greek}",
            Err(r"invalid character class range: `\p{Script=Greek}`"),
        ),
        (
            r"\p{sc=Greek}",
            Err(r"invalid character class range: `\p{sc=Greek}`"),
        ),
        (
            r"\p{Alphabetic}",
            Err(r"invalid character class range: `\p{Alphabetic}`"),
        ),
        (
            r"\p{White_Space}",
            Err(r"invalid character class range: `\p{White_Space}`"),
        ),
        (r"\p{L}", Ok(&[(r"a", true), (r"5", false)])),
        (r"\p{lu}", Ok(&[(r"A", true), (r"a", false)])),
        (r"\p{ l u }", Ok(&[(r"A", true), (r"a", false)])),
        (r"xy", Ok(&[(r"xy", true), (r"x", false), (r"xyx", false)])),
        (
            r"x|y",
            Ok(&[(r"x", true), (r"y", true), (r"xy", false), (r"", false)]),
        ),
        (r"a|", Ok(&[(r"a", true), (r"", true), (r"b", false)])),
        (r"|a", Ok(&[(r"a", true), (r"", true), (r"b", false)])),
        (r"|", Ok(&[(r"", true), (r"a", false)])),
        (r"", Ok(&[(r"", true), (r"a", false)])),
        (
            r"x*",
            Ok(&[(r"", true), (r"x", true), (r"xxx", true), (r"xy", false)]),
        ),
        (r"x+", Ok(&[(r"", false), (r"x", true), (r"xxx", true)])),
        (r"x?", Ok(&[(r"", true), (r"x", true), (r"xx", false)])),
        (
            r"x{2,3}",
            Ok(&[
                (r"x", false),
                (r"xx", true),
                (r"xxx", true),
                (r"xxxx", false),
            ]),
        ),
        (
            r"x{2,}",
            Ok(&[(r"x", false), (r"xx", true), (r"xxxxx", true)]),
        ),
        (
            r"x{2}",
            Ok(&[(r"x", false), (r"xx", true), (r"xxx", false)]),
        ),
        (r"x*?", Ok(&[(r"", true), (r"xx", true)])),
        (r"x+?", Ok(&[(r"", false), (r"xx", true)])),
        (r"x??", Ok(&[(r"", true), (r"x", true)])),
        (r"x{2,3}?", Ok(&[(r"xx", true), (r"xxxx", false)])),
        (r"x{2,}?", Ok(&[(r"x", false), (r"xxx", true)])),
        (r"x{2}?", Ok(&[(r"xx", true), (r"x", false)])),
        (r"x{0}", Ok(&[(r"", true), (r"x", false)])),
        (r"x{0,0}", Ok(&[(r"", true), (r"x", false)])),
        (r"x{1001}", Err(r"invalid repeat count: `{1001}`")),
        (r"x{0,1001}", Err(r"invalid repeat count: `{0,1001}`")),
        (r"x{1001,}", Err(r"invalid repeat count: `{1001,}`")),
        (r"x{2,1}", Err(r"invalid repeat count: `{2,1}`")),
        (r"x{,3}", Ok(&[(r"x{,3}", true), (r"xxx", false)])),
        (r"x{01}", Ok(&[(r"x{01}", true), (r"x", false)])),
        (r"x{1", Ok(&[(r"x{1", true), (r"x", false)])),
        (r"x{1,2", Ok(&[(r"x{1,2", true)])),
        (r"x{a}", Ok(&[(r"x{a}", true)])),
        (r"x{}", Ok(&[(r"x{}", true)])),
        (r"{", Ok(&[(r"{", true)])),
        (r"}", Ok(&[(r"}", true)])),
        (
            r"x{99999999999}",
            Err(r"invalid repeat count: `{99999999999}`"),
        ),
        (r"x{100000000}", Err(r"invalid repeat count: `{100000000}`")),
        (
            r"x{2}{3}",
            Err(r"invalid nested repetition operator: `{2}{3}`"),
        ),
        (r"x{2}*", Err(r"invalid nested repetition operator: `{2}*`")),
        (r"x*{2}", Err(r"invalid nested repetition operator: `*{2}`")),
        (r"x*{1001}", Err(r"invalid repeat count: `{1001}`")),
        (r"a**", Err(r"invalid nested repetition operator: `**`")),
        (r"a++", Err(r"invalid nested repetition operator: `++`")),
        (r"a*+", Err(r"invalid nested repetition operator: `*+`")),
        (r"a?*", Err(r"invalid nested repetition operator: `?*`")),
        (r"a???", Err(r"invalid nested repetition operator: `???`")),
        (r"a*?*", Err(r"invalid nested repetition operator: `*?*`")),
        (r"a*??", Err(r"invalid nested repetition operator: `*??`")),
        (r"a+?+?", Err(r"invalid nested repetition operator: `+?+?`")),
        (r"(a*)*", Ok(&[(r"", true), (r"aaa", true), (r"b", false)])),
        (
            r"(?:a*)*",
            Ok(&[(r"", true), (r"aaa", true), (r"b", false)]),
        ),
        (r"(?:a+)+", Ok(&[(r"", false), (r"aaa", true)])),
        (
            r"a*(?i)*",
            Ok(&[(r"", true), (r"aaa", true), (r"A", false)]),
        ),
        (r"a*(?:)*", Ok(&[(r"", true), (r"aaa", true)])),
        (r"a*\Q\E*", Ok(&[(r"", true), (r"aaa", true)])),
        (r"**", Err(r"missing argument to repetition operator: `*`")),
        (r"*", Err(r"missing argument to repetition operator: `*`")),
        (r"+a", Err(r"missing argument to repetition operator: `+`")),
        (r"?", Err(r"missing argument to repetition operator: `?`")),
        (r"*?", Err(r"missing argument to repetition operator: `*?`")),
        (r"(*)", Err(r"missing argument to repetition operator: `*`")),
        (r"a|*", Err(r"missing argument to repetition operator: `*`")),
        (
            r"(?i)*",
            Err(r"missing argument to repetition operator: `*`"),
        ),
        (
            r"((?i)*)",
            Err(r"missing argument to repetition operator: `*`"),
        ),
        (
            r"{2}",
            Err(r"missing argument to repetition operator: `{2}`"),
        ),
        (
            r"a|{2}",
            Err(r"missing argument to repetition operator: `{2}`"),
        ),
        (
            r"{2}?",
            Err(r"missing argument to repetition operator: `{2}?`"),
        ),
        (r"^*", Ok(&[(r"", true), (r"a", false)])),
        (r"$+", Ok(&[(r"", true), (r"a", false)])),
        (r"\b*", Ok(&[(r"", true)])),
        (r"x{1001}{2}", Err(r"invalid repeat count: `{1001}`")),
        (r"(x{2}){501}", Err(r"invalid repeat count: `{501}`")),
        (r"((x{10}){10}){11}", Err(r"invalid repeat count: `{11}`")),
        (r"(x{0}){1000}", Ok(&[(r"", true), (r"x", false)])),
        (r"(x*){1000}", Ok(&[(r"", true), (r"xx", true)])),
        (r"(x{2,}){600}", Err(r"invalid repeat count: `{600}`")),
        (r"((x{2}){0}){1000}", Ok(&[(r"", true)])),
        (r"((x{1000}){0,}){2}", Err(r"invalid repeat count: `{2}`")),
        (r"(x{1000}|y){2}", Err(r"invalid repeat count: `{2}`")),
        (r"(x{2}y{3}){400}", Err(r"invalid repeat count: `{400}`")),
        (r"(a)", Ok(&[(r"a", true), (r"b", false)])),
        (r"(?P<name>a)", Ok(&[(r"a", true), (r"b", false)])),
        (r"(?<name>a)", Ok(&[(r"a", true), (r"b", false)])),
        (r"(?P<n1>a)(?P<n1>b)", Ok(&[(r"ab", true)])),
        (r"(?P<na-me>a)", Err(r"invalid named capture: `(?P<na-me>`")),
        (r"(?P<>a)", Err(r"invalid named capture: `(?P<>`")),
        (r"(?<>a)", Err(r"invalid named capture: `(?<>`")),
        ("(?P<é>a)", Err("invalid named capture: `(?P<é>`")),
        (r"(?P<name>a", Err(r"missing closing ): `(?P<name>a`")),
        (r"(?P<name", Err(r"invalid named capture: `(?P<name`")),
        (r"(?P<", Err(r"invalid or unsupported Perl syntax: `(?P`")),
        (r"(?<", Err(r"invalid or unsupported Perl syntax: `(?<`")),
        (r"(?P", Err(r"invalid or unsupported Perl syntax: `(?P`")),
        (
            r"(?P=name)",
            Err(r"invalid or unsupported Perl syntax: `(?P`"),
        ),
        (
            r"(?P>name)",
            Err(r"invalid or unsupported Perl syntax: `(?P`"),
        ),
        (r"(?:a)", Ok(&[(r"a", true), (r"b", false)])),
        (
            r"(?i)abc",
            Ok(&[(r"ABC", true), (r"aBc", true), (r"abd", false)]),
        ),
        (r"(?i:a)b", Ok(&[(r"Ab", true), (r"AB", false)])),
        (r"(?s:.)", Ok(&[("\n", true)])),
        (r"(?-s:.)", Ok(&[("\n", false), (r"a", true)])),
        (r"(?-s).", Ok(&[("\n", false), (r"a", true)])),
        (r"(?-s)a|.", Ok(&[("\n", false)])),
        (r"(?:(?-s)a|.)", Ok(&[("\n", false)])),
        (r"(?:(?-s)a)|.", Ok(&[("\n", true)])),
        (
            r"(?m)^a$",
            Ok(&[(r"a", true), ("b\na", false), ("a\nb", false)]),
        ),
        ("(?m:^a$)\n(?m:^b$)", Ok(&[("a\nb", true)])),
        ("^a$\n^b$", Ok(&[("a\nb", false)])),
        ("(?m)a$\n^b", Ok(&[("a\nb", true)])),
        (r"a$", Ok(&[(r"a", true), ("a\n", false)])),
        (r"(?U)a+", Ok(&[(r"aaa", true)])),
        (r"(?U)a+?", Ok(&[(r"aaa", true)])),
        (
            r"(?x)a b",
            Err(r"invalid or unsupported Perl syntax: `(?x`"),
        ),
        (r"(?u)a", Err(r"invalid or unsupported Perl syntax: `(?u`")),
        (
            r"(?i-)a",
            Err(r"invalid or unsupported Perl syntax: `(?i-)`"),
        ),
        (r"(?-)a", Err(r"invalid or unsupported Perl syntax: `(?-)`")),
        (r"(?)a", Ok(&[(r"a", true)])),
        (
            r"(?--i)a",
            Err(r"invalid or unsupported Perl syntax: `(?--`"),
        ),
        (r"(?i-i)a", Ok(&[(r"a", true), (r"A", false)])),
        (r"(?i-s:.)", Ok(&[("\n", false), (r"A", true)])),
        (r"(?is)a.", Ok(&[("A\n", true)])),
        (r"(?", Err(r"invalid or unsupported Perl syntax: `(?`")),
        (r"(?i", Err(r"invalid or unsupported Perl syntax: `(?i`")),
        (r"(?=a)", Err(r"invalid or unsupported Perl syntax: `(?=`")),
        (r"(?!a)", Err(r"invalid or unsupported Perl syntax: `(?!`")),
        (r"(?<=a)b", Err(r"invalid named capture: `(?<=a)b`")),
        (r"(?<!a)b", Err(r"invalid named capture: `(?<!a)b`")),
        (r"(?>a)", Err(r"invalid or unsupported Perl syntax: `(?>`")),
        (r"(?#c)", Err(r"invalid or unsupported Perl syntax: `(?#`")),
        (
            r"(?'n'a)",
            Err(r"invalid or unsupported Perl syntax: `(?'`"),
        ),
        (r"(?|a)", Err(r"invalid or unsupported Perl syntax: `(?|`")),
        (r"(a", Err(r"missing closing ): `(a`")),
        (r"a)", Err(r"unexpected ): `a)`")),
        (r")", Err(r"unexpected ): `)`")),
        (r"(", Err(r"missing closing ): `(`")),
        (r"()", Ok(&[(r"", true), (r"a", false)])),
        (r"(|)", Ok(&[(r"", true), (r"a", false)])),
        (r"(?:)", Ok(&[(r"", true)])),
        (
            r"(?i)(?-i:A)a",
            Ok(&[(r"AA", true), (r"Aa", true), (r"aa", false)]),
        ),
        (
            r"((?i)a)A",
            Ok(&[(r"aA", true), (r"AA", true), (r"Aa", false)]),
        ),
        (
            r"(?:(?i)a|b)",
            Ok(&[(r"A", true), (r"B", true), (r"b", true)]),
        ),
        (r"(?i)(a)b", Ok(&[(r"AB", true)])),
        (r"^a", Ok(&[(r"a", true)])),
        (r"\Aa", Ok(&[(r"a", true)])),
        (r"a\z", Ok(&[(r"a", true)])),
        (r"\ba\b", Ok(&[(r"a", true)])),
        (r"a\Bb", Ok(&[(r"ab", true)])),
        (r"a\b", Ok(&[(r"a", true)])),
        ("é\\b", Ok(&[("é", false)])),
        ("a\\bé", Ok(&[("aé", true)])),
        (r"\Z", Err(r"invalid escape sequence: `\Z`")),
        (r"\G", Err(r"invalid escape sequence: `\G`")),
        (r"\C", Err(r"invalid escape sequence: `\C`")),
        (r"\z", Ok(&[(r"", true)])),
        (r"\Ab", Ok(&[])),
        (r"a^b", Ok(&[(r"ab", false)])),
        (r"a$b", Ok(&[(r"ab", false)])),
        (r"\a\f\t\n\r\v", Ok(&[("\u{7}\u{c}\t\n\r\u{b}", true)])),
        (
            r"\*\+\?\.\(\)\[\]\{\}\|\^\$\\",
            Ok(&[(r"*+?.()[]{}|^$\", true)]),
        ),
        (r"\_", Ok(&[(r"_", true)])),
        (r"\-", Ok(&[(r"-", true)])),
        (r"\<\>\#\ \~\&", Ok(&[(r"<># ~&", true)])),
        (r"\q", Err(r"invalid escape sequence: `\q`")),
        (r"\e", Err(r"invalid escape sequence: `\e`")),
        (r"\b", Ok(&[(r"", false)])),
        (r"\123", Ok(&[(r"S", true)])),
        (r"\0", Ok(&[("\0", true), (r"0", false)])),
        (r"\012", Ok(&[("\n", true)])),
        (r"\08", Ok(&[("\08", true)])),
        (r"\1", Err(r"invalid escape sequence: `\1`")),
        (r"\12", Ok(&[("\n", true)])),
        (r"\18", Err(r"invalid escape sequence: `\1`")),
        (r"\8", Err(r"invalid escape sequence: `\8`")),
        (r"\400", Ok(&[("\u{100}", true)])),
        (r"\777", Ok(&[("\u{1ff}", true)])),
        (r"\1234", Ok(&[(r"S4", true)])),
        (r"\x7F", Ok(&[("\u{7f}", true)])),
        (r"\x7", Err(r"invalid escape sequence: `\x7`")),
        (r"\x", Err(r"invalid escape sequence: `\x`")),
        (r"\xZZ", Err(r"invalid escape sequence: `\xZZ`")),
        (r"\x{10FFFF}", Ok(&[("\u{10ffff}", true)])),
        (r"\x{110000}", Err(r"invalid escape sequence: `\x{110000`")),
        (r"\x{}", Err(r"invalid escape sequence: `\x{}`")),
        (r"\x{zz}", Err(r"invalid escape sequence: `\x{z`")),
        (r"\x{41", Err(r"invalid escape sequence: `\x{41`")),
        (r"\x{0041}", Ok(&[(r"A", true)])),
        (
            r"[\x{D800}-\x{E000}]",
            Ok(&[("\u{e000}", true), ("\u{d7ff}", false)]),
        ),
        (r"\Q.*\E", Ok(&[(r".*", true), (r"ab", false)])),
        (r"\Qa|b", Ok(&[(r"a|b", true), (r"a", false)])),
        (r"\Q\E", Ok(&[(r"", true)])),
        (
            r"\Q\E*",
            Err(r"missing argument to repetition operator: `*`"),
        ),
        (r"a\Q*\E+", Ok(&[(r"a**", true), (r"a", false)])),
        (
            r"\Qab\E*",
            Ok(&[(r"a", true), (r"abb", true), (r"abab", false)]),
        ),
        (r"\Q\\E", Ok(&[(r"\", true)])),
        (r"\Q(?i)\E", Ok(&[(r"(?i)", true)])),
        (r"\", Err(r"trailing backslash at end of expression: ``")),
        (r"a\", Err(r"trailing backslash at end of expression: ``")),
        ("\\é", Err("invalid escape sequence: `\\é`")),
        ("\\xé", Err("invalid escape sequence: `\\xé`")),
        ("\\pé", Err("invalid character class range: `\\pé`")),
        (r"[a-z]", Ok(&[(r"m", true), (r"M", false)])),
        (r"[z-a]", Err(r"invalid character class range: `z-a`")),
        (r"[a-]", Ok(&[(r"a", true), (r"-", true)])),
        (r"[-a]", Ok(&[(r"-", true)])),
        (r"[a-b-c]", Ok(&[(r"-", true), (r"c", true), (r"b", true)])),
        (r"[]a]", Ok(&[(r"]", true), (r"a", true)])),
        (r"[^]a]", Ok(&[(r"]", false), (r"b", true)])),
        (r"[]", Err(r"missing closing ]: `[]`")),
        (r"[^]", Err(r"missing closing ]: `[^]`")),
        (r"[a", Err(r"missing closing ]: `[a`")),
        (r"[a-", Err(r"missing closing ]: `[a-`")),
        (r"[\", Err(r"trailing backslash at end of expression: ``")),
        (r"[\d]", Ok(&[(r"5", true)])),
        (r"[^\d]", Ok(&[(r"5", false), (r"a", true)])),
        (r"[\D]", Ok(&[(r"5", false), (r"a", true)])),
        (r"[^\D]", Ok(&[(r"5", true), (r"a", false)])),
        (r"[[:alpha:]]", Ok(&[(r"a", true)])),
        (r"[^[:alpha:]]", Ok(&[(r"a", false), (r"5", true)])),
        (
            r"[[:foo:]]",
            Err(r"invalid character class range: `[:foo:]`"),
        ),
        (r"[[:alpha:]", Err(r"missing closing ]: `[[:alpha:]`")),
        (r"[[:alpha:", Err(r"missing closing ]: `[[:alpha:`")),
        (r"[[:word:]]", Ok(&[(r"_", true), ("é", false)])),
        (r"[[:^space:]]", Ok(&[(r" ", false), (r"a", true)])),
        (r"[[:space:]]", Ok(&[("\u{b}", true), (r" ", true)])),
        (r"[\p{Greek}]", Ok(&[("α", true)])),
        (r"[^\p{Greek}]", Ok(&[("α", false), (r"a", true)])),
        (r"[\pL]", Ok(&[(r"a", true), (r"5", false)])),
        (
            r"[\p{Foo}]",
            Err(r"invalid character class range: `\p{Foo}`"),
        ),
        (r"[a&&b]", Ok(&[(r"&", true), (r"a", true), (r"b", true)])),
        (r"[a--b]", Err(r"invalid character class range: `a--`")),
        (r"[a~~b]", Ok(&[(r"~", true)])),
        (r"[[a]]", Ok(&[(r"[]", true), (r"a]", true), (r"a", false)])),
        (r"[a[]", Ok(&[(r"[", true), (r"a", true)])),
        (r"[\b]", Err(r"invalid escape sequence: `\b`")),
        (r"[\Q]\E]", Err(r"invalid escape sequence: `\Q`")),
        (r"[a-\d]", Err(r"invalid escape sequence: `\d`")),
        (r"[\d-z]", Ok(&[(r"-", true), (r"z", true), (r"5", true)])),
        (r"[\x00-\x{10FFFF}]", Ok(&[(r"a", true), ("\n", true)])),
        (r"[^\x00-\x{10FFFF}]", Ok(&[(r"a", false), (r"", false)])),
        (r"[\n]", Ok(&[("\n", true)])),
        (r"[.]", Ok(&[(r".", true), (r"a", false)])),
        (r"[*]", Ok(&[(r"*", true)])),
        (r"[\]]", Ok(&[(r"]", true)])),
        (r"[\-]", Ok(&[(r"-", true)])),
        (r"[\^]", Ok(&[(r"^", true)])),
        (r"[^^]", Ok(&[(r"^", false), (r"a", true)])),
        (
            r"\s",
            Ok(&[
                ("\u{b}", false),
                (r" ", true),
                ("\t", true),
                ("\u{a0}", false),
            ]),
        ),
        (r"[\s]", Ok(&[("\u{b}", false)])),
        (r"\S", Ok(&[("\u{b}", true), (r"a", true)])),
        (r"\w", Ok(&[(r"_", true), ("é", false), (r"a", true)])),
        (r"\W", Ok(&[(r"_", false), ("é", true)])),
        (r"[\w]", Ok(&[("é", false)])),
        (r"[\W]", Ok(&[("é", true)])),
        (r"[\s\S]", Ok(&[("\n", true)])),
        (r"[\d\D]", Ok(&[(r"x", true)])),
        (
            r"(?i)k",
            Ok(&[(r"K", true), (r"k", true), ("\u{212a}", true)]),
        ),
        (r"(?i)[k]", Ok(&[(r"K", true), ("\u{212a}", true)])),
        (
            r"(?i)[^k]",
            Ok(&[(r"K", false), ("\u{212a}", false), (r"a", true)]),
        ),
        (r"(?i)\w", Ok(&[("\u{212a}", true), ("\u{17f}", true)])),
        (r"(?i)\W", Ok(&[("\u{212a}", false), ("\u{17f}", false)])),
        (r"(?i)[^\W]", Ok(&[("\u{212a}", true)])),
        (r"(?i)[[:upper:]]", Ok(&[(r"a", true), ("\u{212a}", true)])),
        (r"(?i)\p{Lu}", Ok(&[(r"a", true), (r"A", true)])),
        (
            r"(?i)\P{Lu}",
            Ok(&[(r"a", false), (r"A", false), (r"5", true)]),
        ),
        (r"(?i)[^\P{Lu}]", Ok(&[(r"a", true), (r"A", true)])),
        (r"(?i)\p{ASCII}", Ok(&[("\u{212a}", true), ("é", false)])),
        ("(?i)é", Ok(&[("É", true)])),
        ("(?i)σ", Ok(&[("Σ", true), ("ς", true)])),
        (r"(?i)[a-c]+", Ok(&[(r"ABC", true)])),
        (r"a.c", Ok(&[("a\nc", true), (r"abc", true)])),
        (r"(?-s)a.c", Ok(&[("a\nc", false), (r"abc", true)])),
        ("é+", Ok(&[("éé", true), (r"e", false)])),
        ("日本", Ok(&[("日本", true)])),
        (r".*", Ok(&[(r"", true), ("anything\nat all", true)])),
        (r"a.*", Ok(&[(r"abc", true), (r"ba", false)])),
        (
            r"foo|bar|baz",
            Ok(&[(r"foo", true), (r"bar", true), (r"ba", false)]),
        ),
        (r"foo|b.r", Ok(&[(r"foo", true), (r"bxr", true)])),
        (
            r"abc|abd",
            Ok(&[(r"abc", true), (r"abd", true), (r"ab", false)]),
        ),
        (
            r"(a|b)*c",
            Ok(&[(r"ababc", true), (r"c", true), (r"abd", false)]),
        ),
        (r"a{2}|b{3}", Ok(&[(r"aa", true), (r"bbb", true)])),
        ("\t", Ok(&[("\t", true)])),
        (r" ", Ok(&[(r" ", true)])),
        (r"#", Ok(&[(r"#", true)])),
        (r"a b", Ok(&[(r"a b", true)])),
    ];

    /// As `GO_CASES`, with long samples written as `(unit, times, matches)`.
    const GO_LONG_CASES: &[LongCase] = &[
        (r"x{1000}", &[(r"x", 1000, true), (r"x", 999, false)]),
        (r"x{0,1000}", &[(r"", 0, true), (r"x", 1000, true)]),
        (
            r"x{1000,}",
            &[(r"x", 1000, true), (r"x", 1001, true), (r"x", 999, false)],
        ),
        (r"(x{2}){500}", &[(r"x", 1000, true), (r"x", 998, false)]),
        (r"((x{10}){10}){10}", &[(r"x", 1000, true)]),
        (r"(x{1,}){1000}", &[(r"x", 1000, true), (r"x", 999, false)]),
        (r"(x{2,}){500}", &[(r"x", 1000, true)]),
        (r"(x{1000}|y){1}", &[(r"x", 1000, true), (r"y", 1, true)]),
        (r"(x{1,2}){500}", &[(r"x", 500, true)]),
        (r"(x{2}y{2}){500}", &[(r"xxyy", 500, true)]),
    ];
}
