//! Streaming one checkpoint tensor into its GGUF bytes, a block of rows at a time:
//! decode (F32/F16/BF16, or unpack BitNet ternary codes and apply the scale), reorder
//! Q/K rows exactly as convert_hf_to_gguf.py's `permute()` does, encode (F32, F16 with
//! round-to-nearest-even, BF16 likewise) and write. Memory is one block of rows, never
//! the whole tensor; the result depends only on the input bytes.

use std::io::Write;
use std::path::Path;

use super::error::ExportError;
use super::safetensors::{ternary_row, FloatType};
use crate::gguf::GgmlType;

/// Elements converted per block (a few MB of scratch at most).
pub const BLOCK_ELEMENTS: usize = 1 << 18;

/// Where a tensor's values come from.
#[derive(Clone, Copy, Debug)]
pub enum Decode {
    Float(FloatType),
    /// BitNet packed ternary: `[rows / 4, cols]` bytes; each weight is -unit, 0 or +unit.
    Ternary {
        unit: f32,
    },
}

/// One tensor to convert. Rows and columns are the Hugging Face (PyTorch) view: `rows`
/// is the first dimension, `cols` the product of the others (1-D tensors: one row).
pub struct Job<'a> {
    /// The checkpoint name, for errors.
    pub name: &'a str,
    pub data: &'a [u8],
    pub decode: Decode,
    pub rows: usize,
    pub cols: usize,
    /// `Some(n_head)`: permute rows as llama.cpp does for Q (n_head) and K (n_head_kv).
    pub permute: Option<usize>,
    /// Add 1 to every value (Gemma's norms), in the checkpoint's precision as
    /// convert_hf_to_gguf.py does: F16 sums are rounded to F16, BF16 and F32 sums to F32.
    pub plus_one: bool,
    pub out: GgmlType,
    /// The file being written, for I/O errors.
    pub output: &'a Path,
}

/// The source row that lands at destination row `d` after convert_hf_to_gguf.py's
/// `permute(w, n_head)`: `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)` —
/// within each head, the two halves of the rotary pairs are interleaved, turning
/// Hugging Face's rotate-half RoPE layout into llama.cpp's adjacent-pair layout.
pub fn permuted_source_row(d: usize, rows: usize, n_head: usize) -> usize {
    let per_head = rows / n_head;
    let half = per_head / 2;
    let (h, within) = (d / per_head, d % per_head);
    let (i, j) = (within / 2, within % 2);
    h * per_head + j * half + i
}

/// Bytes a tensor of `elements` values takes in `ty` (F32, F16 or BF16).
fn out_bytes(ty: GgmlType) -> usize {
    if ty == GgmlType::F32 {
        4
    } else {
        2
    }
}

/// Convert `job`, writing its bytes to `out`; `progress(n)` after each block written.
pub fn run(
    job: &Job<'_>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ExportError> {
    if let Some(n) = job.permute {
        if n == 0 || !job.rows.is_multiple_of(2 * n) {
            return Err(ExportError::ShapeMismatch {
                tensor: job.name.to_string(),
                expected: vec![],
                found: vec![job.rows as u64, job.cols as u64],
                why: format!("rows must be a multiple of 2 x {n} heads to permute for RoPE"),
            });
        }
    }
    let packed_rows = job.rows / 4;
    if matches!(job.decode, Decode::Ternary { .. }) && !job.rows.is_multiple_of(4) {
        return Err(ExportError::ShapeMismatch {
            tensor: job.name.to_string(),
            expected: vec![],
            found: vec![job.rows as u64, job.cols as u64],
            why: "packed ternary weights hold 4 rows per byte row".into(),
        });
    }
    let src_row_bytes = match job.decode {
        Decode::Float(t) => job.cols.checked_mul(t.bytes()),
        Decode::Ternary { .. } => Some(job.cols),
    };
    let block_rows = (BLOCK_ELEMENTS / job.cols.max(1)).max(1);
    let mut values = vec![0f32; block_rows.min(job.rows.max(1)) * job.cols];
    let mut bytes: Vec<u8> = Vec::with_capacity(values.len() * out_bytes(job.out));
    let short = || ExportError::ShortData {
        tensor: job.name.to_string(),
    };
    let mut sources: Vec<usize> = Vec::with_capacity(block_rows);
    let mut row = 0;
    while row < job.rows {
        let n = block_rows.min(job.rows - row);
        sources.clear();
        for k in 0..n {
            let d = row + k;
            let s = match job.permute {
                Some(h) => permuted_source_row(d, job.rows, h),
                None => d,
            };
            sources.push(s);
            let dst = values
                .get_mut(k * job.cols..(k + 1) * job.cols)
                .ok_or_else(short)?;
            match job.decode {
                Decode::Float(t) => {
                    let len = src_row_bytes.ok_or_else(short)?;
                    let src = job.data.get(s * len..(s + 1) * len).ok_or_else(short)?;
                    t.decode(src, dst);
                    if job.plus_one {
                        for x in dst.iter_mut() {
                            *x += 1.0;
                            if t == FloatType::F16 {
                                *x = half::f16::from_f32(*x).to_f32();
                            }
                        }
                    }
                }
                Decode::Ternary { unit } => {
                    let (slot, p) = (s / packed_rows, s % packed_rows);
                    let src = job
                        .data
                        .get(p * job.cols..(p + 1) * job.cols)
                        .ok_or_else(short)?;
                    ternary_row(src, slot as u32, unit, dst).map_err(|bad| ExportError::Bitnet {
                        tensor: job.name.to_string(),
                        problem: format!(
                            "packed byte [{p}, {}] holds the 2-bit code 3 in slot {slot}; packed ternary weights use 0 (-1), 1 (0) and 2 (+1)",
                            bad.col
                        ),
                    })?;
                }
            }
        }
        let block = values.get(..n * job.cols).ok_or_else(short)?;
        bytes.clear();
        encode(job.out, block, &mut bytes).map_err(|(i, value)| {
            // Name the element as the checkpoint holds it (before any permutation).
            let (k, col) = (i / job.cols.max(1), i % job.cols.max(1));
            let src_row = sources.get(k).copied().unwrap_or(row + k);
            let (outtype, suggest) = if job.out == GgmlType::F16 {
                ("F16", "bf16 or f32")
            } else {
                ("BF16", "f32")
            };
            ExportError::Overflow {
                tensor: job.name.to_string(),
                index: (src_row as u64) * (job.cols as u64) + col as u64,
                value,
                outtype,
                suggest,
            }
        })?;
        out.write_all(&bytes)
            .map_err(|e| ExportError::io(job.output, e))?;
        progress(bytes.len() as u64);
        row += n;
    }
    Ok(())
}

