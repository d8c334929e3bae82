//! Shell-style glob patterns over tensor and key names: `*` matches any run of
//! characters (dots included), `?` exactly one, everything else itself. Small and
//! linear-time (no backtracking blow-up on hostile patterns), with no dependency.

/// Whether `name` matches `pattern`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Position of the last `*` seen and the name position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches_like_a_shell() {
        assert!(glob_match("*_norm.weight", "blk.0.attn_norm.weight"));
        assert!(glob_match("blk.*.attn_?.weight", "blk.12.attn_q.weight"));
        assert!(!glob_match("blk.*.attn_?.weight", "blk.12.attn_qk.weight"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("output_norm.weight", "output_norm.weight"));
        assert!(!glob_match("output_norm.weight", "output_norm.weightx"));
        assert!(!glob_match("", "x"));
        // A pattern that makes backtracking matchers exponential stays linear-ish here.
        let name = "a".repeat(2000) + "b";
        assert!(!glob_match(
            &"*a".repeat(50),
            &name[..name.len() - 1].replace('a', "c")
        ));
        assert!(glob_match(&"*a".repeat(50), &"a".repeat(2000)));
    }
}
