//! The elementary functions of the forward pass — RoPE's `sinf`, `cosf` and `powf`, the
//! tanh of GELU and of Gemma's logit soft cap, the `expf` of the SwiGLU tail — computed
//! here in Rust instead of by the platform's libm, so that a model's logits are the same
//! bits on every machine. libm's are not: macOS, musl, Windows and glibc each have their
//! own, and even glibc's x86-64 `sinf`, `cosf` and `expf` pick an FMA or an SSE2 build by
//! CPU at run time — the two differ on 12 `sinf` and 22 `cosf` inputs (`sinf(53.42252)`
//! among them; `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA` makes the test below run
//! against the SSE2 build and print the counts — slowly, as glibc's `fma` behind our
//! `mul_add` then runs in software too), so the statically linked binary itself would
//! have depended on the CPU. What remains
//! of libm is `fma`/`fmaf` behind `mul_add` on a build without the FMA instruction, which
//! IEEE 754 defines exactly (one rounding): glibc's and musl's are exact.
//!
//! `sinf` and `cosf` follow glibc's algorithm (Arm's optimized routines, glibc ≥ 2.28:
//! `sysdeps/ieee754/flt-32/s_sinf.c`, `s_sincosf.h`, `sincosf_poly.h`) as its x86-64 FMA
//! build computes it, the range reduction fused, so RoPE gets llama.cpp's angles bit for
//! bit where its references come from (glibc on x86-64 with FMA and AVX2; the test
//! `sin_cos_equal_glibc_fma_on_every_float` compares all 2^32 inputs). Unfused, the
//! reduction changes 12 `sinf` results; the polynomial's FMAs change none. Debian's
//! aarch64 glibc 2.36, whose fast reduction rounds differently, gave the same results on
//! all 2^32 inputs too (checked once under qemu-user). A correctly rounded `sinf` would
//! change the sin or cos of 2.2 % of RoPE's angles (glibc's errors reach 0.56 ulp), and
//! llama.cpp's logits with them (`measure_against_glibc` prints this and the shares below).
//!
//! `expf`, `tanhf` and `powf` are the double-precision functions of the `libm` crate (the
//! rust-lang port of musl, plain IEEE arithmetic in Rust, no platform code) rounded to
//! f32: the nearest float but in rare cases within a double's error of a midpoint.
//! llama.cpp meets them rarely: the SwiGLU tail only when the feed-forward width is not a
//! multiple of 8, GELU through its f16 table, `powf` once per model (equal to glibc's for
//! every RoPE base and width tested below), and the soft cap, which is held to a tolerance
//! (`tests/families.rs`).

/// `sinf(x)`, as glibc's FMA build computes it.
pub fn sinf(y: f32) -> f32 {
    sin_or_cos(y, Want::Sin)
}

/// `cosf(x)`, as glibc's FMA build computes it.
pub fn cosf(y: f32) -> f32 {
    sin_or_cos(y, Want::Cos)
}

/// `expf(x)`: the double-precision `exp` rounded to f32.
pub fn expf(x: f32) -> f32 {
    libm::exp(f64::from(x)) as f32
}

/// `tanhf(x)`: the double-precision `tanh` rounded to f32.
pub fn tanhf(x: f32) -> f32 {
    libm::tanh(f64::from(x)) as f32
}

/// `powf(base, exponent)`: the double-precision `pow` rounded to f32.
pub fn powf(base: f32, exponent: f32) -> f32 {
    libm::pow(f64::from(base), f64::from(exponent)) as f32
}

#[derive(Clone, Copy, PartialEq)]
enum Want {
    Sin,
    Cos,
}

/// The sine polynomial `x + s1 x^3 + s2 x^5 + s3 x^7` on [-π/4, π/4] (glibc's
/// `__sincosf_table`), as bits: -0x1.555545995a603p-3, 0x1.1107605230bc4p-7,
/// -0x1.994eb3774cf24p-13.
const S: [f64; 3] = [
    f64::from_bits(0xbfc5_5554_5995_a603),
    f64::from_bits(0x3f81_1076_0523_0bc4),
    f64::from_bits(0xbf29_94eb_3774_cf24),
];

