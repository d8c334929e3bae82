//! NumPy `.npy` output for `score --logits-out`: the version 1.0 header (magic, header
//! length, a Python dict literal padded to a multiple of 64 bytes) for a C-order
//! little-endian f32 array of shape `[rows, cols]`, followed by the rows as they are
//! computed — so the logits of a long text never sit in memory at once. `numpy.load`
//! reads the file (tests/quality.rs checks it).

use std::io::{self, Write};

/// The header of a `[rows, cols]` little-endian f32 array.
pub fn header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + length (2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&u16::try_from(header_len).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// One row of values, little-endian, through `buf` (reused across rows).
pub fn write_row(out: &mut dyn Write, row: &[f32], buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.extend(row.iter().flat_map(|v| v.to_le_bytes()));
    out.write_all(buf)
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn header_is_aligned_and_says_the_shape() {
        let h = header(1164, 49152);
        assert_eq!(h.len() % 64, 0);
        assert!(h.starts_with(b"\x93NUMPY\x01\x00"));
        let text = String::from_utf8_lossy(&h[10..]);
        assert!(
            text.contains("'shape': (1164, 49152)") && text.ends_with('\n'),
            "{text}"
        );
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
    }
}
