//! Conditions of gates and count indicators, written in CEL (the Common Expression Language,
//! cel.dev): a small, specified, side-effect-free language, here through the `cel` crate.
//!
//! Names in a condition are step ids: `recevabilite.outcome == 'recevable'`,
//! `demande.type-projet == 'industriel'`, `negociation.count > 2`. Ids may contain hyphens, as
//! everywhere in a definition; CEL identifiers cannot, so before compiling, a hyphen written
//! between two letters of a name (`faisabilite-juridique`) is read as part of the name. To
//! subtract, put spaces around the minus (`a - b`). The rewriting keeps every character in
//! place, so positions in diagnostics stay exact.
//!
//! Every name is checked at load time against the steps, their fields and outcomes, and every
//! string compared to an outcome or a choice field against the declared values.

use std::fmt;

use cel::Program;
use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use serde::Serialize;

use crate::diagnostic::Span;

/// Functions a condition may call (CEL standard functions and macros available here).
pub const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "has",
    "exists",
    "exists_one",
    "all",
    "map",
    "filter",
];

/// A compiled condition.
pub struct Condition {
    /// As written.
    pub text: String,
    /// Where the text of the expression sits in the definition source.
    pub span: Span,
    program: Program,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("text", &self.text)
            .field("span", &self.span)
            .finish()
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Condition {
    /// The compiled CEL program. Variables are the step ids passed through [`cel_name`].
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Every name path the condition reads (`["demande", "type-projet"]`), with its span in
    /// the definition source. Names are given back with their hyphens.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        let mut bound = Vec::new();
        walk(
            &self.program,
            &self.program.expression().expr,
            self.program.expression().id,
            &mut bound,
            &mut |r| out.push(r),
            self.span.offset,
            &self.text,
        );
        out
    }

    /// Names of functions called (operators excluded), with spans.
    pub fn functions(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        collect_calls(
            &self.program,
            &self.program.expression().expr,
            self.program.expression().id,
            self.span.offset,
            &mut out,
        );
        out
    }
}

/// A name read by a condition, and the string literals it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub path: Vec<String>,
    pub span: Span,
    /// Strings this name is compared with (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in [...]`),
    /// with their spans.
    pub compared_with: Vec<(String, Span)>,
    /// The other literals it is compared with, by type (`number` or `yes-no`), with their
    /// spans.
    pub compared_with_kinds: Vec<(&'static str, Span)>,
    /// Another name it is compared with, and where that name is written.
    pub compared_with_name: Option<(Vec<String>, Span)>,
    /// Whether the read is guarded by `has(...)`.
    pub guarded: bool,
}

/// The CEL identifier for a definition id: hyphens become underscores.
pub fn cel_name(id: &str) -> String {
    id.replace('-', "_")
}

/// Why a condition could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub span: Span,
    /// How to fix it, when the mistake is a usual one.
    pub help: Option<String>,
}

/// The CEL parser's message in plain words, and a fix for the usual mistakes: `=` for `==`,
/// `and`/`or`/`not` for `&&`/`||`/`!`, a value or bracket missing.
fn plain(message: &str) -> (String, Option<String>) {
    let m = message.strip_prefix("Syntax error: ").unwrap_or(message);
    // The first quoted token of the message.
    let token = |after: &str| {
        m.strip_prefix(after)
            .and_then(|rest| rest.strip_prefix('\''))
            .and_then(|rest| rest.split_once('\''))
            .map(|(t, _)| t.to_owned())
    };
    let words = |t: &str| match t {
        "and" | "AND" | "et" => Some("write && for \"and\""),
        "or" | "OR" | "ou" => Some("write || for \"or\""),
        "not" | "NOT" => Some("write ! for \"not\""),
        _ => None,
    };
    if let Some(t) = token("mismatched input ").or_else(|| token("extraneous input ")) {
        if t == "<EOF>" {
            return (
                "the condition stops too early: something is missing at its end".into(),
                Some("finish the comparison, e.g. demande.budget > 10000".into()),
            );
        }
        let help = words(&t).map_or_else(
            || "check what comes just before it: an operator or a bracket may be missing or doubled".to_owned(),
            str::to_owned,
        );
        return (format!("`{t}` is not expected here"), Some(help));
    }
    if let Some(t) = token("missing ") {
        let at = m
            .rsplit_once(" at '")
            .map(|(_, a)| a.trim_end_matches('\''));
        return match at {
            Some("<EOF>") | None => (format!("a `{t}` is missing at the end"), None),
            Some(a) => (format!("a `{t}` is missing before `{a}`"), None),
        };
    }
    if let Some(rest) = m.strip_prefix("token recognition error at: '") {
        let t = rest.trim_end_matches('\'').trim();
        let help = if t.starts_with('=') {
            "compare with == (two equals signs)".to_owned()
        } else {
            "conditions use names, numbers, 'text', comparisons (== != < <= > >=), && || ! and brackets".to_owned()
        };
        return (format!("`{t}` cannot be read in a condition"), Some(help));
    }
    if let Some(t) = token("no viable alternative at input ") {
        return (format!("`{t}` cannot be read here"), None);
    }
    (m.to_owned(), None)
}

