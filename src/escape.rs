//! Text that came from a model file, made safe to show. Tensor names, metadata keys and
//! strings, chat templates are written by whoever made the file: a newline in a name can
//! start a line of its own (in a GitHub Actions log, `::warning::` at the start of a line
//! is a workflow command), an ESC sequence rewrites the terminal, and bidirectional
//! overrides or zero-width characters hide text from a reviewer. Every human-facing
//! output passes such text through [`visible`], which spells those characters out
//! (`\n`, `\u{202e}`) instead of emitting them. The same classification backs the
//! `name-charset` and `string-charset` rules.

use std::borrow::Cow;

/// A control character: C0 (including newline and tab), DEL, or C1.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// A character that changes the direction of the text around it (Unicode bidi
/// embeddings, overrides, isolates and marks).
pub fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// A character that takes no space: zero-width space, joiners, word joiner, invisible
/// operators, the byte-order mark, the Mongolian vowel separator, soft hyphen.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// Any character [`visible`] spells out.
pub fn is_hidden(c: char) -> bool {
    is_control(c) || is_bidi(c) || is_invisible(c)
}

/// `s` with every control, bidi and zero-width character spelled out as an escape
/// (`\n`, `\t`, `\r`, else `\u{..}`). When there is anything to escape, backslashes
/// are doubled too, so an escape cannot be forged; ordinary names print unchanged.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if is_hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`visible`], but keeps newlines and tabs as they are: for showing multi-line
/// model text as it reads (a rendered chat prompt). Backslashes are doubled only when
/// something else was escaped, as in [`visible`].
pub fn visible_text(s: &str) -> Cow<'_, str> {
    let hidden = |c: char| is_hidden(c) && !matches!(c, '\n' | '\t');
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`visible`], but keeps newlines and tabs (for multi-line text such as an error
/// report), and indents every line after the first so that no line of it can start with
/// text a log reader would act on (a `::` workflow command).
pub fn visible_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\n  ");
        }
        for c in line.chars() {
            match c {
                '\t' => out.push('\t'),
                c if is_hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out
}

/// Serialized JSON with every bidi and zero-width character written as a `\uXXXX`
/// escape. Lossless (a parser reads the same string back), and a terminal or an editor
/// showing the file shows the escape, not the effect. serde_json already escapes control
/// characters; these characters can only occur inside strings, so replacing them
/// anywhere is safe.
pub fn json_text(serialized: String) -> String {
    if !serialized.chars().any(|c| is_bidi(c) || is_invisible(c)) {
        return serialized;
    }
    let mut out = String::with_capacity(serialized.len() + 16);
    for c in serialized.chars() {
        if is_bidi(c) || is_invisible(c) {
            // Every such character is in the Basic Multilingual Plane.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A Markdown table cell or plain text (a code span is [`markdown_code`]): [`visible`],
/// with pipes and backticks escaped so the text cannot end the cell or open a code span.
pub fn markdown(s: &str) -> String {
    visible(s).replace('|', "\\|").replace('`', "\\`")
}

/// A complete Markdown inline code span holding `s`: [`visible`] text, pipes escaped
/// (GitHub splits table cells on them first), delimited by more backticks than the
/// longest run inside — backslashes do not escape inside code, so this is the only way
/// a name holding a backtick cannot end the span early. Padded with a space when the
/// text starts or ends with a backtick, as CommonMark strips one.
pub fn markdown_code(s: &str) -> String {
    let text = visible(s).replace('|', "\\|");
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// A fenced Markdown code block holding `text`: each line with hidden characters spelled
/// out (tabs kept), inside a fence of more backticks than any run in the text, so the
/// text cannot close the block (backslash escapes do not work inside code).
pub fn markdown_block(info: &str, text: &str) -> String {
    // One line at a time, so `visible_lines` adds no indentation.
    let lines: Vec<String> = text.lines().map(visible_lines).collect();
    let longest = lines
        .iter()
        .map(|l| longest_backtick_run(l))
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = format!("{fence}{}\n", visible(info).replace('`', ""));
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_spelled_out() {
        assert_eq!(visible("blk.0.attn_q.weight"), "blk.0.attn_q.weight");
        assert!(matches!(visible("plain \\ path"), Cow::Borrowed(_)));
        assert_eq!(visible("x\n::error::pwned"), "x\\n::error::pwned");
        assert_eq!(visible("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(visible("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(visible("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(visible("c:\\x\n"), "c:\\\\x\\n");
        assert_eq!(visible_text("a\n\tb"), "a\n\tb");
        assert_eq!(visible_text("a\n\u{202e}b\\"), "a\n\\u{202e}b\\\\");
    }

    #[test]
    fn multi_line_text_cannot_start_a_line_with_a_command() {
        let out = visible_lines("error: tensor x\n::error::pwned\u{202e}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("  ")), "{out}");
        assert!(out.contains("\\u{202e}"));
    }

    #[test]
    fn json_keeps_the_string_and_hides_nothing() {
        let raw = serde_json::to_string(&serde_json::json!({"v": "a\u{202e}b\u{200b}"})).unwrap();
        let safe = json_text(raw);
        assert_eq!(safe, r#"{"v":"a\u202eb\u200b"}"#);
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["v"], "a\u{202e}b\u{200b}");
    }

    #[test]
    fn markdown_cells_cannot_be_closed() {
        assert_eq!(markdown("a|b`c"), "a\\|b\\`c");
    }

    #[test]
    fn markdown_code_spans_cannot_be_closed() {
        assert_eq!(
            markdown_code("blk.0.attn_q.weight"),
            "`blk.0.attn_q.weight`"
        );
        assert_eq!(markdown_code("a`b"), "``a`b``");
        assert_eq!(markdown_code("``x"), "``` ``x ```");
        assert_eq!(markdown_code("a|b"), "`a\\|b`");
    }

    #[test]
    fn markdown_blocks_cannot_be_closed() {
        let block = markdown_block("diff", "+```\n-x\u{202e}\ty");
        assert_eq!(block, "````diff\n+```\n-x\\u{202e}\ty\n````\n");
        assert!(markdown_block("", "plain").starts_with("```\n"));
    }

    #[test]
    fn classes() {
        assert!(is_bidi('\u{202e}') && is_bidi('\u{2067}') && !is_bidi('a'));
        assert!(is_invisible('\u{200b}') && is_invisible('\u{feff}') && !is_invisible(' '));
        assert!(is_control('\n') && is_control('\u{7f}') && is_control('\u{85}'));
    }
}
