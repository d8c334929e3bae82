//! Byte-level BPE as llama.cpp's `llm_tokenizer_bpe_session` runs it: each pre-tokenized
//! word is mapped to GPT-2 byte characters, split into characters, and the adjacent
//! pair with the lowest merge rank (leftmost on ties) is merged until no pair has a
//! rank. Merges are held by token id: every merge's two halves and its result are
//! checked to be tokens when the tokenizer is built.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::vocab::{split_merge, Vocab};
use super::TokenizerError;

/// Merge ranks: (left id, right id) -> (rank, merged id).
#[derive(Clone, Debug, Default)]
pub struct Merges {
    ranks: HashMap<(u32, u32), (u32, u32)>,
}

impl Merges {
    /// Parse `"left right"` lines; a line's index is its rank. Where a pair repeats, the
    /// first (best) rank stands, as in llama.cpp's `emplace`.
    pub fn parse(lines: &[String], vocab: &Vocab) -> Result<Merges, TokenizerError> {
        let mut ranks = HashMap::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            let (a, b) = split_merge(index, line)?;
            let unknown = |token: &str| TokenizerError::MergeUnknownToken {
                index,
                merge: line.clone(),
                token: token.to_string(),
            };
            let a_id = vocab.id(a).ok_or_else(|| unknown(a))?;
            let b_id = vocab.id(b).ok_or_else(|| unknown(b))?;
            let joined = format!("{a}{b}");
            let merged = vocab.id(&joined).ok_or_else(|| unknown(&joined))?;
            let rank = u32::try_from(index)
                .map_err(|_| TokenizerError::VocabTooLarge { count: lines.len() })?;
            ranks.entry((a_id, b_id)).or_insert((rank, merged));
        }
        Ok(Merges { ranks })
    }

    fn get(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        self.ranks.get(&(a, b)).copied()
    }
}

/// A queued merge: (rank, left index, right index, left id, right id, merged id).
type Candidate = Reverse<(u32, usize, usize, u32, u32, u32)>;

#[derive(Clone, Copy)]
struct Symbol {
    /// Token id of the symbol's text; `None` for a character outside the vocabulary.
    id: Option<u32>,
    /// Byte range in the word; `len == 0` once merged into its left neighbour.
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Token ids for one byte-encoded word.
pub fn encode_word(
    word: &str,
    vocab: &Vocab,
    merges: &Merges,
    ignore_merges: bool,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges {
        if let Some(id) = vocab.id(word) {
            out.push(id);
            return;
        }
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
    for (i, (start, c)) in word.char_indices().enumerate() {
        let len = c.len_utf8();
        symbols.push(Symbol {
            id: word
                .get(start..start.saturating_add(len))
                .and_then(|t| vocab.id(t)),
            start,
            len,
            prev: i.checked_sub(1),
            next: None,
        });
        if let Some(p) = i.checked_sub(1).and_then(|p| symbols.get_mut(p)) {
            p.next = Some(i);
        }
    }

    // (rank, left index) smallest first; the expected ids detect stale entries.
    let mut queue: BinaryHeap<Candidate> = BinaryHeap::new();
    let push = |queue: &mut BinaryHeap<_>, symbols: &[Symbol], left: usize| {
        let Some(l) = symbols.get(left) else { return };
        let Some(right) = l.next else { return };
        let Some(r) = symbols.get(right) else { return };
        if let (Some(a), Some(b)) = (l.id, r.id) {
            if let Some((rank, merged)) = merges.get(a, b) {
                queue.push(Reverse((rank, left, right, a, b, merged)));
            }
        }
    };
    for i in 0..symbols.len() {
        push(&mut queue, &symbols, i);
    }
    while let Some(Reverse((_, left, right, a, b, merged))) = queue.pop() {
        let (Some(l), Some(r)) = (symbols.get(left).copied(), symbols.get(right).copied()) else {
            continue;
        };
        if l.len == 0 || r.len == 0 || l.next != Some(right) || l.id != Some(a) || r.id != Some(b) {
            continue;
        }
        if let Some(s) = symbols.get_mut(left) {
            s.len = s.len.saturating_add(r.len);
            s.id = Some(merged);
            s.next = r.next;
        }
        if let Some(s) = symbols.get_mut(right) {
            s.len = 0;
        }
        if let Some(s) = r.next.and_then(|n| symbols.get_mut(n)) {
            s.prev = Some(left);
        }
        if let Some(p) = l.prev {
            push(&mut queue, &symbols, p);
        }
        push(&mut queue, &symbols, left);
    }

    let mut i = Some(0);
    while let Some(s) = i.and_then(|i| symbols.get(i)) {
        match s.id {
            Some(id) => out.push(id),
            None => {
                // llama.cpp looks each byte up as a one-byte token and drops the misses;
                // only ASCII bytes can be whole UTF-8 tokens.
                let text = word
                    .get(s.start..s.start.saturating_add(s.len))
                    .unwrap_or("");
                for b in text.bytes().filter(u8::is_ascii) {
                    let one = [b];
                    if let Some(id) = std::str::from_utf8(&one).ok().and_then(|t| vocab.id(t)) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}

#[cfg(test)]
mod tests {
    use super::super::vocab::SpecialIds;
    use super::*;

    fn vocab(tokens: &[&str]) -> Vocab {
        Vocab::build(
            tokens.iter().map(|s| s.to_string()).collect(),
            vec![],
            vec![],
            SpecialIds::default(),
        )
        .unwrap()
    }

    fn run(v: &Vocab, merges: &[&str], word: &str, ignore: bool) -> Vec<u32> {
        let m =
            Merges::parse(&merges.iter().map(|s| s.to_string()).collect::<Vec<_>>(), v).unwrap();
        let mut out = vec![];
        encode_word(word, v, &m, ignore, &mut out);
        out
    }

    #[test]
    fn lowest_rank_first_then_leftmost() {
        let v = vocab(&["a", "b", "c", "ab", "bc", "abc", "aa", "aaa"]);
        // "b c" outranks "a b": a + bc, and "a bc" is no merge.
        assert_eq!(run(&v, &["b c", "a b", "ab c"], "abc", false), [0, 4]);
        assert_eq!(run(&v, &["a b", "b c", "ab c"], "abc", false), [5]);
        // Ties between equal pairs go left to right.
        assert_eq!(run(&v, &["a a"], "aaa", false), [6, 0]);
    }

    #[test]
    fn ignore_merges_takes_whole_words() {
        let v = vocab(&["a", "b", "c", "abc"]);
        assert_eq!(run(&v, &[], "abc", false), [0, 1, 2]);
        assert_eq!(run(&v, &[], "abc", true), [3]);
    }

    #[test]
    fn unknown_characters_fall_back_to_ascii_bytes_or_vanish() {
        let v = vocab(&["a", "b"]);
        assert_eq!(run(&v, &[], "aéb", false), [0, 1]);
    }

    #[test]
    fn merges_must_name_tokens() {
        let v = vocab(&["a", "b"]);
        let e = Merges::parse(&["a b".to_string()], &v).unwrap_err();
        assert_eq!(
            e,
            TokenizerError::MergeUnknownToken {
                index: 0,
                merge: "a b".into(),
                token: "ab".into()
            }
        );
        let e = Merges::parse(&["a c".to_string()], &v).unwrap_err();
        assert!(matches!(e, TokenizerError::MergeUnknownToken { token, .. } if token == "c"));
    }
}