/// Nesting depth of brackets and number of operators, outside string literals: the shape
/// limits checked before the CEL parser (which recurses) sees the text.
pub fn shape(text: &str) -> (usize, usize) {
    let b = text.as_bytes();
    let (mut depth, mut max_depth, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'!' | b'=' | b'<' | b'>' | b'&' | b'|' | b'+' | b'-' | b'*' | b'/' | b'%' | b'?' => {
                operators += 1;
                // Two-character operators (`&&`, `==`, `!=`, `<=`) count once.
                if matches!(b.get(i + 1), Some(b'=' | b'&' | b'|')) {
                    i += 1;
                }
            }
            b'.' => operators += 1,
            _ => {}
        }
        i += 1;
    }
    (max_depth, operators)
}

/// Compiles a condition written at `span` (the span of the text inside the quotes).
pub fn compile(text: &str, span: Span) -> Result<Condition, Vec<CompileError>> {
    let (depth, operators) = shape(text);
    if depth > crate::limits::MAX_EXPRESSION_DEPTH
        || operators > crate::limits::MAX_EXPRESSION_OPERATORS
    {
        return Err(vec![CompileError {
            message: format!(
                "the condition is too complex ({depth} levels of brackets, {operators} operators; \
                 the limits are {} and {})",
                crate::limits::MAX_EXPRESSION_DEPTH,
                crate::limits::MAX_EXPRESSION_OPERATORS
            ),
            span,
            help: None,
        }]);
    }
    let mangled = mangle(text);
    match Program::compile(&mangled) {
        Ok(program) => Ok(Condition {
            text: text.to_owned(),
            span,
            program,
        }),
        Err(errors) => Err(errors
            .errors
            .into_iter()
            .map(|e| {
                let at = e
                    .source_info
                    .as_ref()
                    .and_then(|info| info.offset_for(e.expr_id))
                    .map(|(start, stop)| (start as usize, stop.saturating_sub(start) as usize))
                    .or_else(|| offset_of_line_col(text, e.pos))
                    .map_or(span, |(start, len)| {
                        Span::new(span.offset + start.min(text.len()), len.max(1))
                    });
                let (message, help) = plain(&e.msg);
                CompileError {
                    message,
                    span: at,
                    help,
                }
            })
            .collect()),
    }
}

fn offset_of_line_col(text: &str, (line, col): (isize, isize)) -> Option<(usize, usize)> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let col = usize::try_from(col).ok()?;
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i == line {
            let within: usize = l.chars().take(col).map(char::len_utf8).sum();
            return Some((offset + within, 1));
        }
        offset += l.len();
    }
    None
}

