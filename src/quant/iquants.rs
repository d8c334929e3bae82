//! Non-linear 4-bit formats whose codes index a fixed table: IQ4_NL, IQ4_XS and MXFP4
//! (OCP microscaling FP4, used by gpt-oss). They need no codebook grids, unlike the
//! other IQ types, which gguf-gate does not decode.
//!
//! Layouts follow `block_iq4_nl`, `block_iq4_xs` and `block_mxfp4` in
//! `ggml/src/ggml-common.h`; the tables are `kvalues_iq4nl` and `kvalues_mxfp4` from
//! the same file; arithmetic follows `dequantize_row_iq4_nl`, `dequantize_row_iq4_xs`
//! and `dequantize_row_mxfp4` in `ggml/src/ggml-quants.c`. Table lookups use a
//! masked nibble as the index, so they cannot go out of bounds.

use super::{f16_le, fixed, BlockFormat};

/// `kvalues_iq4nl`: the 16 levels of IQ4_NL and IQ4_XS.
const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// `kvalues_mxfp4`: the E2M1 values, doubled (hence the halved E8M0 scale).
const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

#[inline(always)]
fn level(table: &[i8; 16], nibble: u8) -> f32 {
    f32::from(table[usize::from(nibble & 0x0F)])
}

/// `block_iq4_nl`: f16 `d`, 16 bytes of nibbles (element `j` low, `j + 16` high);
/// value = `d * kvalues_iq4nl[q]`. Follows `dequantize_row_iq4_nl` in `ggml/src/ggml-quants.c`.
pub struct Iq4Nl;

impl BlockFormat for Iq4Nl {
    const BLOCK: usize = 32;
    const BYTES: usize = 2 + 16;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[0], b[1]);
        for j in 0..16 {
            let q = b[2 + j];
            y[j] = d * level(&KVALUES_IQ4NL, q);
            y[j + 16] = d * level(&KVALUES_IQ4NL, q >> 4);
        }
    }
}

/// `block_iq4_xs`: f16 `d`, u16 `scales_h`, `scales_l[4]`, `qs[128]`; eight 32-value
/// sub-blocks with a 6-bit scale `ls` each; value = `d * (ls - 32) * kvalues_iq4nl[q]`.
/// Follows `dequantize_row_iq4_xs` in `ggml/src/ggml-quants.c`.
pub struct Iq4Xs;

impl BlockFormat for Iq4Xs {
    const BLOCK: usize = 256;
    const BYTES: usize = 4 + 4 + 128;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        const QS: usize = 8;
        let d = f16_le(b[0], b[1]);
        let scales_h = u16::from_le_bytes([b[2], b[3]]);
        for ib in 0..8 {
            let low = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0x0F;
            let high = ((scales_h >> (2 * ib)) & 3) as u8;
            let ls = i32::from(low | (high << 4));
            let dl = d * (ls - 32) as f32;
            for j in 0..16 {
                let q = b[QS + 16 * ib + j];
                y[32 * ib + j] = dl * level(&KVALUES_IQ4NL, q);
                y[32 * ib + j + 16] = dl * level(&KVALUES_IQ4NL, q >> 4);
            }
        }
    }
}

/// Half of an E8M0 scale, `2^(e - 128)`, as ggml's `ggml_e8m0_to_fp32_half`
/// (`GGML_E8M0_TO_FP32_HALF`, `ggml/src/ggml-impl.h`): `e` 0 and 1 give the subnormals
/// 2^-128 and 2^-127; `e` = 255 (E8M0's NaN) is not special-cased and gives 2^127.
#[inline(always)]
pub fn e8m0_to_fp32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

/// `block_mxfp4`: E8M0 exponent `e`, 16 bytes of E2M1 nibbles (element `j` low,
/// `j + 16` high); value = `kvalues_mxfp4[q] * e8m0_half(e)`.
/// Follows `dequantize_row_mxfp4` in `ggml/src/ggml-quants.c`.
pub struct Mxfp4;

impl BlockFormat for Mxfp4 {
    const BLOCK: usize = 32;
    const BYTES: usize = 1 + 16;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = e8m0_to_fp32_half(b[0]);
        for j in 0..16 {
            let q = b[1 + j];
            y[j] = level(&KVALUES_MXFP4, q) * d;
            y[j + 16] = level(&KVALUES_MXFP4, q >> 4) * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_edges() {
        // 2^-128 and 2^-127 are subnormal; 2^-126 is the smallest normal.
        assert_eq!(e8m0_to_fp32_half(0).to_bits(), 0x0020_0000);
        assert_eq!(e8m0_to_fp32_half(1).to_bits(), 0x0040_0000);
        assert_eq!(e8m0_to_fp32_half(2), f32::MIN_POSITIVE);
        assert_eq!(e8m0_to_fp32_half(128), 1.0);
        assert_eq!(e8m0_to_fp32_half(255), 2f32.powi(127));
    }

    #[test]
    fn mxfp4_block() {
        let mut block = vec![129u8]; // scale 2
        block.extend((0..16u8).map(|j| j | (j << 4)));
        let mut y = [0f32; 32];
        Mxfp4::decode(&block, &mut y);
        for j in 0..16 {
            assert_eq!(y[j], f32::from(KVALUES_MXFP4[j]) * 2.0);
            assert_eq!(y[j + 16], y[j]);
        }
    }
}
