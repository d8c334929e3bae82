//! The HTML report and the per-layer picture: on SmolLM2 every point sits inside its band;
//! with one projection scaled ×1000 the spike is marked failing at its layer, outside the
//! band, and the Markdown summary carries a chart of that role only; a tensor named
//! `<script>…` renders as text; the report of the 1.5B Qwen2.5 stays under 1 MB. The SVG
//! carries `data-layer` / `data-outside` attributes, which these tests read.

mod common;

use common::text;

use std::path::{Path, PathBuf};

use common::{python_with_gguf, qwen, rewrite, run, smollm2};
use gguf_gate::gguf::GgmlType;

/// `check --no-probe --html` (and `--summary`); returns (exit code, HTML, Markdown).
fn html_of(model: &Path, dir: &Path) -> (Option<i32>, String, String) {
    let html = dir.join("report.html");
    let md = dir.join("summary.md");
    let o = run(&[
        "check",
        model.to_str().unwrap(),
        "--no-probe",
        "--html",
        html.to_str().unwrap(),
        "--summary",
        md.to_str().unwrap(),
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
    (
        o.status.code(),
        std::fs::read_to_string(html).unwrap(),
        std::fs::read_to_string(md).unwrap(),
    )
}

/// The `<circle …>` elements of the plot of `role`.
fn points<'a>(html: &'a str, role: &str) -> Vec<&'a str> {
    let start = html
        .find(&format!("data-role=\"{role}\""))
        .unwrap_or_else(|| panic!("no plot for {role}"));
    let end = html[start..].find("</svg>").unwrap() + start;
    html[start..end]
        .split("<circle ")
        .skip(1)
        .map(|c| c.split('>').next().unwrap())
        .collect()
}

fn self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    for forbidden in [
        "<script",
        "<img",
        "<iframe",
        "src=\"http",
        "href=\"//",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(forbidden), "{forbidden} in the report");
    }
}

#[test]
fn clean_smollm2_sits_inside_every_band() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (code, html, md) = html_of(&model, dir.path());
    assert_eq!(code, Some(0));
    self_contained(&html);
    assert!(html.contains("✓ passed"));
    for role in [
        "attn_norm.weight",
        "ffn_norm.weight",
        "attn_q.weight",
        "attn_k.weight",
        "attn_v.weight",
        "attn_output.weight",
        "ffn_gate.weight",
        "ffn_up.weight",
        "ffn_down.weight",
    ] {
        let pts = points(&html, role);
        assert_eq!(pts.len(), 30, "{role}: one point per layer");
        assert!(pts.iter().all(|p| p.contains("class=\"pt ok\"")), "{role}");
        assert!(
            pts.iter().all(|p| p.contains("data-outside=\"false\"")),
            "{role}"
        );
    }
    assert_eq!(html.matches("class=\"band\"").count(), 9, "a band per role");
    assert!(!md.contains("mermaid"), "no chart without a failing role");
}

#[test]
fn a_scaled_projection_is_a_spike_outside_its_band() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let scaled = dir.path().join("scaled.gguf");
    rewrite(
        &model,
        &scaled,
        |_| {},
        |t, data| {
            (t.name == "blk.3.attn_q.weight").then(|| {
                // Q4_1 blocks: f16 d, f16 m, 16 bytes of nibbles. Scale d and m by 1000.
                let mut out = data.to_vec();
                for block in out.chunks_exact_mut(20) {
                    for field in 0..2 {
                        let at = 2 * field;
                        let v = half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
                        block[at..at + 2]
                            .copy_from_slice(&half::f16::from_f32(v * 1000.0).to_le_bytes());
                    }
                }
                (GgmlType::Q4_1, out)
            })
        },
    );
    let (code, html, md) = html_of(&scaled, dir.path());
    assert_eq!(code, Some(1));
    self_contained(&html);
    let pts = points(&html, "attn_q.weight");
    let failing: Vec<&&str> = pts
        .iter()
        .filter(|p| p.contains("class=\"pt fail\""))
        .collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert!(failing[0].contains("data-layer=\"3\""), "{failing:?}");
    assert!(failing[0].contains("data-outside=\"true\""), "{failing:?}");
    // The other roles are untouched.
    assert!(points(&html, "attn_k.weight")
        .iter()
        .all(|p| p.contains("pt ok")));
    // Findings link to their rule's explanation.
    assert!(html.contains("docs/rules.md#proj-rms\""));
    // The summary charts the failing role only, at the right layer.
    assert_eq!(md.matches("```mermaid").count(), 1, "{md}");
    assert!(
        md.contains("attn_q.weight") && md.contains("failing at layer 3"),
        "{md}"
    );
    assert!(md.contains("xychart-beta"));
}

/// A GGUF whose tensor names are markup.
fn hostile(dir: &Path) -> Option<PathBuf> {
    python_with_gguf()?;
    let path = dir.join("hostile.gguf");
    let script = r#"
import sys, numpy as np, gguf
w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_name("<img src=x onerror=alert(1)>")
w.add_tensor("blk.0.<script>alert(1)</script>.weight", np.ones((4, 8), dtype=np.float32))
w.add_tensor("blk.1.<script>alert(1)</script>.weight", np.full((4, 8), 3.0, dtype=np.float32))
w.add_tensor("token_embd.weight", np.full((4, 8), 0.5, dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(path)
}

#[test]
fn markup_in_names_renders_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = hostile(dir.path()) else {
        return;
    };
    let (_, html, _) = html_of(&model, dir.path());
    self_contained(&html);
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the name is shown, escaped"
    );
    let o = run(&["stats", model.to_str().unwrap(), "--format", "html"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    self_contained(&page);
    assert!(page.contains("&lt;script&gt;"));
}

#[test]
fn the_report_of_a_1_5b_model_stays_small() {
    let Some(model) = qwen() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_, html, _) = html_of(&model, dir.path());
    self_contained(&html);
    eprintln!("Qwen2.5-Coder-1.5B HTML report: {} bytes", html.len());
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
    assert_eq!(points(&html, "ffn_down.weight").len(), 28);
}