/// Rewrites `a-b` (a hyphen between two letters of a name) to `a_b`, outside string literals.
/// Byte length and positions are unchanged.
pub fn mangle(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    // Start of the current run of identifier characters, if it began with a letter or `_`.
    let mut name_start: Option<usize> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' || c == b'\'' {
            // Skip a string literal: '...', "...", '''...''', """...""" with backslash escapes.
            let triple = bytes.get(i..i + 3) == Some(&[c, c, c][..]);
            let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R') && name_start == Some(i - 1);
            i += if triple { 3 } else { 1 };
            while i < bytes.len() {
                if bytes[i] == b'\\' && !raw {
                    i += 2;
                    continue;
                }
                if triple {
                    if bytes.get(i..i + 3) == Some(&[c, c, c][..]) {
                        i += 3;
                        break;
                    }
                } else if bytes[i] == c || bytes[i] == b'\n' {
                    i += 1;
                    break;
                }
                i += 1;
            }
            name_start = None;
            continue;
        }
        let ident = c.is_ascii_alphanumeric() || c == b'_';
        if ident {
            if name_start.is_none() && (c.is_ascii_alphabetic() || c == b'_') {
                // A run that starts with a digit (a number like 1e-5) is not a name.
                let prev_ident = i > 0 && (bytes[i - 1].is_ascii_alphanumeric());
                if !prev_ident {
                    name_start = Some(i);
                }
            }
        } else if c == b'-'
            && name_start.is_some()
            && i > 0
            && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
            && bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic)
        {
            out[i] = b'_';
            i += 1;
            continue;
        } else {
            name_start = None;
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII bytes.
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

fn span_of(program: &Program, id: u64, base: usize) -> Option<Span> {
    program.source_info().offset_for(id).map(|(start, stop)| {
        Span::new(base + start as usize, (stop.saturating_sub(start)) as usize)
    })
}

/// The id of the identifier at the root of a name path (`a` in `a.b.c`).
fn root_id(e: &Expr, id: u64) -> u64 {
    match e {
        Expr::Select(sel) => root_id(&sel.operand.expr, sel.operand.id),
        _ => id,
    }
}

/// The span of a whole name path, from its root identifier to the end of its last segment.
/// The parser records only where each node starts, so the end is found in the text.
fn path_span(program: &Program, e: &Expr, id: u64, base: usize) -> Span {
    let Some(start) = span_of(program, root_id(e, id), base) else {
        return Span::new(base, 0);
    };
    let src = program.source_info().source.as_bytes();
    let from = start.offset - base;
    let mut end = from;
    while end < src.len()
        && (src[end].is_ascii_alphanumeric() || src[end] == b'_' || src[end] == b'.')
    {
        end += 1;
    }
    Span::new(start.offset, end - from)
}

/// The span of a string literal, quotes included.
fn literal_span(program: &Program, id: u64, base: usize) -> Span {
    let Some(start) = span_of(program, id, base) else {
        return Span::new(base, 0);
    };
    let src = program.source_info().source.as_bytes();
    let from = start.offset - base;
    // Skip a raw-string prefix, then find the closing quote.
    let mut i = from;
    while i < src.len() && matches!(src[i], b'r' | b'R' | b'b' | b'B') {
        i += 1;
    }
    let Some(&quote) = src.get(i) else {
        return start;
    };
    let mut j = i + 1;
    while j < src.len() && src[j] != quote {
        if src[j] == b'\\' {
            j += 1;
        }
        j += 1;
    }
    Span::new(start.offset, (j + 1).min(src.len()) - from)
}

/// The literal strings of `e` if it is a string literal or a list of them.
fn string_literals(program: &Program, e: &Expr, id: u64, base: usize) -> Vec<(String, Span)> {
    let lit = |e: &Expr, id: u64| match e {
        Expr::Literal(LiteralValue::String(s)) => {
            let s: &str = s.as_ref();
            Some((s.to_owned(), literal_span(program, id, base)))
        }
        _ => None,
    };
    match e {
        Expr::List(list) => list
            .elements
            .iter()
            .filter_map(|el| lit(&el.expr, el.id))
            .collect(),
        _ => lit(e, id).into_iter().collect(),
    }
}

/// Unmangles a name path read back from the compiled program, using the source text: the
/// segment is looked up at its position so hyphens come back exactly as written.
fn path_of(e: &Expr) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    let mut cur = e;
    loop {
        match cur {
            Expr::Ident(name) => {
                segments.push(name.clone());
                segments.reverse();
                return Some(segments);
            }
            Expr::Select(sel) if !sel.test => {
                segments.push(sel.field.clone());
                cur = &sel.operand.expr;
            }
            _ => return None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn walk(
    program: &Program,
    e: &Expr,
    id: u64,
    bound: &mut Vec<String>,
    out: &mut dyn FnMut(Reference),
    base: usize,
    text: &str,
) {
    if let Some(path) = path_of(e) {
        if bound.contains(&path[0]) {
            return;
        }
        let mut span = path_span(program, e, id, base);
        out(Reference {
            path: restore_hyphens(&mut span, base, text, path.len()),
            span,
            compared_with: Vec::new(),
            compared_with_kinds: Vec::new(),
            compared_with_name: None,
            guarded: false,
        });
        return;
    }
    match e {
        Expr::Call(call) => {
            let f = call.func_name.as_str();
            // Comparisons of a name with literals: record them on the reference, for the
            // checker to see that their types agree.
            if matches!(f, "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" | "@in")
                && call.args.len() == 2
            {
                let (a, b) = (&call.args[0], &call.args[1]);
                // Two names: the first carries the second, for their types to be compared.
                if f != "@in"
                    && let (Some(pa), Some(pb)) = (path_of(&a.expr), path_of(&b.expr))
                    && !bound.contains(&pa[0])
                    && !bound.contains(&pb[0])
                {
                    let mut other = path_span(program, &b.expr, b.id, base);
                    let other_path = restore_hyphens(&mut other, base, text, pb.len());
                    let mut span = path_span(program, &a.expr, a.id, base);
                    out(Reference {
                        path: restore_hyphens(&mut span, base, text, pa.len()),
                        span,
                        compared_with: Vec::new(),
                        compared_with_kinds: Vec::new(),
                        compared_with_name: Some((other_path, other)),
                        guarded: false,
                    });
                    walk(program, &b.expr, b.id, bound, out, base, text);
                    return;
                }
                for (name_side, lit_side, allow_list) in [(a, b, f == "@in"), (b, a, false)] {
                    if let Some(path) = path_of(&name_side.expr) {
                        if bound.contains(&path[0]) {
                            continue;
                        }
                        let (lits, kinds) = match (&lit_side.expr, allow_list) {
                            (Expr::List(_), false) => (Vec::new(), Vec::new()),
                            _ => (
                                string_literals(program, &lit_side.expr, lit_side.id, base),
                                other_literals(program, &lit_side.expr, lit_side.id, base),
                            ),
                        };
                        if !lits.is_empty() || !kinds.is_empty() {
                            let mut span = path_span(program, &name_side.expr, name_side.id, base);
                            out(Reference {
                                path: restore_hyphens(&mut span, base, text, path.len()),
                                span,
                                compared_with: lits,
                                compared_with_kinds: kinds,
                                compared_with_name: None,
                                guarded: false,
                            });
                            walk(program, &lit_side.expr, lit_side.id, bound, out, base, text);
                            return;
                        }
                    }
                }
            }
            if let Some(t) = &call.target {
                walk(program, &t.expr, t.id, bound, out, base, text);
            }
            for a in &call.args {
                walk(program, &a.expr, a.id, bound, out, base, text);
            }
        }
        Expr::Select(sel) => {
            // `has(a.b)` compiles to a presence test: the read is guarded.
            if sel.test
                && let Some(path) = path_of(&sel.operand.expr)
            {
                if bound.contains(&path[0]) {
                    return;
                }
                let mut span = path_span(program, &sel.operand.expr, sel.operand.id, base);
                out(Reference {
                    path: restore_hyphens(&mut span, base, text, path.len()),
                    span,
                    compared_with: Vec::new(),
                    compared_with_kinds: Vec::new(),
                    compared_with_name: None,
                    guarded: true,
                });
                return;
            }
            walk(
                program,
                &sel.operand.expr,
                sel.operand.id,
                bound,
                out,
                base,
                text,
            );
        }
        Expr::List(list) => {
            for el in &list.elements {
                walk(program, &el.expr, el.id, bound, out, base, text);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    walk(program, &me.key.expr, me.key.id, bound, out, base, text);
                    walk(program, &me.value.expr, me.value.id, bound, out, base, text);
                }
            }
        }
        Expr::Struct(st) => {
            for entry in &st.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    walk(program, &f.value.expr, f.value.id, bound, out, base, text);
                }
            }
        }
        Expr::Comprehension(c) => {
            walk(
                program,
                &c.iter_range.expr,
                c.iter_range.id,
                bound,
                out,
                base,
                text,
            );
            let pushed = 2 + usize::from(c.iter_var2.is_some());
            bound.push(c.iter_var.clone());
            bound.push(c.accu_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                walk(program, &part.expr, part.id, bound, out, base, text);
            }
            bound.truncate(bound.len() - pushed);
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Names were mangled (`-` to `_`) before compiling; read the path back from the source so
/// that `type-projet` comes back as written: its first `segments` parts (a method called on
/// it, `demande.titre.size()`, is not part of the name).
fn restore_hyphens(span: &mut Span, base: usize, text: &str, segments: usize) -> Vec<String> {
    let start = span.offset.saturating_sub(base).min(text.len());
    let end = (start + span.len).min(text.len());
    let written = text.get(start..end).unwrap_or("");
    // The span ends with the name's last segment.
    let len = written
        .match_indices('.')
        .nth(segments.saturating_sub(1))
        .map_or(written.len(), |(i, _)| i);
    span.len = len;
    written[..len]
        .split('.')
        .map(|s| s.trim().to_owned())
        .collect()
}

/// The literals of `e` other than strings (numbers, booleans), alone or in a list, by type.
fn other_literals(program: &Program, e: &Expr, id: u64, base: usize) -> Vec<(&'static str, Span)> {
    let kind = |e: &Expr, id: u64| match e {
        Expr::Literal(LiteralValue::Int(_) | LiteralValue::UInt(_) | LiteralValue::Double(_)) => {
            Some(("number", literal_span(program, id, base)))
        }
        Expr::Literal(LiteralValue::Boolean(_)) => {
            Some(("yes-no", literal_span(program, id, base)))
        }
        _ => None,
    };
    match e {
        Expr::List(list) => list
            .elements
            .iter()
            .filter_map(|el| kind(&el.expr, el.id))
            .collect(),
        _ => kind(e, id).into_iter().collect(),
    }
}

fn collect_calls(program: &Program, e: &Expr, id: u64, base: usize, out: &mut Vec<(String, Span)>) {
    let mut visit = |e: &Expr, id: u64| collect_calls(program, e, id, base, out);
    match e {
        Expr::Call(call) => {
            let f = &call.func_name;
            if !f.starts_with('_') && !f.starts_with('@') && f != "!_" && f != "-_" {
                out_push(out, f, span_of(program, id, base));
            }
            if let Some(t) = &call.target {
                collect_calls(program, &t.expr, t.id, base, out);
            }
            for a in &call.args {
                collect_calls(program, &a.expr, a.id, base, out);
            }
        }
        Expr::Select(sel) => visit(&sel.operand.expr, sel.operand.id),
        Expr::List(list) => {
            for el in &list.elements {
                collect_calls(program, &el.expr, el.id, base, out);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    collect_calls(program, &me.key.expr, me.key.id, base, out);
                    collect_calls(program, &me.value.expr, me.value.id, base, out);
                }
            }
        }
        Expr::Comprehension(c) => {
            // Macros (all, exists, map...) expand to comprehensions; their bodies may call.
            for part in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                collect_calls(program, &part.expr, part.id, base, out);
            }
        }
        Expr::Struct(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn out_push(out: &mut Vec<(String, Span)>, f: &str, span: Option<Span>) {
    out.push((f.to_owned(), span.unwrap_or_default()));
}

/// Names of functions that macros expand into, never written by a person.
pub(crate) fn is_internal_function(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> Vec<Vec<String>> {
        compile(text, Span::new(0, text.len()))
            .unwrap()
            .references()
            .into_iter()
            .map(|r| r.path)
            .collect()
    }

    #[test]
    fn hyphenated_names_are_names() {
        assert_eq!(mangle("a-b == 'x-y'"), "a_b == 'x-y'");
        assert_eq!(mangle("a - b"), "a - b");
        assert_eq!(mangle("x-1"), "x-1");
        assert_eq!(mangle("1e-5"), "1e-5");
        assert_eq!(
            mangle("faisabilite-juridique.outcome"),
            "faisabilite_juridique.outcome"
        );
        assert_eq!(mangle(r#""a-b" + c-d"#), r#""a-b" + c_d"#);
        assert_eq!(mangle("'''a-b''' + c-d"), "'''a-b''' + c_d");
    }

    #[test]
    fn references_come_back_as_written() {
        assert_eq!(
            refs("faisabilite-juridique.outcome == 'favorable' && demande.budget > 10"),
            vec![
                vec!["faisabilite-juridique".to_owned(), "outcome".to_owned()],
                vec!["demande".to_owned(), "budget".to_owned()],
            ]
        );
        // Variables bound by macros are not references.
        assert_eq!(
            refs("[1, 2].exists(x, x > demande.budget)"),
            vec![vec!["demande".to_owned(), "budget".to_owned()]]
        );
    }

    #[test]
    fn comparisons_record_literals_and_spans() {
        let text = "a.outcome == 'ok' || a.outcome in ['x', 'y'] || 'z' != b.c";
        let c = compile(text, Span::new(10, text.len())).unwrap();
        let r = c.references();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0].compared_with
                .iter()
                .map(|x| x.0.as_str())
                .collect::<Vec<_>>(),
            ["ok"]
        );
        assert_eq!(r[1].compared_with.len(), 2);
        assert_eq!(r[2].path, ["b", "c"]);
        let (lit, span) = &r[0].compared_with[0];
        assert_eq!(lit, "ok");
        assert_eq!(&text[span.offset - 10..span.end() - 10], "'ok'");
        assert_eq!(
            &text[r[0].span.offset - 10..r[0].span.end() - 10],
            "a.outcome"
        );
    }

    #[test]
    fn has_marks_the_read_as_guarded() {
        let c = compile("has(a.b) && a.b > 1", Span::new(0, 19)).unwrap();
        let r = c.references();
        assert!(r[0].guarded);
        assert!(!r[1].guarded);
    }

    #[test]
    fn parse_errors_point_inside_the_text() {
        let errs = compile("a.outcome == ", Span::new(100, 13)).unwrap_err();
        assert!(!errs.is_empty());
        assert!(
            errs.iter()
                .all(|e| e.span.offset >= 100 && e.span.offset <= 113)
        );
    }

    #[test]
    fn functions_are_listed() {
        let c = compile(
            "size(a.b) > 2 && a.c.startsWith('x') && foo(1)",
            Span::new(0, 10),
        )
        .unwrap();
        let names: Vec<_> = c.functions().into_iter().map(|f| f.0).collect();
        assert_eq!(names, ["size", "startsWith", "foo"]);
    }

    #[test]
    fn allowed_functions_exist_in_the_evaluator() {
        // Each allowed function must evaluate, not fail at run time as undeclared.
        for text in [
            "size('ab') == 2",
            "'abc'.contains('b')",
            "'abc'.startsWith('a')",
            "'abc'.endsWith('c')",
            "int('3') == 3",
            "uint(3) == 3u",
            "double(1) == 1.0",
            "string(1) == '1'",
            "[1, 2].exists(x, x == 2)",
            "[1, 2].exists_one(x, x == 2)",
            "[1, 2].all(x, x > 0)",
            "[1, 2].map(x, x * 2) == [2, 4]",
            "[1, 2].filter(x, x > 1) == [2]",
            "has({'a': 1}.a)",
        ] {
            let c = compile(text, Span::new(0, text.len())).unwrap();
            let ctx = cel::Context::default();
            assert_eq!(
                c.program().execute(&ctx),
                Ok(cel::Value::Bool(true)),
                "{text}"
            );
            for (f, _) in c.functions() {
                assert!(
                    FUNCTIONS.contains(&f.as_str()) || is_internal_function(&f),
                    "{f}"
                );
            }
        }
    }
}
