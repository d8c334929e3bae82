//! SentencePiece BPE as llama.cpp's `llm_tokenizer_spm_session` runs it: the text (with
//! spaces already turned into `▁`) is split into characters; the adjacent pair whose
//! concatenation is a token with the highest `tokenizer.ggml.scores` value (leftmost on
//! ties) is merged until none is; a final piece that is not a token is spelled out as
//! byte tokens `<0xXX>`.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::vocab::Vocab;
use super::TokenizerError;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge; the heap pops the highest score, then the leftmost.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| Reverse(self.left).cmp(&Reverse(other.left)))
    }
}

/// The token for one byte: `<0xXX>`, else the byte as a one-character token, else the
/// unknown token (where llama.cpp would throw).
pub fn byte_token(vocab: &Vocab, byte: u8) -> Result<u32, TokenizerError> {
    let hex = format!("<0x{byte:02X}>");
    if let Some(id) = vocab.id(&hex) {
        return Ok(id);
    }
    let one = [byte];
    if let Some(id) = std::str::from_utf8(&one).ok().and_then(|t| vocab.id(t)) {
        return Ok(id);
    }
    vocab
        .special
        .unk
        .ok_or(TokenizerError::NoByteToken { byte })
}

/// Token ids for `text` (already escaped: spaces are `▁`).
pub fn encode(text: &str, vocab: &Vocab, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
        if let Some(p) = i.checked_sub(1).and_then(|p| symbols.get_mut(p)) {
            p.next = Some(i);
        }
    }

    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: Option<usize>| {
        let Some(left) = left else { return };
        let Some(l) = symbols.get(left) else { return };
        let Some(right) = l.next else { return };
        let Some(r) = symbols.get(right) else { return };
        let Some(size) = l.len.checked_add(r.len) else {
            return;
        };
        let Some(piece) = text.get(l.start..l.start.saturating_add(size)) else {
            return;
        };
        if let Some(id) = vocab.id(piece) {
            queue.push(Bigram {
                score: vocab.scores.get(id as usize).copied().unwrap_or(0.0),
                left,
                right,
                size,
            });
        }
    };
    for i in 0..symbols.len() {
        try_add(&mut queue, &symbols, Some(i));
    }
    while let Some(b) = queue.pop() {
        let (Some(l), Some(r)) = (symbols.get(b.left).copied(), symbols.get(b.right).copied())
        else {
            continue;
        };
        if l.len == 0 || r.len == 0 || l.len.checked_add(r.len) != Some(b.size) {
            continue;
        }
        if let Some(s) = symbols.get_mut(b.left) {
            s.len = b.size;
            s.next = r.next;
        }
        if let Some(s) = symbols.get_mut(b.right) {
            s.len = 0;
        }
        if let Some(s) = r.next.and_then(|n| symbols.get_mut(n)) {
            s.prev = Some(b.left);
        }
        try_add(&mut queue, &symbols, l.prev);
        try_add(&mut queue, &symbols, Some(b.left));
    }

    let mut i = if symbols.is_empty() { None } else { Some(0) };
    while let Some(s) = i.and_then(|i| symbols.get(i)) {
        let piece = text
            .get(s.start..s.start.saturating_add(s.len))
            .unwrap_or("");
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    out.push(byte_token(vocab, b)?);
                }
            }
        }
        i = s.next;
    }
    Ok(())
}