/// Encode `values` as `ty` into `out`. A finite value that does not fit (|x| above
/// F16's 65504, or BF16's ~3.4e38 after rounding) is `Err((position, value))`;
/// NaN and infinities pass through unchanged (the gate's `tensor-finite` reports them).
fn encode(ty: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<(), (usize, f32)> {
    match ty {
        GgmlType::F16 => {
            for (i, &x) in values.iter().enumerate() {
                let h = half::f16::from_f32(x);
                if x.is_finite() && !h.is_finite() {
                    return Err((i, x));
                }
                out.extend_from_slice(&h.to_bits().to_le_bytes());
            }
        }
        GgmlType::Bf16 => {
            for (i, &x) in values.iter().enumerate() {
                let h = half::bf16::from_f32(x);
                if x.is_finite() && !h.is_finite() {
                    return Err((i, x));
                }
                out.extend_from_slice(&h.to_bits().to_le_bytes());
            }
        }
        _ => {
            for &x in values {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// convert_hf_to_gguf.py's permute on a list of row labels, with numpy's semantics
    /// written out: reshape (n_head, 2, half) -> swap the last two axes -> flatten.
    fn reference_permute(rows: usize, n_head: usize) -> Vec<usize> {
        let half = rows / n_head / 2;
        let mut out = Vec::new();
        for h in 0..n_head {
            for i in 0..half {
                for j in 0..2 {
                    out.push(h * 2 * half + j * half + i);
                }
            }
        }
        out
    }

    #[test]
    fn permutation_matches_the_reference() {
        for (rows, heads) in [(8, 1), (8, 2), (576, 9), (192, 3), (64, 4)] {
            let got: Vec<usize> = (0..rows)
                .map(|d| permuted_source_row(d, rows, heads))
                .collect();
            assert_eq!(
                got,
                reference_permute(rows, heads),
                "{rows} rows, {heads} heads"
            );
        }
        // One head of 4 rows [a0 a1 b0 b1] becomes [a0 b0 a1 b1].
        let got: Vec<usize> = (0..4).map(|d| permuted_source_row(d, 4, 1)).collect();
        assert_eq!(got, [0, 2, 1, 3]);
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn convert(job: &Job<'_>) -> Result<Vec<u8>, ExportError> {
        let mut out = Vec::new();
        let mut written = 0;
        run(job, &mut out, &mut |n| written += n)?;
        assert_eq!(written, out.len() as u64);
        Ok(out)
    }

    #[test]
    fn permutes_rows_and_encodes_f16() {
        let data = f32s(&[0., 0., 1., 1., 2., 2., 3., 3.]);
        let job = Job {
            name: "q",
            data: &data,
            decode: Decode::Float(FloatType::F32),
            rows: 4,
            cols: 2,
            permute: Some(1),
            plus_one: false,
            out: GgmlType::F16,
            output: Path::new("out.gguf"),
        };
        let got: Vec<f32> = convert(&job)
            .unwrap()
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect();
        assert_eq!(got, [0., 0., 2., 2., 1., 1., 3., 3.]);
    }

    #[test]
    fn rounding_is_nearest_even() {
        // 1 + 2^-11 is halfway between two f16 values: ties go to the even one (1.0).
        let data = f32s(&[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), 65504.0]);
        let job = Job {
            name: "t",
            data: &data,
            decode: Decode::Float(FloatType::F32),
            rows: 1,
            cols: 3,
            permute: None,
            plus_one: false,
            out: GgmlType::F16,
            output: Path::new("out.gguf"),
        };
        let bits: Vec<u16> = convert(&job)
            .unwrap()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(bits, [0x3c00, 0x3c02, 0x7bff]);
    }

    #[test]
    fn plus_one_in_the_sources_precision() {
        // Gemma's norms: w - 1 stored, w written. From F16 the sum is rounded to F16 (as
        // torch adds two f16 tensors); from F32 it stays F32.
        let small = 2f32.powi(-12); // below half an F16 step at 1.0
        let f16_src: Vec<u8> = [half::f16::from_f32(small), half::f16::from_f32(-0.5)]
            .iter()
            .flat_map(|h| h.to_bits().to_le_bytes())
            .collect();
        let f32_src = f32s(&[small, -0.5]);
        let out = |data: &[u8], ft| {
            let job = Job {
                name: "t",
                data,
                decode: Decode::Float(ft),
                rows: 1,
                cols: 2,
                permute: None,
                plus_one: true,
                out: GgmlType::F32,
                output: Path::new("out.gguf"),
            };
            let bytes = convert(&job).unwrap();
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<f32>>()
        };
        assert_eq!(out(&f16_src, FloatType::F16), [1.0, 0.5]);
        assert_eq!(out(&f32_src, FloatType::F32), [1.0 + small, 0.5]);
    }

    #[test]
    fn overflow_names_the_element() {
        let data = f32s(&[1.0, 1.0, 1.0, 70000.0]);
        let job = Job {
            name: "model.layers.0.mlp.up_proj.weight",
            data: &data,
            decode: Decode::Float(FloatType::F32),
            rows: 2,
            cols: 2,
            permute: None,
            plus_one: false,
            out: GgmlType::F16,
            output: Path::new("out.gguf"),
        };
        match convert(&job) {
            Err(ExportError::Overflow { tensor, index, .. }) => {
                assert_eq!(
                    (tensor.as_str(), index),
                    ("model.layers.0.mlp.up_proj.weight", 3)
                );
            }
            other => panic!("{other:?}"),
        }
        // Non-finite inputs pass through (the gate's tensor-finite rule reports them).
        let data = f32s(&[f32::NAN, f32::INFINITY]);
        let job = Job {
            name: "t",
            data: &data,
            decode: Decode::Float(FloatType::F32),
            rows: 1,
            cols: 2,
            permute: None,
            plus_one: false,
            out: GgmlType::Bf16,
            output: Path::new("out.gguf"),
        };
        assert_eq!(convert(&job).unwrap().len(), 4);
    }

    #[test]
    fn ternary_blocks_span_many_rows() {
        // 8 rows x 3 cols packed into 2 rows; every code 2 (+1) except one 0 (-1).
        let mut data = vec![0b1010_1010u8; 6];
        data[4] = 0b1010_1000; // packed row 1, col 1: slot 0 is -1 -> row 1
        let job = Job {
            name: "w",
            data: &data,
            decode: Decode::Ternary { unit: 0.25 },
            rows: 8,
            cols: 3,
            permute: None,
            plus_one: false,
            out: GgmlType::F32,
            output: Path::new("out.gguf"),
        };
        let vals: Vec<f32> = convert(&job)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut want = vec![0.25f32; 24];
        want[3 + 1] = -0.25;
        assert_eq!(vals, want);
        let mut bad = data.clone();
        bad[5] = 0b1110_1010;
        let job = Job { data: &bad, ..job };
        assert!(matches!(convert(&job), Err(ExportError::Bitnet { .. })));
    }

    #[test]
    fn ternary_rows_must_come_in_fours() {
        let job = Job {
            name: "w",
            data: &[0b1010_1010; 3],
            decode: Decode::Ternary { unit: 1.0 },
            rows: 3,
            cols: 1,
            permute: None,
            plus_one: false,
            out: GgmlType::F32,
            output: Path::new("out.gguf"),
        };
        assert!(matches!(
            convert(&job),
            Err(ExportError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn short_data_is_an_error_not_a_panic() {
        let data = f32s(&[1.0]);
        let job = Job {
            name: "t",
            data: &data,
            decode: Decode::Float(FloatType::F32),
            rows: 2,
            cols: 2,
            permute: None,
            plus_one: false,
            out: GgmlType::F32,
            output: Path::new("out.gguf"),
        };
        assert!(convert(&job).is_err());
    }
}
