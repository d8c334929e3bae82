//! Proves that `gguf_gate::quant` decodes every type bit for bit as llama.cpp's
//! reference dequantizers do. The reference vectors in `fixtures/quant/*.qref` were
//! produced by gguf-py (llama.cpp's own Python package) with
//! `scripts/gen-quant-fixtures.py`, whose docstring describes the file layout. Types
//! gguf-py cannot dequantize (I2_S, Q8_1, Q8_K, the integer types, F64) are checked
//! against hand-built blocks with known values. The last tests feed arbitrary bytes
//! and wrong sizes to every type: decoding must answer, never panic.

use std::path::{Path, PathBuf};

use gguf_gate::gguf::GgmlType;
use gguf_gate::quant::{dequantize, is_supported, to_f32, QuantError};

const MAGIC: &[u8; 8] = b"GGQREF01";

/// Every fixture the generator writes; a missing one is a failure, not a skip.
const FIXTURES: &[&str] = &[
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4", "TQ1_0", "TQ2_0",
    "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/quant")
}

struct Fixture {
    ty: GgmlType,
    quantized_blocks: u32,
    raw_blocks: u32,
    data: Vec<u8>,
    expected: Vec<f32>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn load(name: &str) -> Fixture {
    let path = fixture_dir().join(format!("{name}.qref"));
    let b = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/gen-quant-fixtures.py)",
            path.display()
        )
    });
    assert_eq!(&b[..8], MAGIC, "{name}: bad magic");
    let id = u32_at(&b, 8);
    let ty = GgmlType::from_name(name).unwrap_or_else(|| panic!("{name}: unknown type name"));
    assert_eq!(ty.id(), id, "{name}: type id in the file");
    let elements = u32_at(&b, 20) as usize;
    let nbytes = u32_at(&b, 24) as usize;
    let data = b[28..28 + nbytes].to_vec();
    let floats = &b[28 + nbytes..];
    assert_eq!(floats.len(), elements * 4, "{name}: f32 section length");
    let expected = floats
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Fixture {
        ty,
        quantized_blocks: u32_at(&b, 12),
        raw_blocks: u32_at(&b, 16),
        data,
        expected,
    }
}

/// Index of the first value whose bits differ, with a readable description.
fn first_mismatch(ty: GgmlType, got: &[f32], want: &[f32]) -> Option<String> {
    assert_eq!(got.len(), want.len());
    let block = ty.block_size() as usize;
    got.iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits())
        .map(|i| {
            format!(
                "{ty}: first mismatch at element {i} (block {}, offset {}): got {:e} ({:#010x}), gguf-py {:e} ({:#010x})",
                i / block,
                i % block,
                got[i],
                got[i].to_bits(),
                want[i],
                want[i].to_bits()
            )
        })
}

fn check_fixture(name: &str) {
    let f = load(name);
    let got = to_f32(f.ty, &f.data, f.expected.len())
        .unwrap_or_else(|e| panic!("{name}: decoding failed: {e}"));
    if let Some(msg) = first_mismatch(f.ty, &got, &f.expected) {
        panic!("{msg}");
    }
    assert!(
        f.quantized_blocks + f.raw_blocks >= 4,
        "{name}: too few blocks"
    );
}

macro_rules! fixture_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_fixture($name);
            }
        )*
    };
}

fixture_tests! {
    gguf_py_f32 => "F32",
    gguf_py_f16 => "F16",
    gguf_py_bf16 => "BF16",
    gguf_py_q4_0 => "Q4_0",
    gguf_py_q4_1 => "Q4_1",
    gguf_py_q5_0 => "Q5_0",
    gguf_py_q5_1 => "Q5_1",
    gguf_py_q8_0 => "Q8_0",
    gguf_py_mxfp4 => "MXFP4",
    gguf_py_tq1_0 => "TQ1_0",
    gguf_py_tq2_0 => "TQ2_0",
    gguf_py_iq4_nl => "IQ4_NL",
    gguf_py_iq4_xs => "IQ4_XS",
    gguf_py_q2_k => "Q2_K",
    gguf_py_q3_k => "Q3_K",
    gguf_py_q4_k => "Q4_K",
    gguf_py_q5_k => "Q5_K",
    gguf_py_q6_k => "Q6_K",
}

