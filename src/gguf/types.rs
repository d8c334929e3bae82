//! The ggml tensor type table: every type id a GGUF file may name, with its block
//! size and bytes per block, so that tensor sizes are computed exactly (and with
//! checked arithmetic) before any tensor byte is touched.
//!
//! Ids follow `enum ggml_type` in current ggml (`ggml/include/ggml.h`); sizes follow
//! `type_traits` in `ggml/src/ggml.c`. Id 36 is BitNet's `I2_S` as bitnet.cpp uses it
//! (upstream ggml once used 36 for the since-removed `IQ4_NL_4_4`).

use std::fmt;

/// Size of the per-tensor tail that holds I2_S's scale (bitnet.cpp pads one f32 to 32 bytes).
pub const I2S_TAIL_BYTES: u64 = 32;

/// A tensor element type known to ggml (or to bitnet.cpp, for `I2_S`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq3Xxs,
    Iq1S,
    Iq4Nl,
    Iq3S,
    Iq2S,
    Iq4Xs,
    I8,
    I16,
    I32,
    I64,
    F64,
    Iq1M,
    Bf16,
    Tq1_0,
    Tq2_0,
    I2S,
    Mxfp4,
    Nvfp4,
    Q1_0,
    Q2_0,
}

/// What the table says about one type id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeLookup {
    Known(GgmlType),
    /// An id ggml once used and has since removed; files naming it cannot be loaded.
    Removed(&'static str),
    Unknown,
}

/// `(type, id, name, elements per block, bytes per block)`.
const TABLE: &[(GgmlType, u32, &str, u64, u64)] = &[
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 36),
    (GgmlType::Q2K, 10, "Q2_K", 256, 84),
    (GgmlType::Q3K, 11, "Q3_K", 256, 110),
    (GgmlType::Q4K, 12, "Q4_K", 256, 144),
    (GgmlType::Q5K, 13, "Q5_K", 256, 176),
    (GgmlType::Q6K, 14, "Q6_K", 256, 210),
    (GgmlType::Q8K, 15, "Q8_K", 256, 292),
    (GgmlType::Iq2Xxs, 16, "IQ2_XXS", 256, 66),
    (GgmlType::Iq2Xs, 17, "IQ2_XS", 256, 74),
    (GgmlType::Iq3Xxs, 18, "IQ3_XXS", 256, 98),
    (GgmlType::Iq1S, 19, "IQ1_S", 256, 50),
    (GgmlType::Iq4Nl, 20, "IQ4_NL", 32, 18),
    (GgmlType::Iq3S, 21, "IQ3_S", 256, 110),
    (GgmlType::Iq2S, 22, "IQ2_S", 256, 82),
    (GgmlType::Iq4Xs, 23, "IQ4_XS", 256, 136),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::Iq1M, 29, "IQ1_M", 256, 56),
    (GgmlType::Bf16, 30, "BF16", 1, 2),
    (GgmlType::Tq1_0, 34, "TQ1_0", 256, 54),
    (GgmlType::Tq2_0, 35, "TQ2_0", 256, 66),
    // bitnet.cpp: blck_size 1, type_size 1, and ggml_nbytes() = n/4 + 32 (see `tensor_bytes`).
    (GgmlType::I2S, 36, "I2_S", 1, 1),
    (GgmlType::Mxfp4, 39, "MXFP4", 32, 17),
    (GgmlType::Nvfp4, 40, "NVFP4", 64, 36),
    (GgmlType::Q1_0, 41, "Q1_0", 128, 18),
    (GgmlType::Q2_0, 42, "Q2_0", 128, 34),
];

/// Ids that ggml assigned once and removed; kept so the error can say what they were.
const REMOVED: &[(u32, &str)] = &[
    (4, "Q4_2"),
    (5, "Q4_3"),
    (31, "Q4_0_4_4"),
    (32, "Q4_0_4_8"),
    (33, "Q4_0_8_8"),
    (37, "IQ4_NL_4_8"),
    (38, "IQ4_NL_8_8"),
];

