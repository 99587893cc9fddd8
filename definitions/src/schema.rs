//! Reading KDL nodes against the shape a definition expects: which properties and arguments a
//! node takes, of which types, and which children. Every mistake becomes a diagnostic and
//! reading goes on, so one run reports everything.

use kdl::{KdlEntry, KdlNode, KdlValue};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Span};
use crate::duration::IsoDuration;
use crate::limits;
use crate::suggest::did_you_mean;

/// A string with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    pub text: String,
    pub span: Span,
}

/// The properties and arguments of one node, checked for duplicates and unknown names.
pub(crate) struct Props<'a> {
    node: &'a KdlNode,
    pub args: Vec<&'a KdlEntry>,
    props: Vec<(&'a str, &'a KdlEntry)>,
}

pub(crate) fn node_name(node: &KdlNode) -> &str {
    node.name().value()
}

pub(crate) fn node_span(node: &KdlNode) -> Span {
    node.span().into()
}

/// The span of a node's name, for labels that should not cover the whole block.
pub(crate) fn name_span(node: &KdlNode) -> Span {
    node.name().span().into()
}

impl<'a> Props<'a> {
    /// Splits a node's entries, reporting duplicate and unknown properties.
    pub fn read(node: &'a KdlNode, allowed: &[&str], diags: &mut Diagnostics) -> Self {
        let mut args = Vec::new();
        let mut props: Vec<(&str, &KdlEntry)> = Vec::new();
        for entry in node.entries() {
            match entry.name() {
                None => args.push(entry),
                Some(name) => {
                    let key = name.value();
                    if let Some((_, first)) = props.iter().find(|(k, _)| *k == key) {
                        diags.push(
                            Diagnostic::new(
                                Code::DuplicateProperty,
                                entry.span().into(),
                                format!("`{key}` is given twice on `{}`", node_name(node)),
                            )
                            .label("given again here")
                            .related(first.span().into(), "first given here")
                            .help("keep one of them: KDL would silently use the last one"),
                        );
                        continue;
                    }
                    if !allowed.contains(&key) {
                        let mut d = Diagnostic::new(
                            Code::UnknownProperty,
                            name.span().into(),
                            format!("`{}` has no property `{key}`", node_name(node)),
                        )
                        .label("unknown property");
                        d = match did_you_mean(key, allowed.iter().copied()) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None if allowed.is_empty() => {
                                d.help(format!("`{}` takes no properties", node_name(node)))
                            }
                            None => d.help(format!("allowed here: {}", allowed.join(", "))),
                        };
                        diags.push(d);
                        continue;
                    }
                    props.push((key, entry));
                }
            }
        }
        for entry in node.entries() {
            check_string_length(entry, diags);
        }
        Props { node, args, props }
    }

    pub fn entry(&self, key: &str) -> Option<&'a KdlEntry> {
        self.props.iter().find(|(k, _)| *k == key).map(|(_, e)| *e)
    }

    /// Reports arguments beyond the first `n`.
    pub fn at_most_args(&self, n: usize, what: &str, diags: &mut Diagnostics) {
        for extra in self.args.iter().skip(n) {
            diags.push(
                Diagnostic::new(
                    Code::UnexpectedArgument,
                    extra.span().into(),
                    format!("`{}` takes {what}", node_name(self.node)),
                )
                .label("unexpected argument"),
            );
        }
    }

    /// The first argument, which must be a string (an id or a title).
    pub fn arg_string(&self, what: &str, diags: &mut Diagnostics) -> Option<Name> {
        match self.args.first() {
            None => {
                diags.push(
                    Diagnostic::new(
                        Code::Missing,
                        name_span(self.node),
                        format!("`{}` needs {what}", node_name(self.node)),
                    )
                    .label(format!("{what} missing"))
                    .help(format!(
                        "write it after the node name: {} \"...\"",
                        node_name(self.node)
                    )),
                );
                None
            }
            Some(e) => entry_string(e, what, diags),
        }
    }

    pub fn string(&self, key: &str, diags: &mut Diagnostics) -> Option<Name> {
        self.entry(key).and_then(|e| entry_string(e, key, diags))
    }

    pub fn required_string(
        &self,
        key: &str,
        example: &str,
        diags: &mut Diagnostics,
    ) -> Option<Name> {
        if self.entry(key).is_none() {
            diags.push(
                Diagnostic::new(
                    Code::Missing,
                    name_span(self.node),
                    format!("`{}` needs `{key}`", node_name(self.node)),
                )
                .label(format!("`{key}` missing"))
                .help(format!("add {key}={example}")),
            );
            return None;
        }
        self.string(key, diags)
    }

    pub fn bool(&self, key: &str, diags: &mut Diagnostics) -> Option<bool> {
        let e = self.entry(key)?;
        match e.value() {
            KdlValue::Bool(b) => Some(*b),
            other => {
                diags.push(wrong_type(e, key, "#true or #false", other));
                None
            }
        }
    }

    pub fn number(&self, key: &str, diags: &mut Diagnostics) -> Option<f64> {
        let e = self.entry(key)?;
        match e.value() {
            #[allow(clippy::cast_precision_loss)]
            KdlValue::Integer(i) => Some(*i as f64),
            KdlValue::Float(f) if f.is_finite() => Some(*f),
            other => {
                diags.push(wrong_type(e, key, "a number", other));
                None
            }
        }
    }

    pub fn integer(&self, key: &str, max: u32, diags: &mut Diagnostics) -> Option<u32> {
        let e = self.entry(key)?;
        match e.value() {
            KdlValue::Integer(i) if *i >= 1 && *i <= i128::from(max) => u32::try_from(*i).ok(),
            other => {
                diags.push(wrong_type(
                    e,
                    key,
                    &format!("a whole number from 1 to {max}"),
                    other,
                ));
                None
            }
        }
    }

    pub fn duration(&self, key: &str, diags: &mut Diagnostics) -> Option<(IsoDuration, Span)> {
        let name = self.string(key, diags)?;
        parse_duration(&name, diags).map(|d| (d, name.span))
    }

    /// A property whose value must be one of `choices`.
    pub fn choice<T: Copy>(
        &self,
        key: &str,
        choices: &[(&str, T)],
        diags: &mut Diagnostics,
    ) -> Option<T> {
        let name = self.string(key, diags)?;
        pick(&name, key, choices, diags)
    }
}

