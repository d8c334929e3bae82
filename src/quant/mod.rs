//! Dequantization: turning the raw bytes of a tensor of any supported ggml type into
//! `f32` values, bit for bit as llama.cpp's reference dequantizers (and gguf-py, which
//! mirrors them) produce them. Statistics, rules and the inference probe all read
//! weights through this one entry point, so a value that differs here from what
//! llama.cpp would compute would make every later verdict wrong.
//!
//! The inverse, `quantize` (Q8_0, Q4_0, TQ1_0, TQ2_0, I2_S), lives in `quantize.rs`.
//!
//! One file per block family (`float`, `legacy`, `kquants`, `iquants`, `ternary`);
//! each type is a unit struct implementing [`BlockFormat`] whose doc comment names the
//! llama.cpp function it follows. Decoding reads bytes with `from_le_bytes` from
//! fixed-size block views, never by casting pointers, and no index is derived from
//! input bytes except masked nibbles into 16-entry tables, so no input can panic.

mod float;
mod iquants;
mod kquants;
mod legacy;
mod quantize;
mod ternary;

use crate::gguf::GgmlType;
use thiserror::Error;

/// Shared with the inference kernels, which decode the same blocks.
#[cfg(test)]
pub(crate) use kquants::scale_min_k4;
pub use quantize::{i2_s_scale, quant_block, quantize, QuantizeError};
pub use ternary::{dequantize_i2_s, dequantize_i2_s_codes, I2S_BLOCK};

/// Why a tensor could not be decoded. Callers add the tensor name.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    #[error("unsupported type {ty}: gguf-gate cannot decode it")]
    Unsupported { ty: GgmlType },

    #[error("{ty}: {elements} elements take {expected_bytes} bytes, but {got_bytes} were given")]
    SizeMismatch {
        ty: GgmlType,
        elements: usize,
        expected_bytes: usize,
        got_bytes: usize,
    },

    #[error("{ty}: {elements} elements is not a whole number of {block}-element blocks")]
    NotBlockMultiple {
        ty: GgmlType,
        elements: usize,
        block: usize,
    },
}

/// One block-quantized (or plain element) format: `BLOCK` values stored in `BYTES`
/// bytes, each block decoded independently of every other.
pub trait BlockFormat {
    /// Elements per block.
    const BLOCK: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// Decode one block. `block.len() == BYTES` and `out.len() == BLOCK` (the caller,
    /// [`dequantize`], guarantees both); the function is pure and never panics.
    fn decode(block: &[u8], out: &mut [f32]);
}

/// Decode `data` (the raw bytes of `elements` values of type `ty`) into `out` (len == elements).
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    use GgmlType as T;
    match ty {
        T::F32 => run::<float::F32>(ty, data, out),
        T::F16 => run::<float::F16>(ty, data, out),
        T::Bf16 => run::<float::Bf16>(ty, data, out),
        T::F64 => run::<float::F64>(ty, data, out),
        T::I8 => run::<float::I8>(ty, data, out),
        T::I16 => run::<float::I16>(ty, data, out),
        T::I32 => run::<float::I32>(ty, data, out),
        T::Q4_0 => run::<legacy::Q4_0>(ty, data, out),
        T::Q4_1 => run::<legacy::Q4_1>(ty, data, out),
        T::Q5_0 => run::<legacy::Q5_0>(ty, data, out),
        T::Q5_1 => run::<legacy::Q5_1>(ty, data, out),
        T::Q8_0 => run::<legacy::Q8_0>(ty, data, out),
        T::Q8_1 => run::<legacy::Q8_1>(ty, data, out),
        T::Q2K => run::<kquants::Q2K>(ty, data, out),
        T::Q3K => run::<kquants::Q3K>(ty, data, out),
        T::Q4K => run::<kquants::Q4K>(ty, data, out),
        T::Q5K => run::<kquants::Q5K>(ty, data, out),
        T::Q6K => run::<kquants::Q6K>(ty, data, out),
        T::Q8K => run::<kquants::Q8K>(ty, data, out),
        T::Iq4Nl => run::<iquants::Iq4Nl>(ty, data, out),
        T::Iq4Xs => run::<iquants::Iq4Xs>(ty, data, out),
        T::Mxfp4 => run::<iquants::Mxfp4>(ty, data, out),
        T::Tq1_0 => run::<ternary::Tq1_0>(ty, data, out),
        T::Tq2_0 => run::<ternary::Tq2_0>(ty, data, out),
        T::I2S => dequantize_i2_s(data, out),
        T::Iq2Xxs
        | T::Iq2Xs
        | T::Iq3Xxs
        | T::Iq1S
        | T::Iq3S
        | T::Iq2S
        | T::Iq1M
        | T::I64
        | T::Nvfp4
        | T::Q1_0
        | T::Q2_0 => Err(QuantError::Unsupported { ty }),
    }
}

