//! The quality gate on real models: `gguf-gate score` against llama.cpp's distributions
//! over the bundled text (recorded by `scripts/llama-score-reference.py` with
//! llama-cpp-python, one token per decode), the `.npy` logits read back by NumPy, recorded
//! bases that round-trip and refuse what they were not made from, and the seed's pipeline —
//! export to F16, quantize, gate with `quality:` against the F16 export, live and recorded —
//! including a damaged quantization that `quality-kld` stops.

mod common;

use common::text;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{python_with_gguf, qwen, reference_json, reference_path, run, smollm2};
use gguf_gate::gguf::GgufFile;
use serde_json::Value as Json;

fn score_json(args: &[&str]) -> Json {
    let mut all = vec!["score"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let o = run(&all);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// The first `bytes` of the bundled text (cut at a line end), for the slower pipelines.
fn short_text(dir: &Path, bytes: usize) -> PathBuf {
    let full = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/text/eval.txt"),
    )
    .unwrap();
    let cut = full[..bytes].rfind('\n').unwrap_or(bytes);
    let path = dir.join("short.txt");
    std::fs::write(&path, &full[..cut]).unwrap();
    path
}

/// The f32 rows of a `.npy` file `score --logits-out` wrote (format 1.0, `<f4`, C order;
/// the header is checked by NumPy in `matches_llama_cpp`).
fn npy_rows(path: &Path, cols: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let start = 10 + usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let values: Vec<f32> = bytes[start..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    values.chunks_exact(cols).map(<[f32]>::to_vec).collect()
}

/// How many scored positions have every recorded top-k logit of llama.cpp's equal to ours,
/// bit for bit.
fn bit_exact_positions(npy: &Path, record: &str) -> (usize, usize) {
    let rec = gguf_gate::quality::record::BaseRecord::read(&reference_path(record)).unwrap();
    let rows = npy_rows(npy, rec.n_vocab);
    let exact = (0..rec.positions())
        .filter(|&i| {
            let (ids, logits) = rec.top(i).unwrap();
            ids.iter()
                .zip(logits)
                .all(|(&id, &l)| rows[i][id as usize].to_bits() == l.to_bits())
        })
        .count();
    (exact, rec.positions())
}

/// Our scores against llama.cpp's record of the same model over the bundled text; also
/// returns how many positions match the record bit for bit.
fn matches_llama_cpp(
    model: &Path,
    record: &str,
    max_mean_kld: f64,
    min_top1: f64,
) -> (Json, (usize, usize)) {
    let want = reference_json(record);
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("logits.npy");
    let r = score_json(&[
        model.to_str().unwrap(),
        "--base-logits",
        reference_path(record).to_str().unwrap(),
        "--logits-out",
        npy.to_str().unwrap(),
    ]);
    let s = &r["score"];
    let b = &s["base"];
    eprintln!(
        "{record}: perplexity {} (llama.cpp {}), mean KLD {}, p99 {}, same top-1 {}",
        s["perplexity"], b["base_perplexity"], b["mean_kld"], b["p99_kld"], b["same_top1"]
    );
    assert_eq!(s["tokens"], want["tokens"].as_array().unwrap().len());
    let (ppl, base_ppl) = (
        s["perplexity"].as_f64().unwrap(),
        b["base_perplexity"].as_f64().unwrap(),
    );
    assert!(
        (ppl / base_ppl - 1.0).abs() < 0.01,
        "perplexity {ppl} vs llama.cpp {base_ppl}"
    );
    assert!(b["mean_kld"].as_f64().unwrap() <= max_mean_kld, "{b}");
    assert!(b["same_top1"].as_f64().unwrap() >= min_top1, "{b}");
    let exact = bit_exact_positions(&npy, record);
    eprintln!(
        "{record}: {} of {} positions bit-identical to llama.cpp's top-k logits",
        exact.0, exact.1
    );

    // NumPy reads the logits and, from them alone, gets our perplexity.
    let script = "import json,sys,numpy as np\n\
         L=np.load(sys.argv[1]).astype(np.float64); t=json.load(open(sys.argv[2]))['tokens']\n\
         m=L.max(1,keepdims=True); lse=m[:,0]+np.log(np.exp(L-m).sum(1))\n\
         nll=lse[:-1]-L[np.arange(len(t)-1),t[1:]]\n\
         print(json.dumps({'shape':list(L.shape),'dtype':str(np.load(sys.argv[1]).dtype),'ppl':float(np.exp(nll.mean()))}))";
    let Some(py) = python_with_gguf() else {
        return (r, exact);
    };
    let o = std::process::Command::new(py)
        .args([
            "-c",
            script,
            npy.to_str().unwrap(),
            reference_path(record).to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let np: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        np["shape"],
        serde_json::json!([s["tokens"], want["n_vocab"]])
    );
    assert_eq!(np["dtype"], "float32");
    assert!(
        (np["ppl"].as_f64().unwrap() / ppl - 1.0).abs() < 1e-4,
        "{np} vs {ppl}"
    );
    (r, exact)
}

/// SmolLM2 Q4_1 runs on kernels whose arithmetic is ggml's x86 AVX2 + FMA arithmetic
/// (Q4_1/Q8_0 dots, F16 attention, exp, RoPE): every logit llama.cpp recorded is ours bit
/// for bit, so the KL divergence is only the record's top-k rounding (docs/quality.md).
#[test]
fn smollm2_scores_like_llama_cpp() {
    let Some(model) = smollm2() else { return };
    let (r, (exact, positions)) = matches_llama_cpp(&model, "smollm2-eval-llama.json", 1e-5, 1.0);
    assert_eq!(exact, positions, "positions bit-identical to llama.cpp");
    // The positions that diverge most come with the text around them.
    let worst = r["score"]["base"]["worst"].as_array().unwrap();
    assert_eq!(worst.len(), 5);
    assert!(worst[0]["context"].as_str().unwrap().contains('['));
}

/// Qwen2.5's Q4_K matrices run through llama.cpp's repacked (Q4_K 8x8) kernels, whose
/// float order we do not reproduce: close, not identical — held to issue #16's bound.
#[test]
fn qwen_scores_like_llama_cpp() {
    let Some(model) = qwen() else { return };
    matches_llama_cpp(&model, "qwen2.5-coder-1.5b-eval-llama.json", 2e-3, 0.98);
}

#[test]
fn a_recorded_base_round_trips_and_refuses_other_texts_and_records() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let short = short_text(dir.path(), 600);
    let record = dir.path().join("base.json");
    let m = model.to_str().unwrap();
    let first = score_json(&[
        m,
        "--text",
        short.to_str().unwrap(),
        "--record-base",
        record.to_str().unwrap(),
    ]);
    // The model against its own record: nothing diverges.
    let again = score_json(&[
        m,
        "--text",
        short.to_str().unwrap(),
        "--base-logits",
        record.to_str().unwrap(),
    ]);
    let b = &again["score"]["base"];
    assert!(b["mean_kld"].as_f64().unwrap() < 1e-6, "{b}");
    assert_eq!(b["same_top1"], 1.0);
    assert_eq!(again["score"]["perplexity"], first["score"]["perplexity"]);
    let rec: Json = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["format"], "gguf-gate-base-record");
    assert!(rec["base_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256-"));

    // Another text: an input error naming the record, not a number.
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "Entirely different words, so other tokens.\n").unwrap();
    let o = run(&[
        "score",
        m,
        "--text",
        other.to_str().unwrap(),
        "--base-logits",
        record.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("other tokens"), "{}", text(&o));
    // Another chunking of the same tokens.
    let o = run(&[
        "score",
        m,
        "--text",
        short.to_str().unwrap(),
        "--ctx",
        "16",
        "--base-logits",
        record.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("scored positions"), "{}", text(&o));
    // A damaged record.
    let mut bad = rec.clone();
    bad["nll"] = Json::String("AAAAAA==".into()); // one value, not one per position
    let bad_path = dir.path().join("bad.json");
    std::fs::write(&bad_path, bad.to_string()).unwrap();
    let o = run(&[
        "score",
        m,
        "--text",
        short.to_str().unwrap(),
        "--base-logits",
        bad_path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("bad.json") && text(&o).contains("positions"),
        "{}",
        text(&o)
    );
}

/// Scale every block scale of `tensor` in a Q8_0 file by `factor` (the damage a bad
/// conversion does to one projection), writing a new file.
fn scale_q8_0_tensor(src: &Path, dst: &Path, tensor: &str, factor: f32) {
    common::rewrite(
        src,
        dst,
        |_| {},
        |t, data| {
            (t.name == tensor).then(|| {
                assert_eq!(t.ty, gguf_gate::gguf::GgmlType::Q8_0);
                let mut out = data.to_vec();
                for block in out.chunks_exact_mut(34) {
                    let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32() * factor;
                    block[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
                }
                (t.ty, out)
            })
        },
    );
}

fn check(model: &Path, policy: &Path) -> (Output, Json) {
    let o = run(&[
        "check",
        model.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report = serde_json::from_slice(&o.stdout).unwrap_or(Json::Null);
    (o, report)
}

fn finding<'a>(report: &'a Json, rule: &str) -> &'a Json {
    report["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["rule"] == rule))
        .unwrap_or_else(|| panic!("no {rule} finding in {report}"))
}

/// The seed's pipeline: export SmolLM2 to F16, quantize to Q8_0 and Q4_0, gate each
/// with `quality:` against the F16 export (live and recorded); a Q8_0 file with one
/// projection scaled fails `quality-kld`.
#[test]
fn export_quantize_and_gate_against_the_f16_export() {
    let Some(model) = smollm2() else { return };
    let Some(py) = python_with_gguf() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("SmolLM2-135M-Instruct");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/hf_from_gguf.py");
    let built = std::process::Command::new(py)
        .arg(&script)
        .args(["build", model.to_str().unwrap(), dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built));
    let original = GgufFile::open(&model).unwrap();
    let tok = gguf_gate::tokenizer::tokenizer_json_from_gguf(&original.header).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let tok_config = gguf_gate::tokenizer::tokenizer_config_from_gguf(&original.header).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), tok_config.to_string()).unwrap();
    let dist = tmp.path().join("dist");
    let o = run(&[
        "export",
        dir.to_str().unwrap(),
        "--out",
        dist.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let f16 = dist.join("SmolLM2-135M-Instruct-f16.gguf");

    let short = short_text(tmp.path(), 1200);
    let s = short.to_str().unwrap();
    let mut kld = Vec::new();
    for ty in ["q8_0", "q4_0"] {
        let out = dist.join(format!("SmolLM2-135M-Instruct-{ty}.gguf"));
        let o = run(&[
            "quantize",
            f16.to_str().unwrap(),
            "--type",
            ty,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let r = score_json(&[
            out.to_str().unwrap(),
            "--text",
            s,
            "--base",
            f16.to_str().unwrap(),
        ]);
        eprintln!("{ty} vs f16: {}", r["score"]["base"]);
        kld.push(r["score"]["base"]["mean_kld"].as_f64().unwrap());
    }
    assert!(
        kld[0] < kld[1],
        "KLD(q8_0) {} must be below KLD(q4_0) {}",
        kld[0],
        kld[1]
    );
    assert!(kld[0] > 0.0);

    // Record the F16 export as the base, then gate.
    let record = tmp.path().join("f16-base.json");
    score_json(&[
        f16.to_str().unwrap(),
        "--text",
        s,
        "--record-base",
        record.to_str().unwrap(),
    ]);
    let q8 = dist.join("SmolLM2-135M-Instruct-q8_0.gguf");
    let damaged = tmp.path().join("damaged-q8_0.gguf");
    scale_q8_0_tensor(&q8, &damaged, "blk.10.ffn_down.weight", 2.0);
    let fingerprint = {
        let r: Json = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        r["base_fingerprint"].as_str().unwrap().to_string()
    };
    let bounds =
        "  max_mean_kld: 0.01\n  max_p99_kld: 0.2\n  min_same_top1: 0.9\n  max_perplexity: 40\n";
    let live = tmp.path().join("live.yaml");
    std::fs::write(
        &live,
        format!("quality:\n  text: {s}\n  base: {}\n{bounds}", f16.display()),
    )
    .unwrap();
    let recorded = tmp.path().join("recorded.yaml");
    std::fs::write(
        &recorded,
        format!(
            "quality:\n  text: {s}\n  base_record: {}\n  base_fingerprint: {fingerprint}\n{bounds}",
            record.display()
        ),
    )
    .unwrap();
    for policy in [&live, &recorded] {
        let (o, report) = check(&q8, policy);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        // The JSON report lists failures; the measurement shows the rules had values to check.
        assert_eq!(report["findings"], serde_json::json!([]), "{report}");
        let q = &report["quality"];
        assert!(q["base"]["mean_kld"].as_f64().unwrap() < 0.01, "{q}");
        assert!(q["base"]["same_top1"].as_f64().unwrap() > 0.9, "{q}");
        assert!(q["perplexity"].as_f64().unwrap() < 40.0, "{q}");
    }
    let (o, report) = check(&damaged, &recorded);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let kld_finding = finding(&report, "quality-kld");
    assert_eq!(kld_finding["severity"], "error", "{kld_finding}");
    eprintln!("damaged: {}", kld_finding["message"]);
    // The probe alone lets this one through: it still writes sensible text.
    let probe_failures: Vec<&Json> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"].as_str().unwrap_or("").starts_with("probe-"))
        .collect();
    assert!(probe_failures.is_empty(), "{probe_failures:?}");

    // A record pinned to another fingerprint is an input error.
    let pinned = tmp.path().join("pinned.yaml");
    std::fs::write(
        &pinned,
        format!(
            "quality:\n  text: {s}\n  base_record: {}\n  base_fingerprint: sha256-{}\n",
            record.display(),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let (o, _) = check(&q8, &pinned);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("base_fingerprint"), "{}", text(&o));
    // The same pin on a live base: the base file is fingerprinted.
    std::fs::write(
        &pinned,
        format!(
            "quality:\n  text: {s}\n  base: {}\n  base_fingerprint: sha256-{}\n",
            f16.display(),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let (o, _) = check(&q8, &pinned);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("quality.base_fingerprint pins"),
        "{}",
        text(&o)
    );
}

/// `--tokenizer` stands for both models: a base whose embedded vocabulary tokenizes the
/// text otherwise (here: its add-BOS flag is flipped) is refused without it and scored on the
/// model's tokens with it — SmolLM2 against itself, so every divergence is 0.
#[test]
fn the_tokenizer_option_tokenizes_for_the_base_too() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.gguf");
    common::rewrite(
        &model,
        &base,
        |keys| {
            use gguf_gate::gguf::Value;
            let key = "tokenizer.ggml.add_bos_token";
            match keys.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = Value::Bool(*v != Value::Bool(true)),
                None => keys.push((key.to_string(), Value::Bool(true))),
            }
        },
        |_, _| None,
    );
    let tok = dir.path().join("tokenizer.json");
    let header = GgufFile::open(&model).unwrap().header;
    let json = gguf_gate::tokenizer::tokenizer_json_from_gguf(&header).unwrap();
    std::fs::write(&tok, json.to_string()).unwrap();
    let sample = short_text(dir.path(), 300);
    let (m, b, t, s) = (
        model.to_str().unwrap(),
        base.to_str().unwrap(),
        tok.to_str().unwrap(),
        sample.to_str().unwrap(),
    );
    let refused = run(&["score", m, "--base", b, "--text", s]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("tokeniz"), "{}", text(&refused));
    let r = score_json(&[m, "--base", b, "--text", s, "--tokenizer", t]);
    let base = &r["score"]["base"];
    assert_eq!(base["mean_kld"], 0.0, "{r}");
    assert_eq!(base["same_top1"], 1.0, "{r}");
}