pub(crate) fn pick<T: Copy>(
    name: &Name,
    what: &str,
    choices: &[(&str, T)],
    diags: &mut Diagnostics,
) -> Option<T> {
    if let Some((_, v)) = choices.iter().find(|(n, _)| *n == name.text) {
        return Some(*v);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    diags.push(
        Diagnostic::new(
            Code::InvalidValue,
            name.span,
            format!("`{}` is not a valid {what}", name.text),
        )
        .label("not allowed")
        .help(match did_you_mean(&name.text, names.iter().copied()) {
            Some(s) => format!("did you mean \"{s}\"? (one of: {})", names.join(", ")),
            None => format!("use one of: {}", names.join(", ")),
        }),
    );
    None
}

pub(crate) fn parse_duration(name: &Name, diags: &mut Diagnostics) -> Option<IsoDuration> {
    match name.text.parse::<IsoDuration>() {
        Ok(d) if d.is_zero() => {
            diags.push(
                Diagnostic::new(Code::BadDuration, name.span, "a zero duration")
                    .label("zero")
                    .help("give a positive duration, e.g. \"P5D\""),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            diags.push(
                Diagnostic::new(
                    Code::BadDuration,
                    name.span,
                    format!("`{}` is not a duration", name.text),
                )
                .label("not an ISO 8601 duration")
                .help(e.0),
            );
            None
        }
    }
}

pub(crate) fn entry_string(e: &KdlEntry, what: &str, diags: &mut Diagnostics) -> Option<Name> {
    match e.value() {
        KdlValue::String(s) => Some(Name {
            text: s.clone(),
            span: e.span().into(),
        }),
        other => {
            diags.push(wrong_type(e, what, "a string", other));
            None
        }
    }
}

fn wrong_type(e: &KdlEntry, what: &str, expected: &str, got: &KdlValue) -> Diagnostic {
    let got = match got {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    };
    let hint = if expected == "#true or #false" {
        "KDL booleans are written #true and #false".to_owned()
    } else if expected == "a string" {
        "put the value in double quotes".to_owned()
    } else {
        format!("write {expected}")
    };
    Diagnostic::new(
        Code::WrongType,
        e.span().into(),
        format!("`{what}` must be {expected}, not {got}"),
    )
    .label(format!("expected {expected}"))
    .help(hint)
}

fn check_string_length(e: &KdlEntry, diags: &mut Diagnostics) {
    if let KdlValue::String(s) = e.value()
        && s.len() > limits::MAX_STRING_CHARS
        && s.chars().count() > limits::MAX_STRING_CHARS
    {
        diags.push(
            Diagnostic::new(
                Code::StringTooLong,
                e.span().into(),
                format!(
                    "this string has {} characters, more than the limit of {}",
                    s.chars().count(),
                    limits::MAX_STRING_CHARS
                ),
            )
            .label("too long")
            .help("shorten it; long guidance belongs in the desk's documentation, linked by URL"),
        );
    }
}

/// Checks an id: ASCII letter first, then letters, digits, `-` or `_`; at most 64 characters.
pub(crate) fn check_id(name: &Name, what: &str, diags: &mut Diagnostics) -> bool {
    let t = &name.text;
    let ok = t.len() <= limits::MAX_ID_CHARS
        && t.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !t.ends_with('-')
        && !t.contains("--");
    if !ok {
        let suggestion = slug(t);
        diags.push(
            Diagnostic::new(
                Code::InvalidId,
                name.span,
                format!("`{t}` is not a valid {what} id"),
            )
            .label("not a valid id")
            .help(format!(
                "an id starts with a letter and uses only ASCII letters, digits, '-' and '_' \
                 (at most {} characters){}; put the text people read in title=\"...\"",
                limits::MAX_ID_CHARS,
                if suggestion.is_empty() || suggestion == *t {
                    String::new()
                } else {
                    format!(", e.g. \"{suggestion}\"")
                }
            )),
        );
    }
    ok
}

/// A plausible id for a text: lowercase ASCII, accents dropped, spaces to hyphens.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' => 'e',
            'î' | 'ï' | 'Î' => 'i',
            'ô' | 'ö' | 'Ô' => 'o',
            'ù' | 'û' | 'ü' | 'Û' => 'u',
            'ç' | 'Ç' => 'c',
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => '-',
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_end_matches('-').to_owned();
    out.chars().take(limits::MAX_ID_CHARS).collect()
}

/// Reports a child node that is not allowed in this block.
pub(crate) fn unknown_child(
    node: &KdlNode,
    parent: &str,
    allowed: &[&str],
    diags: &mut Diagnostics,
) {
    let name = node_name(node);
    diags.push(
        Diagnostic::new(
            Code::UnknownNode,
            name_span(node),
            format!("`{name}` is not allowed in {parent}"),
        )
        .label("unknown here")
        .help(match did_you_mean(name, allowed.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("allowed in {parent}: {}", allowed.join(", ")),
        }),
    );
}

/// Reports children on a node that takes none.
pub(crate) fn no_children(node: &KdlNode, diags: &mut Diagnostics) {
    if let Some(children) = node.children()
        && let Some(first) = children.nodes().first()
    {
        diags.push(
            Diagnostic::new(
                Code::UnknownNode,
                name_span(first),
                format!("`{}` takes no block", node_name(node)),
            )
            .label("unexpected")
            .help("remove the { ... } block"),
        );
    }
}
