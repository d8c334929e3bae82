//! The K-quants (Q2_K .. Q6_K, Q8_K): 256-element super-blocks with one or two f16
//! super-scales and 6- or 8-bit sub-block scales. They are what most "Q4_K_M"-style
//! community releases contain, so the gate must read them exactly.
//!
//! Layouts follow `block_q2_K` .. `block_q8_K` in `ggml/src/ggml-common.h` (with
//! `QK_K` = 256); arithmetic follows `dequantize_row_q2_K` .. `dequantize_row_q8_K` in
//! `ggml/src/ggml-quants.c` operation for operation: sub-block scales are formed first
//! (`dl = d * sc`, `ml = min * m`), then each value is `dl * q - ml` (or `dl * q`) in
//! f32, with no fused multiply-add.

use super::{f16_le, fixed, BlockFormat};

/// Elements per super-block.
const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in Q3_K / Q4_K / Q5_K (`K_SCALE_SIZE`).
const K_SCALE_SIZE: usize = 12;

/// `block_q2_K`: `scales[16]` (low nibble scale, high nibble min), `qs[64]` (2-bit),
/// f16 `d`, f16 `dmin`; value = `d * (sc & 15) * q - dmin * (sc >> 4)` per 16 values.
/// Follows `dequantize_row_q2_K` in `ggml/src/ggml-quants.c`.
pub struct Q2K;

impl BlockFormat for Q2K {
    const BLOCK: usize = QK_K;
    const BYTES: usize = QK_K / 16 + QK_K / 4 + 4;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        const QS: usize = 16;
        const D: usize = QS + 64;
        let d = f16_le(b[D], b[D + 1]);
        let min = f16_le(b[D + 2], b[D + 3]);
        // Element e = 128 * half + 32 * j + l (l < 32) is bits 2j..2j+2 of
        // qs[32 * half + l]; its scale byte is scales[e / 16].
        for e in 0..QK_K {
            let (half, j, l) = (e / 128, (e % 128) / 32, e % 32);
            let sc = b[e / 16];
            let dl = d * f32::from(sc & 0x0F);
            let ml = min * f32::from(sc >> 4);
            let q = (b[QS + 32 * half + l] >> (2 * j)) & 3;
            y[e] = dl * f32::from(q) - ml;
        }
    }
}

/// `block_q3_K`: `hmask[32]` (third bits), `qs[64]` (low 2 bits), `scales[12]` (16
/// packed 6-bit scales), f16 `d`; value = `d * (sc - 32) * (q - (hbit ? 0 : 4))`.
/// Follows `dequantize_row_q3_K` in `ggml/src/ggml-quants.c`.
pub struct Q3K;

