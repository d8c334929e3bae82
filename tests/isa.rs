//! Bit-identical logits on every instruction set this CPU runs, on the real models:
//! SmolLM2 (Q4_1 and Q8_0 weights: the 32-element kernels) and Qwen2.5-Coder Q4_K_M (Q4_K
//! and Q6_K: the K-quant kernels, with AVX-512 the two-row kernels of `wide.rs`). The
//! scalar path is the reference; each other path runs the same prompt as one batch (nine
//! columns: the tiles take four, four and a lone one) and then one token at a time (the
//! decoding kernels), and every logit must have the scalar path's bits. The tiny models of
//! `tests/families.rs` do the same for their formats.

mod common;

use std::path::Path;

use gguf_gate::gguf::GgufFile;
use gguf_gate::infer::kernels::Isa;
use gguf_gate::infer::{Logits, Model};

/// Nine prompt tokens and two decoded ones: (batched prompt logits, per-token logits).
fn logits(model: &Model<'_>) -> (Vec<f32>, Vec<Vec<f32>>) {
    let prompt: Vec<u32> = vec![785, 6722, 315, 9625, 374, 12095, 13, 576, 6722];
    let mut s = model.new_session_batched(16, 9);
    model
        .forward_batch(&mut s, &prompt, 0, Logits::All)
        .unwrap();
    let batched = s.logit_rows().to_vec();
    let mut s = model.new_session(16);
    let single = prompt[..3]
        .iter()
        .enumerate()
        .map(|(pos, &t)| model.forward(&mut s, t, pos).unwrap().to_vec())
        .collect();
    (batched, single)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn every_path_gives_the_scalar_bits(path: &Path) {
    let file = GgufFile::open(path).unwrap();
    let (want_batched, want_single) =
        logits(&Model::load(&file).unwrap().with_isa(Isa::Scalar).unwrap());
    assert!(want_batched.iter().all(|x| x.is_finite()) && want_batched.len() >= 9 * 1000);
    let paths = Isa::available_all();
    eprintln!("comparing {:?} with scalar", paths);
    for isa in paths {
        let (batched, single) = logits(&Model::load(&file).unwrap().with_isa(isa).unwrap());
        assert!(
            bits(&batched) == bits(&want_batched),
            "{} batched on {isa:?}",
            path.display()
        );
        for (pos, (a, b)) in single.iter().zip(&want_single).enumerate() {
            assert!(
                bits(a) == bits(b),
                "{} token {pos} on {isa:?}",
                path.display()
            );
        }
    }
}

#[test]
fn smollm2_logits_are_bit_identical_on_every_path() {
    let Some(model) = common::smollm2() else {
        return;
    };
    every_path_gives_the_scalar_bits(&model);
}

#[test]
fn qwen_logits_are_bit_identical_on_every_path() {
    let Some(model) = common::qwen() else { return };
    every_path_gives_the_scalar_bits(&model);
}
