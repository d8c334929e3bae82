//! Plain element types (F32, F16, BF16, F64 and the integer types I8, I16, I32) seen
//! as one-element "blocks", so that norms, embeddings and other float tensors go
//! through the same [`dequantize`](super::dequantize) entry point as quantized ones.
//!
//! Conversions follow ggml's `ggml_compute_fp16_to_fp32` / `ggml_compute_bf16_to_fp32`
//! (`ggml/src/ggml-impl.h`): BF16 is its bits shifted into the top half of an f32, F16
//! goes through the `half` crate. F64 and the integer types have no ggml dequantizer;
//! they are converted with Rust's `as f32` (round to nearest even).

use super::{f16_le, fixed, BlockFormat};

/// IEEE single, little-endian: the bits are kept exactly (NaN payloads included).
pub struct F32;

impl BlockFormat for F32 {
    const BLOCK: usize = 1;
    const BYTES: usize = 4;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        y[0] = f32::from_le_bytes(*b);
    }
}

/// IEEE half; follows `ggml_fp16_to_fp32_row` (`ggml/src/ggml.c`).
pub struct F16;

impl BlockFormat for F16 {
    const BLOCK: usize = 1;
    const BYTES: usize = 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        y[0] = f16_le(b[0], b[1]);
    }
}

/// bfloat16; follows `ggml_bf16_to_fp32_row` (`ggml/src/ggml.c`): `bits << 16`.
pub struct Bf16;

impl BlockFormat for Bf16 {
    const BLOCK: usize = 1;
    const BYTES: usize = 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        y[0] = f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16);
    }
}

/// IEEE double, narrowed with `as f32` (round to nearest even; out-of-range values
/// become infinities).
pub struct F64;

impl BlockFormat for F64 {
    const BLOCK: usize = 1;
    const BYTES: usize = 8;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        y[0] = f64::from_le_bytes(*b) as f32;
    }
}

/// Signed 8-bit integer, `as f32` (exact).
pub struct I8;

impl BlockFormat for I8 {
    const BLOCK: usize = 1;
    const BYTES: usize = 1;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        y[0] = f32::from(i8::from_le_bytes(*b));
    }
}

/// Signed 16-bit integer, little-endian, `as f32` (exact).
pub struct I16;

impl BlockFormat for I16 {
    const BLOCK: usize = 1;
    const BYTES: usize = 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        y[0] = f32::from(i16::from_le_bytes(*b));
    }
}

/// Signed 32-bit integer, little-endian, `as f32` (round to nearest even above 2^24).
pub struct I32;

impl BlockFormat for I32 {
    const BLOCK: usize = 1;
    const BYTES: usize = 4;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        y[0] = i32::from_le_bytes(*b) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::super::to_f32;
    use crate::gguf::GgmlType;

    #[test]
    fn integers_and_doubles() {
        let v = to_f32(GgmlType::I8, &[0x80, 0x7f, 0xff], 3).unwrap();
        assert_eq!(v, [-128.0, 127.0, -1.0]);
        let v = to_f32(GgmlType::I16, &[0x00, 0x80, 0x39, 0x30], 2).unwrap();
        assert_eq!(v, [-32768.0, 12345.0]);
        let bytes: Vec<u8> = [16_777_217i32, -7]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            to_f32(GgmlType::I32, &bytes, 2).unwrap(),
            [16_777_216.0, -7.0]
        );
        let bytes: Vec<u8> = [0.1f64, 1e300, -2.5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            to_f32(GgmlType::F64, &bytes, 3).unwrap(),
            [0.1f32, f32::INFINITY, -2.5]
        );
    }

    #[test]
    fn bf16_and_f32_keep_bits() {
        let v = to_f32(GgmlType::Bf16, &[0x80, 0x3f, 0x81, 0x7f], 2).unwrap();
        assert_eq!(v[0], 1.0);
        assert_eq!(v[1].to_bits(), 0x7f81_0000, "signalling NaN kept as is");
        let v = to_f32(GgmlType::F32, &0x7f80_0001u32.to_le_bytes(), 1).unwrap();
        assert_eq!(v[0].to_bits(), 0x7f80_0001);
    }
}