impl GgmlType {
    /// Every known type, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|row| row.0)
    }

    fn row(self) -> &'static (GgmlType, u32, &'static str, u64, u64) {
        // The table lists every variant exactly once (tested below), so this always finds one.
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[0])
    }

    pub fn lookup(id: u32) -> TypeLookup {
        if let Some(row) = TABLE.iter().find(|row| row.1 == id) {
            return TypeLookup::Known(row.0);
        }
        match REMOVED.iter().find(|row| row.0 == id) {
            Some(row) => TypeLookup::Removed(row.1),
            None => TypeLookup::Unknown,
        }
    }

    pub fn from_name(name: &str) -> Option<GgmlType> {
        TABLE
            .iter()
            .find(|row| row.2.eq_ignore_ascii_case(name))
            .map(|row| row.0)
    }

    pub fn id(self) -> u32 {
        self.row().1
    }

    /// The ggml name, as gguf-py and llama.cpp print it ("Q4_1", "BF16", "I2_S").
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        self.row().3
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        self.row().4
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 | GgmlType::F64
        )
    }

    /// Bytes of a tensor of `elements` elements, or `None` when the count is not a
    /// whole number of blocks or the size overflows `u64`.
    pub fn tensor_bytes(self, elements: u64) -> Option<u64> {
        if self == GgmlType::I2S {
            // Four 2-bit codes per byte, then the scale tail.
            if !elements.is_multiple_of(4) {
                return None;
            }
            return (elements / 4).checked_add(I2S_TAIL_BYTES);
        }
        if !elements.is_multiple_of(self.block_size()) {
            return None;
        }
        (elements / self.block_size()).checked_mul(self.block_bytes())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of a `general.file_type` value (`enum llama_ftype`), for summaries.
pub fn file_type_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "ALL_F32",
        1 => "MOSTLY_F16",
        2 => "MOSTLY_Q4_0",
        3 => "MOSTLY_Q4_1",
        7 => "MOSTLY_Q8_0",
        8 => "MOSTLY_Q5_0",
        9 => "MOSTLY_Q5_1",
        10 => "MOSTLY_Q2_K",
        11 => "MOSTLY_Q3_K_S",
        12 => "MOSTLY_Q3_K_M",
        13 => "MOSTLY_Q3_K_L",
        14 => "MOSTLY_Q4_K_S",
        15 => "MOSTLY_Q4_K_M",
        16 => "MOSTLY_Q5_K_S",
        17 => "MOSTLY_Q5_K_M",
        18 => "MOSTLY_Q6_K",
        19 => "MOSTLY_IQ2_XXS",
        20 => "MOSTLY_IQ2_XS",
        21 => "MOSTLY_Q2_K_S",
        22 => "MOSTLY_IQ3_XS",
        23 => "MOSTLY_IQ3_XXS",
        24 => "MOSTLY_IQ1_S",
        25 => "MOSTLY_IQ4_NL",
        26 => "MOSTLY_IQ3_S",
        27 => "MOSTLY_IQ3_M",
        28 => "MOSTLY_IQ2_S",
        29 => "MOSTLY_IQ2_M",
        30 => "MOSTLY_IQ4_XS",
        31 => "MOSTLY_IQ1_M",
        32 => "MOSTLY_BF16",
        36 => "MOSTLY_TQ1_0",
        37 => "MOSTLY_TQ2_0",
        38 => "MOSTLY_MXFP4_MOE",
        39 => "MOSTLY_NVFP4",
        // bitnet.cpp's llama.cpp fork uses 40 for I2_S; upstream for Q1_0.
        40 => "MOSTLY_Q1_0 or MOSTLY_I2_S (bitnet.cpp)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_round_trip() {
        let mut ids: Vec<u32> = TABLE.iter().map(|r| r.1).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), TABLE.len());
        for ty in GgmlType::all() {
            assert_eq!(GgmlType::lookup(ty.id()), TypeLookup::Known(ty));
            assert_eq!(GgmlType::from_name(ty.name()), Some(ty));
        }
        for (id, name) in REMOVED {
            assert_eq!(GgmlType::lookup(*id), TypeLookup::Removed(name));
        }
        assert_eq!(GgmlType::lookup(43), TypeLookup::Unknown);
    }

    #[test]
    fn sizes_follow_ggml() {
        assert_eq!(GgmlType::Q4_1.tensor_bytes(64), Some(40));
        assert_eq!(GgmlType::Q4_1.tensor_bytes(33), None);
        assert_eq!(GgmlType::Q6K.tensor_bytes(512), Some(420));
        assert_eq!(GgmlType::I2S.tensor_bytes(256), Some(64 + 32));
        assert_eq!(GgmlType::I2S.tensor_bytes(6), None);
        assert_eq!(GgmlType::F32.tensor_bytes(u64::MAX / 2), None);
    }
}
