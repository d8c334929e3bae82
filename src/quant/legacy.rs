//! The original 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1): one f16
//! scale (and for the `_1` kinds an f16 offset) per 32 values. Most published GGUF
//! files still carry some of these, SmolLM2's Q4_1 build among them.
//!
//! Layouts follow `block_q4_0` .. `block_q8_1` in `ggml/src/ggml-common.h`; the
//! arithmetic follows `dequantize_row_q4_0` .. `dequantize_row_q8_0` in
//! `ggml/src/ggml-quants.c`, operation for operation: the integer code is converted
//! to f32, multiplied by `d`, then (`_1` kinds) `m` is added, with no fused multiply-add.
//! In all 4- and 5-bit kinds, byte `j` holds element `j` in its low nibble and element
//! `j + 16` in its high nibble.

use super::{f16_le, fixed, BlockFormat};

/// Elements per block of every legacy kind (`QK4_0` = `QK4_1` = `QK5_0` = `QK5_1` = `QK8_0` = `QK8_1`).
const QK: usize = 32;
const HALF: usize = QK / 2;

/// `block_q4_0`: f16 `d`, 16 bytes of nibbles; value = `(q - 8) * d`.
/// Follows `dequantize_row_q4_0` in `ggml/src/ggml-quants.c`.
pub struct Q4_0;

impl BlockFormat for Q4_0 {
    const BLOCK: usize = QK;
    const BYTES: usize = 2 + HALF;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[0], b[1]);
        for j in 0..HALF {
            let q = b[2 + j];
            let x0 = i32::from(q & 0x0F) - 8;
            let x1 = i32::from(q >> 4) - 8;
            y[j] = x0 as f32 * d;
            y[j + HALF] = x1 as f32 * d;
        }
    }
}

/// `block_q4_1`: f16 `d`, f16 `m`, 16 bytes of nibbles; value = `q * d + m`.
/// Follows `dequantize_row_q4_1` in `ggml/src/ggml-quants.c`.
pub struct Q4_1;

impl BlockFormat for Q4_1 {
    const BLOCK: usize = QK;
    const BYTES: usize = 4 + HALF;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[0], b[1]);
        let m = f16_le(b[2], b[3]);
        for j in 0..HALF {
            let q = b[4 + j];
            y[j] = f32::from(q & 0x0F) * d + m;
            y[j + HALF] = f32::from(q >> 4) * d + m;
        }
    }
}

/// `block_q5_0`: f16 `d`, 32-bit `qh` (fifth bits, element `j` at bit `j`), 16 bytes of
/// nibbles; value = `(q - 16) * d`. Follows `dequantize_row_q5_0` in `ggml/src/ggml-quants.c`.
pub struct Q5_0;

impl BlockFormat for Q5_0 {
    const BLOCK: usize = QK;
    const BYTES: usize = 6 + HALF;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[0], b[1]);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for j in 0..HALF {
            let q = b[6 + j];
            let (x0, x1) = five_bit(q, qh, j);
            y[j] = (x0 - 16) as f32 * d;
            y[j + HALF] = (x1 - 16) as f32 * d;
        }
    }
}

/// `block_q5_1`: f16 `d`, f16 `m`, 32-bit `qh`, 16 bytes of nibbles; value = `q * d + m`.
/// Follows `dequantize_row_q5_1` in `ggml/src/ggml-quants.c`.
pub struct Q5_1;

impl BlockFormat for Q5_1 {
    const BLOCK: usize = QK;
    const BYTES: usize = 8 + HALF;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[0], b[1]);
        let m = f16_le(b[2], b[3]);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        for j in 0..HALF {
            let q = b[8 + j];
            let (x0, x1) = five_bit(q, qh, j);
            y[j] = x0 as f32 * d + m;
            y[j + HALF] = x1 as f32 * d + m;
        }
    }
}

/// The two unsigned 5-bit codes of byte `j`: its nibbles plus bits `j` and `j + 16`
/// of `qh` (`xh_0`, `xh_1` in `dequantize_row_q5_0`).
#[inline(always)]
fn five_bit(q: u8, qh: u32, j: usize) -> (i32, i32) {
    let xh0 = ((qh >> j) << 4) & 0x10;
    let xh1 = (qh >> (j + 12)) & 0x10;
    let x0 = u32::from(q & 0x0F) | xh0;
    let x1 = u32::from(q >> 4) | xh1;
    // Both fit in 5 bits.
    (x0 as i32, x1 as i32)
}

/// `block_q8_0`: f16 `d`, 32 signed bytes; value = `q * d`.
/// Follows `dequantize_row_q8_0` in `ggml/src/ggml-quants.c`.
pub struct Q8_0;

impl BlockFormat for Q8_0 {
    const BLOCK: usize = QK;
    const BYTES: usize = 2 + QK;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[0], b[1]);
        for j in 0..QK {
            y[j] = f32::from(b[2 + j] as i8) * d;
        }
    }
}

/// `block_q8_1` (`ggml/src/ggml-common.h`): f16 `d`, f16 `s` (= `d * sum(q)`, used only
/// by dot products), 32 signed bytes: 36 bytes. value = `q * d`.
///
/// ggml has no `dequantize_row_q8_1` (Q8_1 is an activation format for dot products);
/// this follows `dequantize_row_q8_0`, whose values Q8_1 shares. gguf-py can neither
/// quantize nor dequantize Q8_1, and its size table gives a stale 40 bytes per block.
pub struct Q8_1;

impl BlockFormat for Q8_1 {
    const BLOCK: usize = QK;
    const BYTES: usize = 4 + QK;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[0], b[1]);
        for j in 0..QK {
            y[j] = f32::from(b[4 + j] as i8) * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::to_f32;
    use crate::gguf::GgmlType;

    /// f16 bits of 0.5 and -2.0.
    const HALF_05: [u8; 2] = [0x00, 0x38];
    const HALF_M2: [u8; 2] = [0x00, 0xc0];

    #[test]
    fn q4_0_nibble_order() {
        let mut block = HALF_05.to_vec();
        // Byte j: low nibble = element j, high nibble = element j + 16.
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let v = to_f32(GgmlType::Q4_0, &block, 32).unwrap();
        for j in 0..16 {
            assert_eq!(v[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(v[j + 16], (7.0 - j as f32) * 0.5);
        }
    }

    #[test]
    fn q5_1_high_bits_and_offset() {
        let mut block = HALF_05.to_vec();
        block.extend(HALF_M2);
        // Fifth bit set for elements 1 and 17 only.
        block.extend(((1u32 << 1) | (1u32 << 17)).to_le_bytes());
        block.extend([0u8; 16]);
        let v = to_f32(GgmlType::Q5_1, &block, 32).unwrap();
        assert_eq!(v[0], -2.0);
        assert_eq!(v[1], 16.0 * 0.5 - 2.0);
        assert_eq!(v[16], -2.0);
        assert_eq!(v[17], 16.0 * 0.5 - 2.0);
    }

    #[test]
    fn q8_1_ignores_s() {
        let mut block = HALF_M2.to_vec();
        block.extend([0xff, 0x7b]); // s = 65504, unused
        block.extend((0..32).map(|j: i32| (j - 16) as i8 as u8));
        let v = to_f32(GgmlType::Q8_1, &block, 32).unwrap();
        for (j, x) in v.iter().enumerate() {
            assert_eq!(*x, (j as f32 - 16.0) * -2.0);
        }
    }
}
