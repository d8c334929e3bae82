//! Which instruction set the matrix kernels run on. The dot products (`dot.rs`) are one
//! source compiled once per path — plain (the reference), with AVX2 + FMA, and with
//! AVX-512 (F, BW, VL, DQ and VNNI: Ice Lake, Zen 4 and later; the AVX-512 path adds the
//! kernels of `wide.rs`) on x86-64, with NEON (`neon.rs`) on aarch64 — and the best one
//! this CPU runs is chosen at run time (`is_x86_feature_detected!`,
//! `is_aarch64_feature_detected!`).
//! Because the kernels' integer parts are exact and their float parts are added in one
//! fixed order, every path gives the same bits; `GGUF_GATE_ISA=scalar|avx2|avx512|neon`
//! forces one (tests compare them; a value this CPU cannot run, or an unknown one, is an
//! error the binary reports as a usage error). On other architectures only the scalar
//! path exists.

use std::sync::OnceLock;

use super::dot::{self, dot_row};
use super::{Activations, MatRef};

/// The environment variable that forces an instruction set.
pub const ISA_VAR: &str = "GGUF_GATE_ISA";

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
    Neon,
}

/// `GGUF_GATE_ISA` names something unknown or something this CPU cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    #[error(
        "{ISA_VAR}={0:?} is not an instruction set gguf-gate knows (scalar, avx2, avx512, neon)"
    )]
    Unknown(String),
    #[error("{ISA_VAR}={name}: this CPU cannot run it (available: {available})", name = .0.name(), available = Isa::available_names())]
    Unavailable(Isa),
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            // Every feature the path's `#[target_feature]` enables must be present.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2_features(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                avx2_features()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            // neon.rs reads bytes as little-endian lanes.
            Isa::Neon => {
                cfg!(target_endian = "little") && std::arch::is_aarch64_feature_detected!("neon")
            }
            _ => false,
        }
    }

    /// The paths this CPU runs, fastest last.
    pub fn available_all() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.available()).collect()
    }

    fn available_names() -> String {
        Isa::available_all()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The fastest path this CPU runs.
    pub fn best() -> Isa {
        Isa::available_all().pop().unwrap_or(Isa::Scalar)
    }

    /// Parse a `GGUF_GATE_ISA` value and check that this CPU runs it.
    pub fn parse(value: &str) -> Result<Isa, IsaError> {
        let isa = Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| IsaError::Unknown(value.to_string()))?;
        if isa.available() {
            Ok(isa)
        } else {
            Err(IsaError::Unavailable(isa))
        }
    }

    /// `GGUF_GATE_ISA` when set (validated), else `None`.
    pub fn from_env() -> Result<Option<Isa>, IsaError> {
        match std::env::var(ISA_VAR) {
            Ok(v) if !v.trim().is_empty() => Isa::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// The path new models use: the forced one when `GGUF_GATE_ISA` is valid, else the
    /// fastest (the binary refuses an invalid value before anything runs).
    pub fn selected() -> Isa {
        static SELECTED: OnceLock<Isa> = OnceLock::new();
        *SELECTED.get_or_init(|| Isa::from_env().ok().flatten().unwrap_or_else(Isa::best))
    }
}

/// The features the AVX2 paths enable (AVX2, FMA, F16C and the bit-manipulation set that
/// come with it on every x86-64-v3 CPU).
#[cfg(target_arch = "x86_64")]
fn avx2_features() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("lzcnt")
        && std::arch::is_x86_feature_detected!("popcnt")
}

/// `out[i * n + t] = row (first + i) · acts[t]` for the rows `out` covers.
#[inline(always)]
fn rows_body<const SIMD: bool>(
    w: &MatRef<'_>,
    acts: &[Activations],
    first: usize,
    out: &mut [f32],
) {
    let n = acts.len().max(1);
    for (i, o) in out.chunks_exact_mut(n).enumerate() {
        let row = w.row(first + i);
        if dot::ternary_row_cols::<SIMD>(w, row, acts, o) {
            continue;
        }
        for (dst, a) in o.iter_mut().zip(acts) {
            *dst = dot_row::<SIMD>(w, row, a);
        }
    }
}

fn rows_scalar(w: &MatRef<'_>, acts: &[Activations], first: usize, out: &mut [f32]) {
    rows_body::<false>(w, acts, first, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn rows_avx2(w: &MatRef<'_>, acts: &[Activations], first: usize, out: &mut [f32]) {
    // SAFETY: this function only runs where AVX2, FMA and F16C are present.
    if !unsafe { super::tiles::rows::<false>(w, acts, first, out) } {
        rows_body::<true>(w, acts, first, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi1,bmi2,lzcnt,popcnt"
)]
unsafe fn rows_avx512(w: &MatRef<'_>, acts: &[Activations], first: usize, out: &mut [f32]) {
    // SAFETY: as above; AVX-512 CPUs have AVX2, FMA and F16C.
    if !unsafe { super::tiles::rows::<true>(w, acts, first, out) } {
        rows_body::<true>(w, acts, first, out);
    }
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
unsafe fn rows_neon(w: &MatRef<'_>, acts: &[Activations], first: usize, out: &mut [f32]) {
    rows_body::<true>(w, acts, first, out);
}

/// Rows `first..` of `W · acts` on the path `isa` (see [`rows_body`] for the layout).
pub(super) fn rows(isa: Isa, w: &MatRef<'_>, acts: &[Activations], first: usize, out: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only ever selected after `available()` confirmed AVX2
        // (`Isa::parse`, `Isa::best`, and `Model::with_isa` check it).
        Isa::Avx2 if isa.available() => unsafe { rows_avx2(w, acts, first, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX-512F/BW/VL.
        Isa::Avx512 if isa.available() => unsafe { rows_avx512(w, acts, first, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above, for NEON.
        Isa::Neon if isa.available() => unsafe { rows_neon(w, acts, first, out) },
        _ => rows_scalar(w, acts, first, out),
    }
}