#[test]
fn every_fixture_file_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "qref").then(|| p.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

// ---------------------------------------------------------------------------------
// I2_S: hand-built tensors in bitnet.cpp's x86 layout.

/// Pack ternary values (-1, 0, 1, or 2 for the unused code 3) the way bitnet.cpp's
/// `quantize_i2_s` does (x86, QK_I2_S = 128), then append the scale and padding.
fn pack_i2s(values: &[i8], scale: f32) -> Vec<u8> {
    assert_eq!(values.len() % 128, 0);
    let n = values.len();
    let mut out = vec![0u8; n / 4];
    for (i, block) in values.chunks(128).enumerate() {
        for (j, v) in block.iter().enumerate() {
            let code = (v + 1) as u8;
            out[i * 32 + j % 32] |= code << (6 - 2 * (j / 32));
        }
    }
    out.extend(scale.to_le_bytes());
    out.extend([0xEE; 28]); // padding; must be ignored
    out
}

#[test]
fn i2_s_known_values() {
    let values: Vec<i8> = (0..256).map(|j| ((j * 7 + j / 5) % 3) as i8 - 1).collect();
    let data = pack_i2s(&values, 0.375);
    assert_eq!(data.len(), 256 / 4 + 32);
    let got = to_f32(GgmlType::I2S, &data, 256).unwrap();
    for (j, (g, v)) in got.iter().zip(&values).enumerate() {
        assert_eq!(
            g.to_bits(),
            (f32::from(*v) * 0.375).to_bits(),
            "element {j}"
        );
    }
}

#[test]
fn i2_s_layout_is_byte_j_mod_32_shift_6_minus_2_group() {
    // Only byte 5 of the second block is non-zero: codes 2, 0, 1, 3 from the top bits.
    let mut data = vec![0x55u8; 64]; // 0b01010101: every code 1 (value 0)
    data[32 + 5] = 0b10_00_01_11;
    data.extend((-2.0f32).to_le_bytes());
    data.extend([0u8; 28]);
    let got = to_f32(GgmlType::I2S, &data, 256).unwrap();
    for (j, g) in got.iter().enumerate() {
        let want = match j {
            133 => -2.0, // group 0, shift 6: code 2 -> +1
            165 => 2.0,  // group 1, shift 4: code 0 -> -1
            197 => -0.0, // group 2, shift 2: code 1 -> 0 (0 * -2 = -0)
            229 => -4.0, // group 3, shift 0: code 3 -> +2 (documented decision)
            _ => -0.0,
        };
        assert_eq!(g.to_bits(), f32::to_bits(want), "element {j}");
    }
}

#[test]
fn i2_s_sizes() {
    // n must be a multiple of 128, and the data exactly n/4 + 32 bytes.
    assert_eq!(
        to_f32(GgmlType::I2S, &[0u8; 16 + 32], 64),
        Err(QuantError::NotBlockMultiple {
            ty: GgmlType::I2S,
            elements: 64,
            block: 128
        })
    );
    assert_eq!(
        to_f32(GgmlType::I2S, &[0u8; 32 + 4], 128),
        Err(QuantError::SizeMismatch {
            ty: GgmlType::I2S,
            elements: 128,
            expected_bytes: 64,
            got_bytes: 36
        })
    );
    assert_eq!(to_f32(GgmlType::I2S, &[0u8; 32], 0), Ok(vec![]));
}

// ---------------------------------------------------------------------------------
// Types gguf-py cannot dequantize: hand-built blocks.

#[test]
fn q8_1_block() {
    let mut b = vec![0x00, 0xb8]; // d = -0.5
    b.extend([0x12, 0x34]); // s: not used for values
    b.extend((0..32).map(|j: i32| (j * 8 - 128) as i8 as u8));
    let got = to_f32(GgmlType::Q8_1, &b, 32).unwrap();
    for (j, g) in got.iter().enumerate() {
        assert_eq!(*g, (j as f32 * 8.0 - 128.0) * -0.5);
    }
}

#[test]
fn q8_k_two_blocks() {
    let mut b = Vec::new();
    for d in [1.5f32, -0.125] {
        b.extend(d.to_le_bytes());
        b.extend((0..256).map(|j: i32| (255 - j) as u8));
        b.extend([0u8; 32]);
    }
    let got = to_f32(GgmlType::Q8K, &b, 512).unwrap();
    for (i, g) in got.iter().enumerate() {
        let d = if i < 256 { 1.5 } else { -0.125 };
        let q = (255 - (i % 256) as i32) as u8 as i8;
        assert_eq!(*g, d * f32::from(q), "element {i}");
    }
}

#[test]
fn integer_and_f64_elements() {
    assert_eq!(to_f32(GgmlType::I8, &[1, 0xfe], 2).unwrap(), [1.0, -2.0]);
    assert_eq!(
        to_f32(GgmlType::I16, &(-300i16).to_le_bytes(), 1).unwrap(),
        [-300.0]
    );
    assert_eq!(
        to_f32(GgmlType::I32, &(i32::MAX).to_le_bytes(), 1).unwrap(),
        [2_147_483_648.0]
    );
    assert_eq!(
        to_f32(GgmlType::F64, &(1.0f64 + 1e-12).to_le_bytes(), 1).unwrap(),
        [1.0]
    );
}

// ---------------------------------------------------------------------------------
// Errors.

#[test]
fn unsupported_types_are_refused_with_their_name() {
    for name in [
        "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ3_S", "IQ2_S", "IQ1_M", "I64", "NVFP4", "Q1_0",
        "Q2_0",
    ] {
        let ty = GgmlType::from_name(name).unwrap();
        assert!(!is_supported(ty), "{name}");
        let bytes = ty.tensor_bytes(ty.block_size()).unwrap() as usize;
        let err = to_f32(ty, &vec![0u8; bytes], ty.block_size() as usize).unwrap_err();
        assert_eq!(err, QuantError::Unsupported { ty });
        assert_eq!(
            err.to_string(),
            format!("unsupported type {name}: gguf-gate cannot decode it")
        );
    }
}

#[test]
fn size_and_block_errors() {
    assert_eq!(
        to_f32(GgmlType::Q4K, &[0u8; 143], 256),
        Err(QuantError::SizeMismatch {
            ty: GgmlType::Q4K,
            elements: 256,
            expected_bytes: 144,
            got_bytes: 143
        })
    );
    assert_eq!(
        to_f32(GgmlType::Q8_0, &[0u8; 34], 48),
        Err(QuantError::NotBlockMultiple {
            ty: GgmlType::Q8_0,
            elements: 48,
            block: 32
        })
    );
    // Output longer than the data describes.
    let mut out = [0f32; 64];
    assert_eq!(
        dequantize(GgmlType::Q4_0, &[0u8; 18], &mut out),
        Err(QuantError::SizeMismatch {
            ty: GgmlType::Q4_0,
            elements: 64,
            expected_bytes: 36,
            got_bytes: 18
        })
    );
    // Huge element counts fail before allocating.
    assert!(matches!(
        to_f32(GgmlType::F32, &[0u8; 4], usize::MAX / 2),
        Err(QuantError::SizeMismatch { .. })
    ));
    let msg = to_f32(GgmlType::Q8_0, &[0u8; 33], 32)
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "Q8_0: 32 elements take 34 bytes, but 33 were given");
}