/// Convenience: allocate and decode. Sizes are checked before anything is allocated,
/// so a bogus element count from an untrusted header cannot cause a huge allocation
/// unless `data` really is that large.
pub fn to_f32(ty: GgmlType, data: &[u8], elements: usize) -> Result<Vec<f32>, QuantError> {
    check_size(ty, data.len(), elements)?;
    let mut out = vec![0.0f32; elements];
    dequantize(ty, data, &mut out)?;
    Ok(out)
}

/// Whether `dequantize` supports this type.
pub fn is_supported(ty: GgmlType) -> bool {
    block_geometry(ty).is_some()
}

/// `(elements per block, bytes per block)` as this module decodes the type, or `None`
/// when it is unsupported. I2_S reports its 128-element code block (32 bytes); its
/// 32-byte scale tail is per tensor.
fn block_geometry(ty: GgmlType) -> Option<(usize, usize)> {
    use GgmlType as T;
    fn g<B: BlockFormat>() -> Option<(usize, usize)> {
        Some((B::BLOCK, B::BYTES))
    }
    match ty {
        T::F32 => g::<float::F32>(),
        T::F16 => g::<float::F16>(),
        T::Bf16 => g::<float::Bf16>(),
        T::F64 => g::<float::F64>(),
        T::I8 => g::<float::I8>(),
        T::I16 => g::<float::I16>(),
        T::I32 => g::<float::I32>(),
        T::Q4_0 => g::<legacy::Q4_0>(),
        T::Q4_1 => g::<legacy::Q4_1>(),
        T::Q5_0 => g::<legacy::Q5_0>(),
        T::Q5_1 => g::<legacy::Q5_1>(),
        T::Q8_0 => g::<legacy::Q8_0>(),
        T::Q8_1 => g::<legacy::Q8_1>(),
        T::Q2K => g::<kquants::Q2K>(),
        T::Q3K => g::<kquants::Q3K>(),
        T::Q4K => g::<kquants::Q4K>(),
        T::Q5K => g::<kquants::Q5K>(),
        T::Q6K => g::<kquants::Q6K>(),
        T::Q8K => g::<kquants::Q8K>(),
        T::Iq4Nl => g::<iquants::Iq4Nl>(),
        T::Iq4Xs => g::<iquants::Iq4Xs>(),
        T::Mxfp4 => g::<iquants::Mxfp4>(),
        T::Tq1_0 => g::<ternary::Tq1_0>(),
        T::Tq2_0 => g::<ternary::Tq2_0>(),
        T::I2S => Some((I2S_BLOCK, I2S_BLOCK / 4)),
        _ => None,
    }
}

/// The bytes `elements` values of `ty` occupy, after checking that the count is a
/// whole number of blocks and that `got_bytes` is exactly that size.
fn check_size(ty: GgmlType, got_bytes: usize, elements: usize) -> Result<usize, QuantError> {
    let (block, bytes) = block_geometry(ty).ok_or(QuantError::Unsupported { ty })?;
    if !elements.is_multiple_of(block) {
        return Err(QuantError::NotBlockMultiple {
            ty,
            elements,
            block,
        });
    }
    let mut expected = (elements / block).checked_mul(bytes);
    if ty == GgmlType::I2S {
        expected = expected.and_then(|b| b.checked_add(ternary::I2S_TAIL));
    }
    // An overflowing size can never equal a real slice length: report it as the maximum.
    let expected_bytes = expected.unwrap_or(usize::MAX);
    if got_bytes != expected_bytes {
        return Err(QuantError::SizeMismatch {
            ty,
            elements,
            expected_bytes,
            got_bytes,
        });
    }
    Ok(expected_bytes)
}

