//! A unified diff of two texts (chat templates), line by line, as `diff -u` prints it:
//! `@@ -a,b +c,d @@` hunks with three lines of context. Common leading and trailing lines
//! are set aside first (a template edit is usually local); the rest is aligned by a
//! longest common subsequence, bounded: past [`MAX_CELLS`] the middle is shown as removed
//! and added whole, so a hostile template cannot make the comparison quadratic in time
//! or memory. Lines are returned as they are: escaping is the renderer's job.

/// Largest LCS table (old lines × new lines of the differing middle) computed.
pub const MAX_CELLS: usize = 1 << 22;
/// Texts longer than this are reported as changed without a line diff (the output would
/// be as long as the input).
pub const MAX_TEXT_BYTES: usize = 256 << 10;
/// Lines of context around each change.
pub const CONTEXT: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// One line of a hunk: `' '`, `'-'` or `'+'` and the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub tag: char,
    pub text: String,
}

/// A hunk: its header and lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// `@@ -a,b +c,d @@`
    pub header: String,
    pub lines: Vec<Line>,
}

/// The hunks of a unified diff from `old` to `new` (empty when they are equal).
pub fn unified(old: &str, new: &str) -> Vec<Hunk> {
    let (a, b) = (lines_of(old), lines_of(new));
    let ops = align(&a, &b);
    hunks(&a, &b, &ops)
}

/// The lines of `text` as `diff` counts them: none for an empty text, and a final
/// newline ends the last line rather than starting an empty one. (Two texts that differ
/// only in that final newline have no line diff; the caller's first-difference excerpt
/// shows it.)
fn lines_of(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<&str> = text.split('\n').collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// The hunks as text, one line each, with a final newline.
pub fn to_text(hunks: &[Hunk]) -> String {
    let mut out = String::new();
    for h in hunks {
        out.push_str(&h.header);
        out.push('\n');
        for l in &h.lines {
            out.push(l.tag);
            out.push_str(&l.text);
            out.push('\n');
        }
    }
    out
}

/// The edit script turning `a` into `b`.
fn align(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops = vec![Op::Same; prefix];
    let cells = (ma.len() + 1).saturating_mul(mb.len() + 1);
    if cells <= MAX_CELLS {
        ops.extend(lcs(ma, mb));
    } else {
        ops.extend(std::iter::repeat_n(Op::Removed, ma.len()));
        ops.extend(std::iter::repeat_n(Op::Added, mb.len()));
    }
    ops.extend(std::iter::repeat_n(Op::Same, suffix));
    ops
}

/// Longest common subsequence alignment; removals before additions where both fit.
fn lcs(a: &[&str], b: &[&str]) -> Vec<Op> {
    let w = b.len() + 1;
    // len[i * w + j]: LCS length of a[i..] and b[j..].
    let mut len = vec![0u32; (a.len() + 1) * w];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            len[i * w + j] = if a[i] == b[j] {
                len[(i + 1) * w + j + 1] + 1
            } else {
                len[(i + 1) * w + j].max(len[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push(Op::Same);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || len[(i + 1) * w + j] >= len[i * w + j + 1]) {
            ops.push(Op::Removed);
            i += 1;
        } else {
            ops.push(Op::Added);
            j += 1;
        }
    }
    ops
}

/// Group the edit script into hunks with `CONTEXT` lines around each change.
fn hunks(a: &[&str], b: &[&str], ops: &[Op]) -> Vec<Hunk> {
    // Old and new line numbers (0-based) before each op.
    let mut at = Vec::with_capacity(ops.len() + 1);
    let (mut i, mut j) = (0usize, 0usize);
    for op in ops {
        at.push((i, j));
        match op {
            Op::Same => {
                i += 1;
                j += 1;
            }
            Op::Removed => i += 1,
            Op::Added => j += 1,
        }
    }
    at.push((i, j));
    let changes: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Same).collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < changes.len() {
        // Extend the hunk while the next change is within 2 × CONTEXT same lines.
        let first = changes[k];
        let mut last = first;
        while k + 1 < changes.len() && changes[k + 1] - last <= 2 * CONTEXT + 1 {
            k += 1;
            last = changes[k];
        }
        k += 1;
        let from = first.saturating_sub(CONTEXT);
        let to = (last + 1 + CONTEXT).min(ops.len());
        let mut lines = Vec::new();
        for (op, &(i, j)) in ops[from..to].iter().zip(&at[from..to]) {
            let (tag, text) = match op {
                Op::Same => (' ', a[i]),
                Op::Removed => ('-', a[i]),
                Op::Added => ('+', b[j]),
            };
            lines.push(Line {
                tag,
                text: text.to_string(),
            });
        }
        let (a0, b0) = at[from];
        let (a1, b1) = at[to];
        let range = |start: usize, count: usize| {
            // diff -u: a range of no lines is named by the line before it.
            let first = if count == 0 { start } else { start + 1 };
            format!("{first},{count}")
        };
        out.push(Hunk {
            header: format!("@@ -{} +{} @@", range(a0, a1 - a0), range(b0, b1 - b0)),
            lines,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_line_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh";
        let new = "a\nb\nc\nd\nE\nf\ng\nh";
        let text = to_text(&unified(old, new));
        assert_eq!(text, "@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n");
        assert!(unified(old, old).is_empty());
    }

    #[test]
    fn insertions_deletions_and_separate_hunks() {
        let lines: Vec<String> = (0..30).map(|i| format!("line {i}\n")).collect();
        let old: String = lines.concat();
        let mut edited = lines.clone();
        edited.insert(26, "x\n".into());
        edited.remove(2);
        let new: String = edited.concat();
        let h = unified(&old, &new);
        assert_eq!(h.len(), 2, "{}", to_text(&h));
        assert_eq!(h[0].header, "@@ -1,6 +1,5 @@");
        assert_eq!(h[1].header, "@@ -24,6 +23,7 @@");
        // An absent or empty template is no lines, not one empty line.
        let from_nothing = unified("", "x\ny\n");
        assert_eq!(from_nothing[0].header, "@@ -0,0 +1,2 @@");
        assert_eq!(to_text(&from_nothing), "@@ -0,0 +1,2 @@\n+x\n+y\n");
        assert_eq!(to_text(&unified("x\n", "")), "@@ -1,1 +0,0 @@\n-x\n");
        assert_eq!(unified("a", "a\nb")[0].header, "@@ -1,1 +1,2 @@");
        assert_eq!(unified("a\n", "a\nb\n")[0].header, "@@ -1,1 +1,2 @@");
    }

    #[test]
    fn a_huge_middle_is_bounded() {
        let old: String = (0..3000).map(|i| format!("o{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("n{i}\n")).collect();
        let h = unified(&old, &new);
        let removed = h
            .iter()
            .flat_map(|h| &h.lines)
            .filter(|l| l.tag == '-')
            .count();
        assert_eq!(removed, 3000);
    }
}