impl BlockFormat for Q3K {
    const BLOCK: usize = QK_K;
    const BYTES: usize = QK_K / 8 + QK_K / 4 + K_SCALE_SIZE + 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        const QS: usize = 32;
        const SCALES: usize = QS + 64;
        const D: usize = SCALES + K_SCALE_SIZE;
        let d_all = f16_le(b[D], b[D + 1]);
        // The kmask1/kmask2 shuffle of dequantize_row_q3_K, one scale at a time:
        // low 4 bits from byte k (k < 8, low nibble) or k - 8 (high nibble), high 2
        // bits from byte 8 + k % 4 at shift 2 * (k / 4).
        let mut scales = [0i32; 16];
        for (k, s) in scales.iter_mut().enumerate() {
            let low = if k < 8 {
                b[SCALES + k] & 0x0F
            } else {
                b[SCALES + k - 8] >> 4
            };
            let high = (b[SCALES + 8 + k % 4] >> (2 * (k / 4))) & 3;
            *s = i32::from(low | (high << 4)) - 32;
        }
        // Element e = 128 * half + 32 * j + l: bits 2j of qs[32 * half + l], high bit
        // (1 << (4 * half + j)) of hmask[l], scale scales[e / 16].
        for e in 0..QK_K {
            let (half, j, l) = (e / 128, (e % 128) / 32, e % 32);
            let dl = d_all * scales[e / 16] as f32;
            let low = i32::from((b[QS + 32 * half + l] >> (2 * j)) & 3);
            let hbit = (b[l] >> (4 * half + j)) & 1;
            let q = low - if hbit != 0 { 0 } else { 4 };
            y[e] = dl * q as f32;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes.
/// Follows `get_scale_min_k4` in `ggml/src/ggml-quants.c`.
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The 12 scale bytes that follow `d` and `dmin` in Q4_K and Q5_K.
#[inline(always)]
fn k4_scales(b: &[u8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    if let Some(src) = b.get(4..4 + K_SCALE_SIZE) {
        s.copy_from_slice(src);
    }
    s
}

/// `block_q4_K`: f16 `d`, f16 `dmin`, `scales[12]` (8 packed 6-bit scale/min pairs),
/// `qs[128]`; value = `d * sc * q - dmin * m` per 32 values.
/// Follows `dequantize_row_q4_K` in `ggml/src/ggml-quants.c`.
pub struct Q4K;

impl BlockFormat for Q4K {
    const BLOCK: usize = QK_K;
    const BYTES: usize = 4 + K_SCALE_SIZE + QK_K / 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        const QS: usize = 4 + K_SCALE_SIZE;
        let d = f16_le(b[0], b[1]);
        let min = f16_le(b[2], b[3]);
        let scales = k4_scales(b);
        // Each 64 values: 32 low nibbles of qs[32 * c ..], then 32 high nibbles.
        for c in 0..QK_K / 64 {
            let (sc1, m1) = scale_min_k4(2 * c, &scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            for l in 0..32 {
                let q = b[QS + 32 * c + l];
                y[64 * c + l] = d1 * f32::from(q & 0x0F) - m1;
                y[64 * c + 32 + l] = d2 * f32::from(q >> 4) - m2;
            }
        }
    }
}

/// `block_q5_K`: f16 `d`, f16 `dmin`, `scales[12]`, `qh[32]` (fifth bits), `qs[128]`;
/// value = `d * sc * (q + 16 * hbit) - dmin * m` per 32 values.
/// Follows `dequantize_row_q5_K` in `ggml/src/ggml-quants.c`.
pub struct Q5K;

impl BlockFormat for Q5K {
    const BLOCK: usize = QK_K;
    const BYTES: usize = 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        const QH: usize = 4 + K_SCALE_SIZE;
        const QS: usize = QH + 32;
        let d = f16_le(b[0], b[1]);
        let min = f16_le(b[2], b[3]);
        let scales = k4_scales(b);
        // As Q4_K; the fifth bit of the low-nibble half is bit 2c of qh[l], of the
        // high-nibble half bit 2c + 1 (u1, u2 in the C code).
        for c in 0..QK_K / 64 {
            let (sc1, m1) = scale_min_k4(2 * c, &scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            for l in 0..32 {
                let q = b[QS + 32 * c + l];
                let h = b[QH + l];
                let hi0 = if h & (1 << (2 * c)) != 0 { 16 } else { 0 };
                let hi1 = if h & (2 << (2 * c)) != 0 { 16 } else { 0 };
                y[64 * c + l] = d1 * f32::from((q & 0x0F) + hi0) - m1;
                y[64 * c + 32 + l] = d2 * f32::from((q >> 4) + hi1) - m2;
            }
        }
    }
}

/// `block_q6_K`: `ql[128]` (low 4 bits), `qh[64]` (high 2 bits), `scales[16]` (i8),
/// f16 `d`; value = `d * sc * (q - 32)` per 16 values.
/// Follows `dequantize_row_q6_K` in `ggml/src/ggml-quants.c`.
pub struct Q6K;

impl BlockFormat for Q6K {
    const BLOCK: usize = QK_K;
    const BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        const QH: usize = QK_K / 2;
        const SC: usize = QH + QK_K / 4;
        const D: usize = SC + QK_K / 16;
        let d = f16_le(b[D], b[D + 1]);
        // Each 128 values (half): ql advances by 64, qh by 32, scales by 8.
        for half in 0..2 {
            let (ql, qh, sc) = (64 * half, QH + 32 * half, SC + 8 * half);
            for l in 0..32 {
                let is = l / 16;
                let h = b[qh + l];
                let a = b[ql + l];
                let c = b[ql + l + 32];
                let q1 = i32::from((a & 0x0F) | ((h & 3) << 4)) - 32;
                let q2 = i32::from((c & 0x0F) | (((h >> 2) & 3) << 4)) - 32;
                let q3 = i32::from((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
                let q4 = i32::from((c >> 4) | (((h >> 6) & 3) << 4)) - 32;
                let s = |k: usize| f32::from(b[sc + is + k] as i8);
                let o = 128 * half + l;
                y[o] = d * s(0) * q1 as f32;
                y[o + 32] = d * s(2) * q2 as f32;
                y[o + 64] = d * s(4) * q3 as f32;
                y[o + 96] = d * s(6) * q4 as f32;
            }
        }
    }
}

/// `block_q8_K`: f32 `d`, `qs[256]` (i8), `bsums[16]` (i16, sums of 16 quants, unused
/// here): 292 bytes; value = `d * q`. Follows `dequantize_row_q8_K` in
/// `ggml/src/ggml-quants.c`. gguf-py cannot dequantize it.
pub struct Q8K;

impl BlockFormat for Q8K {
    const BLOCK: usize = QK_K;
    const BYTES: usize = 4 + QK_K + 2 * (QK_K / 16);
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for j in 0..QK_K {
            y[j] = d * f32::from(b[4 + j] as i8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::to_f32;
    use super::*;
    use crate::gguf::GgmlType;

    #[test]
    fn scale_min_k4_unpacks_all_bits() {
        // Sub-block j < 4: 6 low bits of bytes j, j + 4. j >= 4: nibble of byte j + 4
        // plus the top two bits of bytes j - 4 (scale) and j (min).
        let q = [
            0xC1, 0x02, 0x03, 0x04, 0x45, 0x06, 0x07, 0x08, 0x9A, 0x00, 0x00, 0x00,
        ];
        assert_eq!(scale_min_k4(0, &q), (1, 5));
        assert_eq!(scale_min_k4(4, &q), (0x0A | (3 << 4), 0x09 | (1 << 4)));
    }

    #[test]
    fn q8_k_is_d_times_q() {
        let mut block = 0.25f32.to_le_bytes().to_vec();
        block.extend((0..256).map(|j: i32| (j - 128) as i8 as u8));
        block.extend([0xAB; 32]);
        let v = to_f32(GgmlType::Q8K, &block, 256).unwrap();
        for (j, x) in v.iter().enumerate() {
            assert_eq!(*x, 0.25 * (j as f32 - 128.0));
        }
    }
}
