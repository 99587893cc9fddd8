//! Explicit limits on what a definition file may contain.
//!
//! A definition is uploaded by a person, sometimes through the web; none of these limits is
//! close to what a real desk needs (the largest white-paper model is under 20 KiB and 200
//! nodes), and each one keeps a hostile or broken file from exhausting memory or the stack.
//! The KDL specification sets no limits of its own.

/// Largest definition file, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest nesting of `{ }` blocks.
pub const MAX_DEPTH: usize = 24;
/// Most KDL nodes in one file.
pub const MAX_NODES: usize = 50_000;
/// Longest string value, in characters (descriptions and help texts included).
pub const MAX_STRING_CHARS: usize = 10_000;
/// Longest condition, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 2_000;
/// Deepest nesting of brackets `( [ {` in a condition. The CEL parser recurses on nesting.
pub const MAX_EXPRESSION_DEPTH: usize = 12;
/// Most operators in one condition (`&&`, `==`, `!`, `+`...). Each one is a level of the
/// syntax tree, which the parser and the evaluator walk recursively; a readable condition
/// has a handful.
pub const MAX_EXPRESSION_OPERATORS: usize = 64;
/// Longest identifier, in characters.
pub const MAX_ID_CHARS: usize = 64;

/// The deepest `{` nesting in a KDL text, found without parsing it, so that the parser
/// (which recurses) is never handed a file that could overflow its stack.
///
/// It follows KDL 2.0's lexical rules closely enough to skip strings (quoted, raw `#"..."#`,
/// multi-line `"""..."""`) and comments (`//`, nested `/* */`). A `{` inside a construct it
/// misreads can only make it over-count, which is the safe side: a real file never comes
/// near the limit.
pub fn max_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = 0;
    let mut depth: usize = 0;
    let mut max = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut nest = 1;
                i += 2;
                while i < b.len() && nest > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        nest += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        nest -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'#' | b'"' => {
                // Raw strings: n hashes, a quote (or three), then the same closing sequence.
                let mut hashes = 0;
                while b.get(i + hashes) == Some(&b'#') {
                    hashes += 1;
                }
                if b.get(i + hashes) != Some(&b'"') {
                    // `#true`, `#null`...: a keyword, not a string.
                    i += hashes.max(1);
                    continue;
                }
                let raw = hashes > 0;
                i += hashes;
                let triple = b.get(i..i + 3) == Some(b"\"\"\"");
                i += if triple { 3 } else { 1 };
                loop {
                    if i >= b.len() {
                        break;
                    }
                    if !raw && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    let closes = if triple {
                        b.get(i..i + 3) == Some(b"\"\"\"")
                    } else {
                        b[i] == b'"'
                    };
                    let quote_len = if triple { 3 } else { 1 };
                    if closes
                        && b.get(i + quote_len..i + quote_len + hashes)
                            .is_some_and(|h| h.iter().all(|&c| c == b'#'))
                    {
                        i += quote_len + hashes;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::max_depth;

    #[test]
    fn counts_blocks_not_strings_or_comments() {
        assert_eq!(max_depth("a { b { c } }"), 2);
        assert_eq!(max_depth(r#"a "{{{{" { }"#), 1);
        assert_eq!(max_depth(r##"a #"{{ " }}"# { }"##), 1);
        assert_eq!(max_depth("a // {{{{\n b { }"), 1);
        assert_eq!(max_depth("a /* { /* { */ { */ b { }"), 1);
        assert_eq!(max_depth("a \"\"\"\n{{{\n\"\"\" { }"), 1);
        assert_eq!(max_depth("a #true { b #null { } }"), 2);
        assert_eq!(max_depth(&"{".repeat(100_000)), 100_000);
    }
}