/// The cosine polynomial `c0 + c1 x^2 + c2 x^4 + c3 x^6 + c4 x^8` on [-π/4, π/4]: 1,
/// -0x1.ffffffd0c621cp-2, 0x1.55553e1068f19p-5, -0x1.6c087e89a359dp-10,
/// 0x1.99343027bf8c3p-16.
const C: [f64; 5] = [
    1.0,
    f64::from_bits(0xbfdf_ffff_fd0c_621c),
    f64::from_bits(0x3fa5_5553_e106_8f19),
    f64::from_bits(0xbf56_c087_e89a_359d),
    f64::from_bits(0x3ef9_9343_027b_f8c3),
];

/// 2/π scaled by 2^24 (0x1.45F306DC9C883p+23), so that the quadrant of the fast
/// reduction lands in bits 24..31.
const TWO_OVER_PI_2_24: f64 = f64::from_bits(0x4164_5f30_6dc9_c883);
/// π/2 as a double (0x1.921FB54442D18p0).
const HALF_PI: f64 = std::f64::consts::FRAC_PI_2;
/// 2π · 2^-64 (0x1.921FB54442D18p-62): one unit of the 2.62 fixed-point remainder of
/// the large reduction.
const TWO_PI_2_POW_MINUS_64: f64 = f64::from_bits(0x3c19_21fb_5444_2d18);

/// 4/π to 192 bits, most significant byte first (4/π · 2^-1 = 0x0.a2f9836e…).
const FOUR_OVER_PI: [u8; 24] = [
    0xa2, 0xf9, 0x83, 0x6e, 0x4e, 0x44, 0x15, 0x29, 0xfc, 0x27, 0x57, 0xd1, 0xf5, 0x34, 0xdd, 0xc0,
    0xdb, 0x62, 0x95, 0x99, 0x3c, 0x43, 0x90, 0x41,
];

/// The 32 bits of 4/π that end with byte `last` (bytes before the first are zero).
fn four_over_pi_window(last: usize) -> u32 {
    (0..4).fold(0u32, |w, k| {
        let byte = (last + k).checked_sub(3).map_or(0, |i| FOUR_OVER_PI[i]);
        (w << 8) | u32::from(byte)
    })
}

/// The sign-less exponent and top three mantissa bits, which glibc's range tests compare.
const fn abstop12(bits: u32) -> u32 {
    (bits >> 20) & 0x7ff
}

fn sin_or_cos(y: f32, want: Want) -> f32 {
    // glibc compares with the float nearest π/4 (its double π/4 converted).
    const PI_OVER_4: u32 = abstop12(0x3f49_0fdb);
    const TINY: u32 = abstop12(0x3980_0000); // 2^-12
    const FAST_LIMIT: u32 = abstop12(0x42f0_0000); // 120
    const INFINITE: u32 = abstop12(0x7f80_0000);
    let bits = y.to_bits();
    let top = abstop12(bits);
    let x = f64::from(y);
    if top < PI_OVER_4 {
        if top < TINY {
            return if want == Want::Sin { y } else { 1.0 };
        }
        return polynomial(x, x * x, want == Want::Cos, false);
    }
    let (reduced, quadrant) = if top < FAST_LIMIT {
        // x - n·π/2 with n the nearest integer to x·2/π (as a fixed-point truncation).
        let n = ((x * TWO_OVER_PI_2_24) as i32).wrapping_add(0x80_0000) >> 24;
        ((-f64::from(n)).mul_add(HALF_PI, x), n as u32)
    } else if top < INFINITE {
        let (reduced, n) = reduce_large(bits);
        // The large reduction works on |y|: the sign enters the quadrant of the signs.
        return finish(reduced, n, n.wrapping_add(bits >> 31), want);
    } else {
        return f32::NAN;
    };
    finish(reduced, quadrant, quadrant, want)
}