/// Check sizes, then decode block by block. Blocks are independent and `decode` is
/// pure, so this loop can become a rayon `par_iter` without changing any result.
fn run<B: BlockFormat>(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    check_size(ty, data.len(), out.len())?;
    for (block, values) in data
        .chunks_exact(B::BYTES)
        .zip(out.chunks_exact_mut(B::BLOCK))
    {
        B::decode(block, values);
    }
    Ok(())
}

/// View one block and its output as fixed-size arrays, so that every later index is
/// a constant or a loop counter checked against a compile-time length. `None` only
/// when the caller broke the [`BlockFormat::decode`] contract.
#[inline(always)]
fn fixed<'a, const BYTES: usize, const BLOCK: usize>(
    block: &'a [u8],
    out: &'a mut [f32],
) -> Option<(&'a [u8; BYTES], &'a mut [f32; BLOCK])> {
    debug_assert_eq!(block.len(), BYTES);
    debug_assert_eq!(out.len(), BLOCK);
    Some((block.try_into().ok()?, out.try_into().ok()?))
}

/// An IEEE half stored little-endian, widened as ggml's `GGML_FP16_TO_FP32` does.
///
/// The `half` crate (F16C on x86) and ggml (F16C, or its software path) agree on every
/// input; a signalling NaN comes out quiet in both. numpy, which gguf-py uses, keeps a
/// signalling NaN signalling instead, so the two references differ there and nowhere else.
#[inline(always)]
pub(crate) fn f16_le(lo: u8, hi: u8) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_the_type_table() {
        for ty in GgmlType::all() {
            let Some((block, bytes)) = block_geometry(ty) else {
                assert!(!is_supported(ty));
                continue;
            };
            if ty == GgmlType::I2S {
                assert_eq!((block, bytes), (128, 32));
                continue;
            }
            assert_eq!(block as u64, ty.block_size(), "{ty} block size");
            assert_eq!(bytes as u64, ty.block_bytes(), "{ty} block bytes");
        }
    }

    #[test]
    fn supported_set_is_the_documented_one() {
        let supported: Vec<&str> = GgmlType::all()
            .filter(|t| is_supported(*t))
            .map(|t| t.name())
            .collect();
        assert_eq!(
            supported,
            [
                "F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
                "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ4_NL", "IQ4_XS", "I8", "I16", "I32", "F64",
                "BF16", "TQ1_0", "TQ2_0", "I2_S", "MXFP4"
            ]
        );
        for ty in GgmlType::all() {
            let expect_unsupported = !is_supported(ty);
            let got = dequantize(ty, &[], &mut []);
            assert_eq!(
                matches!(got, Err(QuantError::Unsupported { .. })),
                expect_unsupported,
                "{ty}: {got:?}"
            );
        }
    }

    #[test]
    fn size_checks() {
        assert_eq!(
            check_size(GgmlType::Q4_0, 36, 64),
            Ok(36),
            "two Q4_0 blocks"
        );
        assert_eq!(
            check_size(GgmlType::Q4_0, 18, 33),
            Err(QuantError::NotBlockMultiple {
                ty: GgmlType::Q4_0,
                elements: 33,
                block: 32
            })
        );
        assert_eq!(
            check_size(GgmlType::Q6K, 209, 256),
            Err(QuantError::SizeMismatch {
                ty: GgmlType::Q6K,
                elements: 256,
                expected_bytes: 210,
                got_bytes: 209
            })
        );
        assert_eq!(check_size(GgmlType::I2S, 64 + 32, 256), Ok(96));
        assert_eq!(check_size(GgmlType::F32, 0, 0), Ok(0));
    }

    #[test]
    fn half_quiets_signalling_nan_like_ggml() {
        // ggml's software path multiplies the NaN by a scale and F16C converts it: both
        // return a quiet NaN with the payload kept. numpy would return 0x7f802000.
        assert_eq!(f16_le(0x01, 0x7c).to_bits(), 0x7fc0_2000);
        assert_eq!(f16_le(0x00, 0x7e).to_bits(), 0x7fc0_0000);
        assert_eq!(f16_le(0x00, 0x3c), 1.0);
        assert_eq!(f16_le(0x01, 0x00).to_bits(), 0x3380_0000);
    }
}
