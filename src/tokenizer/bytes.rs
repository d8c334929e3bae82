//! GPT-2's reversible byte <-> character table. Byte-level BPE vocabularies store each
//! byte as a printable character (space is `Ġ`, newline `Ċ`) so that every token is a
//! valid string; encoding maps text bytes to these characters before the merges, and
//! decoding maps them back. Same table as llama.cpp's `unicode_byte_to_utf8_map`.

use std::collections::HashMap;
use std::sync::OnceLock;

struct Table {
    to_char: [char; 256],
    to_byte: HashMap<char, u8>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut next = 256u32;
        for (b, slot) in (0u32..).zip(to_char.iter_mut()) {
            let printable = (0x21..=0x7E).contains(&b)
                || (0xA1..=0xAC).contains(&b)
                || (0xAE..=0xFF).contains(&b);
            let cp = if printable {
                b
            } else {
                let cp = next;
                next += 1;
                cp
            };
            // Every code point below 0x144 is a valid scalar value.
            *slot = char::from_u32(cp).unwrap_or('\u{FFFD}');
        }
        let to_byte = (0u8..=255)
            .zip(to_char.iter())
            .map(|(b, &c)| (c, b))
            .collect();
        Table { to_char, to_byte }
    })
}

/// The character that stands for `byte` in a byte-level vocabulary.
pub fn byte_to_char(byte: u8) -> char {
    table().to_char[usize::from(byte)]
}

/// The byte a byte-level character stands for, if it is one of the 256.
pub fn char_to_byte(c: char) -> Option<u8> {
    table().to_byte.get(&c).copied()
}

/// `text`'s UTF-8 bytes, each replaced by its byte-level character.
pub fn encode(text: &str) -> String {
    text.bytes().map(byte_to_char).collect()
}

/// The raw bytes a byte-level token string stands for. Characters outside the table
/// (which a well-formed vocabulary never holds) are kept as their own UTF-8 bytes.
pub fn decode(token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_characters() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'\t'), 'ĉ');
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(0xAD), 'Ń');
    }

    #[test]
    fn round_trip_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let s: String = all.iter().map(|&b| byte_to_char(b)).collect();
        assert_eq!(decode(&s), all);
        assert_eq!(table().to_byte.len(), 256);
    }
}
