//! The inference engine against its references: llama.cpp's greedy tokens and logits on
//! the real SmolLM2 model (from `shared/reference/smollm2-greedy.json`), thread-count
//! independence, tiny synthetic llama and bitnet-b1.58 models checked against a naive
//! f32 forward pass written here from the documented steps, and clear errors (never a
//! panic) on malformed models and inputs.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use gguf_gate::gguf::{GgmlType, GgufFile, GgufWriter, TensorSpec, Value};
use gguf_gate::infer::{self, generate, InferError, Model};
use gguf_gate::quant;
use half::f16;

// ---------------------------------------------------------------------------------
// SmolLM2 against llama.cpp

struct Reference {
    prompt_tokens: Vec<u32>,
    tokens: Vec<u32>,
    top10_ids: Vec<u32>,
    top10_logits: Vec<f32>,
}

fn reference() -> Option<Reference> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/smollm2-greedy.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        common::skip(&format!("{} not found", path.display()));
        return None;
    };
    let json: serde_json::Value = serde_json::from_str(&text).expect("reference JSON");
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    };
    let greedy = &json["greedy"][0];
    let top = &json["first_step_top10"];
    assert_eq!(top["prompt"], greedy["prompt"]);
    Some(Reference {
        prompt_tokens: ids(&greedy["prompt_tokens"]),
        tokens: ids(&greedy["tokens"]),
        top10_ids: ids(&top["ids"]),
        top10_logits: top["logits"]
            .as_array()
            .expect("logits")
            .iter()
            .map(|x| x.as_f64().expect("logit") as f32)
            .collect(),
    })
}

fn with_threads<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .expect("thread pool")
        .install(f)
}

/// How far our first-step logits may be from llama.cpp's. Activation quantization
/// (Q8_1 per 32 values before every Q4_1 product) makes the logits a chaotic function of
/// float rounding: a one-ulp difference anywhere flips some int8 roundings, and those
/// flips compound over 30 layers. Measured here: exact f64 math vs llama.cpp 0.17;
/// ggml's generic C kernels (ours) vs llama.cpp's AVX2/AVX-512 build 0.27; emulating the
/// x86 SIMD quantizer, dot-product order and vector `expf` still 0.15. A real wiring bug
/// (NeoX instead of normal RoPE, say) moves them by 0.9 and more. See docs/probe.md.
const LOGIT_TOLERANCE: f32 = 0.35;

#[test]
fn smollm2_greedy_tokens_and_logits_match_llama_cpp() {
    let (Some(path), Some(reference)) = (common::smollm2(), reference()) else {
        return;
    };
    let file = GgufFile::open(&path).expect("open SmolLM2");
    let model = Model::load(&file).expect("load SmolLM2");
    let c = model.config();
    assert_eq!(
        (c.n_layer, c.dim, c.n_head, c.n_head_kv, c.vocab),
        (30, 576, 9, 3, 49152)
    );
    assert!(c.tied_embeddings);

    // First step: the logits at the last prompt position.
    let mut session = model.new_session(64);
    let mut logits = Vec::new();
    for (pos, &t) in reference.prompt_tokens.iter().enumerate() {
        logits = model
            .forward(&mut session, t, pos)
            .expect("forward")
            .to_vec();
    }
    let ours: Vec<f32> = reference
        .top10_ids
        .iter()
        .map(|&i| logits[i as usize])
        .collect();
    let max_diff = ours
        .iter()
        .zip(&reference.top10_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("SmolLM2 first-step top-10 logits: ours {ours:?}");
    eprintln!("SmolLM2 first-step top-10 max |ours - llama.cpp| = {max_diff:.5}");
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    let mut ours_top10 = order[..10].to_vec();
    let mut want_top10 = reference.top10_ids.clone();
    assert_eq!(ours_top10[0], want_top10[0], "top-1 token");
    ours_top10.sort_unstable();
    want_top10.sort_unstable();
    assert_eq!(ours_top10, want_top10, "the ten most likely tokens");
    // Pairs that llama.cpp separates by more than the noise band keep their order.
    for i in 0..10 {
        for j in i + 1..10 {
            if reference.top10_logits[i] - reference.top10_logits[j] > 2.0 * LOGIT_TOLERANCE {
                assert!(ours[i] > ours[j], "order of top-10 ids #{i} and #{j}");
            }
        }
    }
    assert!(
        max_diff < LOGIT_TOLERANCE,
        "max logit difference {max_diff} (tolerance {LOGIT_TOLERANCE})"
    );

    // 32 greedy tokens.
    let start = Instant::now();
    let generation = generate(
        &model,
        &reference.prompt_tokens,
        reference.tokens.len(),
        |_| false,
    )
    .expect("generate");
    eprintln!(
        "SmolLM2: {} tokens in {:.2} s (prompt {:.1} ms, decode {:.1} tok/s)",
        generation.tokens.len(),
        start.elapsed().as_secs_f64(),
        generation.prompt_ms,
        generation.decode_tok_s
    );
    assert_eq!(generation.prompt_tokens, reference.prompt_tokens);
    assert_eq!(generation.tokens, reference.tokens);
}

#[test]
fn smollm2_output_is_independent_of_thread_count() {
    let (Some(path), Some(reference)) = (common::smollm2(), reference()) else {
        return;
    };
    let file = GgufFile::open(&path).expect("open SmolLM2");
    let model = Model::load(&file).expect("load SmolLM2");
    let run = |threads| {
        with_threads(threads, || {
            let mut s = model.new_session(16);
            let mut bits = Vec::new();
            for (pos, &t) in reference.prompt_tokens.iter().enumerate() {
                let logits = model.forward(&mut s, t, pos).expect("forward");
                bits.extend(logits.iter().map(|v| v.to_bits()));
            }
            let g = generate(&model, &reference.prompt_tokens, 8, |_| false).expect("generate");
            (bits, g.tokens)
        })
    };
    let one = run(1);
    let two = run(2);
    assert!(one.0 == two.0, "logits differ between 1 and 2 threads");
    assert_eq!(one.1, two.1);
}