/// The polynomial of quadrant `n` on the reduced argument, with the signs of quadrant
/// `sign_quadrant` (they differ only for large negative inputs, as in glibc).
fn finish(reduced: f64, n: u32, sign_quadrant: u32, want: Want) -> f32 {
    let sign = if matches!(sign_quadrant & 3, 1 | 2) {
        -1.0
    } else {
        1.0
    };
    let x = reduced * sign;
    let odd = (n & 1 == 1) != (want == Want::Cos);
    polynomial(x, reduced * reduced, odd, sign_quadrant & 2 != 0)
}

/// glibc's `sinf_poly`: the sine polynomial (`cosine == false`) or the cosine
/// polynomial, negated when `negate_cosine` (glibc's second table). Each `mul_add` is one
/// of the FMAs its FMA build contracts.
fn polynomial(x: f64, x2: f64, cosine: bool, negate_cosine: bool) -> f32 {
    if !cosine {
        let x3 = x * x2;
        let s1 = x2.mul_add(S[2], S[1]);
        let x7 = x3 * x2;
        let s = x3.mul_add(S[0], x);
        return x7.mul_add(s1, s) as f32;
    }
    let x4 = x2 * x2;
    let c2 = x2.mul_add(C[4], C[3]);
    let c1 = x2.mul_add(C[1], C[0]);
    let x6 = x4 * x2;
    let c = x4.mul_add(C[2], c1);
    // Negating every coefficient negates each correctly rounded step exactly.
    let value = x6.mul_add(c2, c) as f32;
    if negate_cosine {
        -value
    } else {
        value
    }
}

