//! Diagnostics: what `guichet check` reports about a definition.
//!
//! Every problem has a stable [`Code`] (documented in `docs/diagnostics/<CODE>.md`), a span in
//! the source, a label, and where possible a help line saying how to fix it. The checker never
//! stops at the first problem: it collects them all, so a desk designer fixes a file in one go.

use std::fmt;

use miette::{LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

/// A byte range in the definition source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }

    pub fn end(self) -> usize {
        self.offset + self.len
    }
}

impl From<SourceSpan> for Span {
    fn from(s: SourceSpan) -> Self {
        Span::new(s.offset(), s.len())
    }
}

impl From<Span> for SourceSpan {
    fn from(s: Span) -> Self {
        SourceSpan::new(s.offset.into(), s.len)
    }
}

/// How bad a diagnostic is: errors stop a definition from being deployed, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $severity:ident, $title:literal; )*) => {
        /// The stable identifier of a kind of problem. Codes are never reused or renumbered:
        /// scripts and documentation refer to them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( #[doc = $title] $variant, )*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The code as written in diagnostics and docs, e.g. `G0012`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$severity, )* }
            }

            /// A one-line summary, the title of the code's documentation page.
            pub fn title(self) -> &'static str {
                match self { $( Code::$variant => $title, )* }
            }
        }
    };
}

codes! {
    KdlSyntax = "G0001", Error, "The file is not valid KDL";
    FileTooLarge = "G0002", Error, "The file is larger than the limit";
    TooDeep = "G0003", Error, "Blocks are nested deeper than the limit";
    TooManyNodes = "G0004", Error, "The file has more nodes than the limit";
    StringTooLong = "G0005", Error, "A string is longer than the limit";
    NotUtf8 = "G0006", Error, "The file is not UTF-8 text";
    UnknownNode = "G0010", Error, "Unknown node";
    UnknownProperty = "G0011", Error, "Unknown property";
    DuplicateProperty = "G0012", Error, "A property is given twice";
    Missing = "G0013", Error, "A required value is missing";
    WrongType = "G0014", Error, "A value has the wrong type";
    InvalidId = "G0015", Error, "An identifier is not well formed";
    DuplicateId = "G0016", Error, "Two things share one identifier";
    UnexpectedArgument = "G0017", Error, "Unexpected argument";
    DuplicateNode = "G0018", Error, "A node that may appear once appears twice";
    InvalidValue = "G0019", Error, "A value is not one of those allowed";
    UnknownRole = "G0020", Error, "Unknown role";
    UnknownTemplate = "G0021", Error, "Unknown template";
    UnknownStep = "G0022", Error, "Unknown step";
    UnknownField = "G0023", Error, "Unknown field";
    UnknownOutcome = "G0024", Error, "Unknown outcome";
    UnknownProvider = "G0025", Error, "Unknown provider";
    BadDuration = "G0026", Error, "A duration is not a valid ISO 8601 duration";
    BadExpression = "G0027", Error, "A condition does not parse";
    UnknownName = "G0028", Error, "A condition names something that does not exist";
    GateWithoutDefault = "G0029", Error, "A gate has no default branch";
    BadStart = "G0030", Error, "The start step is missing, repeated, misplaced or jumped to";
    UnknownKpi = "G0031", Error, "Unknown indicator";
    EmptyBlock = "G0033", Error, "A block has no steps";
    Unreachable = "G0040", Error, "A step can never be reached";
    NoEnd = "G0041", Error, "No end can be reached from a step";
    EndlessLoop = "G0042", Error, "A loop has no way out";
    LeavesBranch = "G0043", Error, "A jump leaves a parallel branch before it is joined";
    EntersBranch = "G0044", Error, "A jump enters a parallel branch from outside";
    EndInBranch = "G0045", Error, "An end inside a parallel branch";
    FallsOffEnd = "G0046", Error, "The process can run past its last step";
    NoDeadline = "G0100", Warning, "A human task has no deadline";
    RoleWithoutMembers = "G0101", Warning, "A role has no member";
    ReminderAfterDeadline = "G0102", Warning, "A reminder or escalation does not fit the deadline";
    MaybeUnset = "G0103", Warning, "A condition reads a value that may not be set yet";
    UnusedRole = "G0104", Warning, "A role is declared but never used";
    Untranslated = "G0105", Warning, "A translation leaves texts untranslated";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    /// Other places worth showing (e.g. the first declaration of a duplicate id).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            span,
            label: "here".to_owned(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line only if there is one to give.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Wraps the diagnostic with its named source so that miette can render
    /// `file.kdl:line:col` and the offending snippet.
    pub fn with_source<'a>(&'a self, file: &str, source: &str) -> Rendered<'a> {
        Rendered {
            diagnostic: self,
            source: NamedSource::new(file, source.to_owned()),
        }
    }

    /// The machine-readable form used by `guichet check --format json`.
    pub fn to_json(&self, file: &str, source: &str) -> serde_json::Value {
        let (line, column) = line_col(source, self.span.offset);
        serde_json::json!({
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": file,
            "line": line,
            "column": column,
            "offset": self.span.offset,
            "length": self.span.len,
            "label": self.label,
            "help": self.help,
            "docs": format!("docs/diagnostics/{}.md", self.code),
        })
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let mut start = offset;
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let before = &source[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A diagnostic joined to its source, ready for miette's renderers.
#[derive(Debug)]
pub struct Rendered<'a> {
    diagnostic: &'a Diagnostic,
    source: NamedSource<String>,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn url<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(format!(
            "docs/diagnostics/{}.md",
            self.diagnostic.code
        )))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(
            Some(self.diagnostic.label.clone()),
            SourceSpan::from(self.diagnostic.span),
        );
        let related = self
            .diagnostic
            .related
            .iter()
            .map(|(span, label)| LabeledSpan::new_with_span(Some(label.clone()), *span));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// Renders diagnostics as text the way `guichet check` prints them. `color` is off for goldens
/// and pipes; `width` fixes the wrapping so the output is stable.
pub fn render(diagnostics: &[Diagnostic], file: &str, source: &str, color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for d in diagnostics {
        let rendered = d.with_source(file, source);
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &rendered);
    }
    out
}

/// The collector every stage writes into.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        // Source order, then code, so output is stable and reads top to bottom.
        self.items.sort_by_key(|d| (d.span.offset, d.code));
        self.items.dedup();
        self.items
    }
}