// ---------------------------------------------------------------------------------
// No input panics.

/// A small deterministic generator (xorshift64*), so the test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

#[test]
fn random_bytes_of_the_right_length_decode_for_every_supported_type() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for ty in GgmlType::all().filter(|t| is_supported(*t)) {
        let unit = if ty == GgmlType::I2S {
            128
        } else {
            ty.block_size()
        };
        for blocks in [0u64, 1, 2, 7] {
            let elements = unit * blocks;
            let bytes = ty.tensor_bytes(elements).unwrap() as usize;
            for fill in [None, Some(0x00u8), Some(0xFF)] {
                let data = match fill {
                    None => rng.bytes(bytes),
                    Some(b) => vec![b; bytes],
                };
                let got = to_f32(ty, &data, elements as usize)
                    .unwrap_or_else(|e| panic!("{ty} x{elements}: {e}"));
                assert_eq!(got.len(), elements as usize);
            }
        }
    }
}

#[test]
fn wrong_lengths_never_panic() {
    let mut rng = Rng(42);
    for ty in GgmlType::all() {
        for elements in [0usize, 1, 3, 31, 32, 33, 128, 255, 256, 257, 512] {
            let right = ty.tensor_bytes(elements as u64).map(|b| b as usize);
            for bytes in [0usize, 1, 17, 18, 31, 32, 33, 96, 144, 291, 292, 1000] {
                let data = rng.bytes(bytes);
                let mut out = vec![0f32; elements];
                let r = dequantize(ty, &data, &mut out);
                if !is_supported(ty) {
                    assert_eq!(r, Err(QuantError::Unsupported { ty }));
                } else if r.is_ok() {
                    assert_eq!(Some(bytes), right, "{ty}: {elements} from {bytes} bytes");
                }
            }
        }
    }
}