/// glibc's `reduce_large`: |y| (the bits of a float ≥ 120) modulo π/2 by a 32×96-bit
/// product with 4/π in 2.62 fixed point, returned as radians in [-π/4, π/4] with the
/// quadrant.
fn reduce_large(bits: u32) -> (f64, u32) {
    let first = ((bits >> 26) & 15) as usize;
    let shift = (bits >> 23) & 7;
    let mantissa = ((bits & 0x7f_ffff) | 0x80_0000) << shift;
    let high = u64::from(mantissa.wrapping_mul(four_over_pi_window(first)));
    let middle = u64::from(mantissa) * u64::from(four_over_pi_window(first + 4));
    let low = u64::from(mantissa) * u64::from(four_over_pi_window(first + 8));
    let fraction = ((low >> 32) | (high << 32)).wrapping_add(middle);
    let n = fraction.wrapping_add(1 << 61) >> 62;
    let remainder = fraction.wrapping_sub(n << 62) as i64;
    (remainder as f64 * TWO_PI_2_POW_MINUS_64, n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constants are the values glibc's hex literals name, and 4/π is 4/π.
    #[test]
    fn constants_are_what_they_say() {
        assert!((S[0] + 1.0 / 6.0).abs() < 1e-6 && (C[1] + 0.5).abs() < 1e-8);
        assert!((TWO_OVER_PI_2_24 - 2f64.powi(25) / std::f64::consts::PI).abs() < 1e-8);
        assert!((TWO_PI_2_POW_MINUS_64 * 2f64.powi(64) - std::f64::consts::TAU).abs() < 1e-15);
        // The first 64 bits of the table are 4/π · 2^63, and the windows slide by 8 bits.
        let head = u64::from(four_over_pi_window(3)) << 32 | u64::from(four_over_pi_window(7));
        assert!((head as f64 / 2f64.powi(63) - 4.0 / std::f64::consts::PI).abs() < 1e-15);
        assert_eq!(four_over_pi_window(0), 0xa2);
        assert_eq!(four_over_pi_window(4), 0xf983_6e4e);
        assert_eq!(four_over_pi_window(23), 0x3c43_9041);
    }

    /// Values glibc 2.36's FMA build returns where it is not correctly rounded (each
    /// within 0.53 ulp): ours must be glibc's, not the nearest float.
    #[test]
    fn glibc_values_where_they_are_not_the_nearest_float() {
        let cases: [(u32, u32); 7] = [
            (1_042_904_071, 1_042_853_456), // sinf(0.16548167)
            (1_077_060_870, 1_051_701_657), // sinf(2.7913222)
            (1_042_825_113, 1_042_775_569),
            (1_044_662_835, 1_044_584_199),
            (1_049_376_001, 1_049_261_590),
            (1_045_905_385, 1_045_801_729),
            (1_112_912_041, 3_162_310_825), // sinf(53.42252): glibc's SSE2 build rounds to nearest
        ];
        for (x, want) in cases {
            let x = f32::from_bits(x);
            assert_eq!(sinf(x).to_bits(), want, "sinf({x})");
            assert_ne!((libm::sin(f64::from(x)) as f32).to_bits(), want);
        }
        // cosf(17.278738): the FMA build rounds to nearest, the SSE2 build does not.
        let x = f32::from_bits(1_099_578_075);
        assert_eq!(cosf(x), libm::cos(f64::from(x)) as f32);
        assert_ne!(cosf(x).to_bits(), 3_082_090_351);
    }

    /// Within glibc's bound (0.5607 ulp) of the double-precision value everywhere we
    /// sample: tiny, fast-reduction and large inputs of both signs, and the edges.
    #[test]
    fn sin_and_cos_are_within_glibcs_bound() {
        let mut worst = 0.0f64;
        for i in (0..=u32::MAX).step_by(4099) {
            let x = f32::from_bits(i);
            if !x.is_finite() {
                assert!(sinf(x).is_nan() && cosf(x).is_nan(), "{x}");
                continue;
            }
            for (ours, exact) in [
                (sinf(x), libm::sin(f64::from(x))),
                (cosf(x), libm::cos(f64::from(x))),
            ] {
                let ulp = f64::from(next_up(exact.abs() as f32) - (exact.abs() as f32));
                let err = (f64::from(ours) - exact).abs() / ulp;
                worst = worst.max(err);
                assert!(err < 0.5607 + 1e-9, "{x}: {ours} vs {exact} ({err} ulp)");
            }
        }
        assert!(
            worst > 0.5,
            "the sample reaches the misrounded cases: {worst}"
        );
        assert_eq!(sinf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(cosf(1e-30), 1.0);
    }

    fn next_up(x: f32) -> f32 {
        f32::from_bits(x.to_bits() + 1)
    }

    /// `powf` is glibc's for RoPE's bases and widths (llama.cpp's `theta_scale`).
    #[test]
    fn rope_frequency_powers() {
        // (base, n_dims, glibc 2.36's powf(base, -2 / n_dims) bits)
        let cases: [(f32, usize, u32); 11] = [
            (10_000.0, 32, 0x3f0f_f59a),
            (10_000.0, 64, 0x3f3f_f911),
            (10_000.0, 80, 0x3f4b_5918),
            (10_000.0, 96, 0x3f53_4db0),
            (10_000.0, 128, 0x3f5d_afd7),
            (10_000.0, 256, 0x3f6e_39f8),
            (100_000.0, 64, 0x3f32_a506),
            (500_000.0, 128, 0x3f50_8ac1),
            (1_000_000.0, 64, 0x3f26_3de0),
            (1_000_000.0, 128, 0x3f4e_4bac),
            (5_000_000.0, 128, 0x3f49_2c27),
        ];
        for (base, n_dims, want) in cases {
            assert_eq!(
                powf(base, -2.0 / n_dims as f32).to_bits(),
                want,
                "{base} {n_dims}"
            );
        }
    }

    /// glibc's version when the test binary's libm is glibc 2.28 to 2.40 (statically
    /// linked) running its FMA build, the platform llama.cpp's references come from; otherwise
    /// there is nothing here to compare with, and the caller says so.
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    fn glibc_fma_reference() -> Option<String> {
        // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let version = version.to_string_lossy().into_owned();
        let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        // glibc runs its FMA build with FMA and AVX2; Arm's sinf came with 2.28, and 2.36
        // is the version compared here (up to 2.40 before CORE-MATH's functions arrived).
        let fma_build = std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("avx2");
        if fma_build && parts >= vec![2, 28] && parts < vec![2, 41] {
            Some(version)
        } else {
            eprintln!("no reference here: glibc {version}, FMA build: {fma_build}");
            None
        }
    }

    /// Every float: `sinf`/`cosf` equal glibc's FMA build. About 40 s on 2 cores.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    fn sin_cos_equal_glibc_fma_on_every_float() {
        use rayon::prelude::*;
        let Some(version) = glibc_fma_reference() else {
            return;
        };
        let differ = |f: fn(f32) -> f32, g: fn(f32) -> f32| {
            (0..=u32::MAX)
                .into_par_iter()
                .filter(|&i| {
                    let x = f32::from_bits(i);
                    let (a, b) = (f(x), g(x));
                    a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan())
                })
                .count()
        };
        // Both counts before the assertion: under GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA
        // (glibc's SSE2 build) this prints how far that build is from the FMA one.
        let counts = (differ(sinf, f32::sin), differ(cosf, f32::cos));
        assert_eq!(counts, (0, 0), "sinf, cosf inputs unlike glibc {version}'s");
    }

    /// The numbers the module doc and docs/probe.md quote, measured against this
    /// machine's glibc: `cargo test --release --lib math::tests::measure -- --ignored
    /// --nocapture` (about a minute on 2 cores).
    #[test]
    #[ignore]
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    fn measure_against_glibc() {
        use rayon::prelude::*;
        let Some(version) = glibc_fma_reference() else {
            return;
        };
        let share = |f: fn(f32) -> f32, g: fn(f32) -> f32, lo: f32, hi: f32| {
            let (n, d) = (0..=u32::MAX)
                .into_par_iter()
                .map(f32::from_bits)
                .filter(|x| (lo..=hi).contains(x))
                .map(|x| (u64::from(f(x).to_bits() != g(x).to_bits()), 1u64))
                .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            100.0 * n as f64 / d as f64
        };
        let tanh = share(tanhf, f32::tanh, -1e3, 1e3);
        let exp = share(expf, f32::exp, -104.0, 89.0);
        println!("glibc {version}: tanhf differs on {tanh:.3} % of floats in [-1e3, 1e3]");
        println!("glibc {version}: expf differs on {exp:.4} % of floats in [-104, 89]");
        // RoPE's angles (base 10^4 and 10^6, 64 and 128 rotated values, positions below
        // 8192): how many a correctly rounded sin and cos would change.
        let (mut changed, mut total) = (0u64, 0u64);
        for (base, n_dims) in [(10_000f32, 64usize), (1_000_000.0, 128)] {
            let scale = powf(base, -2.0 / n_dims as f32);
            for pos in 0..8192 {
                let mut theta = pos as f32;
                for _ in 0..n_dims / 2 {
                    let exact_sin = libm::sin(f64::from(theta)) as f32;
                    let exact_cos = libm::cos(f64::from(theta)) as f32;
                    changed += u64::from(sinf(theta) != exact_sin || cosf(theta) != exact_cos);
                    total += 1;
                    theta *= scale;
                }
            }
        }
        let rope = 100.0 * changed as f64 / total as f64;
        println!("correctly rounded sin/cos would change {rope:.2} % of RoPE's angles");
        assert!(
            tanh > 0.0 && exp > 0.0 && changed > 0,
            "the differences the docs name"
        );
    }

    /// GELU's f16 table (every f16 in (-10, 10)) is the same with our `tanhf` as with
    /// glibc's, though the two differ on 5 % of floats: the f16 rounding absorbs it.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    fn gelu_table_equals_glibcs() {
        let Some(version) = glibc_fma_reference() else {
            return;
        };
        let inputs = (0..=u16::MAX)
            .map(|b| half::f16::from_bits(b).to_f32())
            .filter(|x| x.abs() < 10.0);
        for x in inputs {
            let glibc = 0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh());
            let glibc = half::f16::from_f32(glibc).to_f32();
            let ours = super::super::gelu_tanh(x);
            assert_eq!(
                ours.to_bits(),
                glibc.to_bits(),
                "gelu({x}) against glibc {version}"
            );
        }
    }
}
