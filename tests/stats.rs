//! `stats` and the one-pass scan: agreement with gguf-py + numpy on SmolLM2, exact
//! counts on synthetic tensors, multi-piece merging, determinism across thread counts,
//! and clear errors for types we cannot decode.

mod common;

use common::{python_with_gguf, reference, run, smollm2};
use gguf_gate::fingerprint::{fingerprint_file, Fingerprint};
use gguf_gate::gguf::{GgmlType, GgufFile, GgufWriter, TensorSpec, Value};
use gguf_gate::stats::{scan, select, tensor_stats, TensorStats};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) + 1e-12
}

/// Straightforward f64 statistics, to compare the streaming version against.
fn naive(values: &[f32]) -> (f64, f64, f64, f64, f64) {
    let finite: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| x as f64)
        .collect();
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let rms = (finite.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
    let std = (finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (rms, mean, std, min, max)
}

fn write_model(
    dir: &std::path::Path,
    tensors: &[(&str, GgmlType, Vec<u64>, Vec<u8>)],
) -> std::path::PathBuf {
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("llama".into()))
        .unwrap();
    for (name, ty, dims, _) in tensors {
        w.add_tensor(TensorSpec::new(*name, *ty, dims)).unwrap();
    }
    let data: Vec<Vec<u8>> = tensors.iter().map(|t| t.3.clone()).collect();
    let path = dir.join("model.gguf");
    std::fs::write(&path, w.to_bytes(&data).unwrap()).unwrap();
    path
}

/// A value sequence with structure: slow drift plus noise, a non-zero mean.
fn signal(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
            0.3 + (i as f32 * 1e-4).sin() + noise
        })
        .collect()
}

#[test]
fn counts_and_moments_on_synthetic_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let mut special = signal(64, 1);
    special[3] = f32::NAN;
    special[5] = f32::INFINITY;
    special[6] = f32::NEG_INFINITY;
    special[7] = 0.0;
    special[8] = -0.0;
    // 300k elements: several pieces of PIECE_BYTES each, merged.
    let big = signal(300_000, 2);
    let path = write_model(
        dir.path(),
        &[
            ("special", GgmlType::F32, vec![64], f32_bytes(&special)),
            ("big", GgmlType::F32, vec![1000, 300], f32_bytes(&big)),
            ("empty", GgmlType::F32, vec![0], vec![]),
        ],
    );
    let file = GgufFile::open(&path).unwrap();
    let (stats, errors) = tensor_stats(&file, &select(&file.header, &[]));
    assert!(errors.is_empty());
    let s = &stats[0];
    assert_eq!((s.nan, s.inf, s.zeros, s.elements), (1, 2, 2, 64));
    for (values, s) in [(&special, &stats[0]), (&big, &stats[1])] {
        let (rms, mean, std, min, max) = naive(values);
        assert!(
            close(s.rms, rms) && close(s.mean, mean) && close(s.std, std),
            "{s:?}"
        );
        assert_eq!((s.min, s.max), (min, max));
    }
    assert_eq!(stats[2].elements, 0);
    assert!(stats[2].rms.is_nan());
}

#[test]
fn scan_gives_the_fingerprint_and_the_same_stats() {
    let dir = tempfile::tempdir().unwrap();
    let values = signal(100_000, 3);
    let q8: Vec<u8> = (0..(102_400 / 32 * 34))
        .map(|i| if i % 34 == 1 { 0x2c } else { (i * 7) as u8 })
        .collect();
    let path = write_model(
        dir.path(),
        &[
            ("a", GgmlType::F32, vec![100_000], f32_bytes(&values)),
            ("b", GgmlType::Q8_0, vec![1024, 100], q8),
        ],
    );
    let file = GgufFile::open(&path).unwrap();
    let selected = select(&file.header, &[]);
    let result = scan(&file, &selected, true, |_| {});
    assert!(result.errors.is_empty());
    let fp = result.fingerprint.unwrap();
    assert_eq!(
        fp,
        fingerprint_file(&path, &gguf_gate::progress::Quiet).unwrap()
    );
    assert_eq!(fp, Fingerprint::of_bytes(&std::fs::read(&path).unwrap()));
    assert_eq!(result.stats, tensor_stats(&file, &selected).0);
    assert_eq!(scan(&file, &selected, false, |_| {}).fingerprint, None);
}

#[test]
fn same_output_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(
        dir.path(),
        &[(
            "a",
            GgmlType::F32,
            vec![500_000],
            f32_bytes(&signal(500_000, 4)),
        )],
    );
    let p = path.to_str().unwrap();
    let one = run(&["stats", p, "--format", "json", "--threads", "1"]);
    let two = run(&["stats", p, "--format", "json", "--threads", "2"]);
    let four = run(&["stats", p, "--format", "json", "--threads", "4"]);
    assert_eq!(one.status.code(), Some(0));
    assert_eq!(one.stdout, two.stdout);
    assert_eq!(one.stdout, four.stdout);
}

#[test]
fn unsupported_type_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(
        dir.path(),
        &[
            (
                "ok",
                GgmlType::F32,
                vec![4],
                f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
            ),
            ("iq2", GgmlType::Iq2Xxs, vec![256], vec![0; 66]),
        ],
    );
    let out = run(&["stats", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("IQ2_XXS") && stderr.contains("iq2"),
        "{stderr}"
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["tensors"][0]["name"], "ok");
    assert_eq!(j["errors"][0]["tensor"], "iq2");
    // Filtering it out makes the run clean.
    let out = run(&["stats", path.to_str().unwrap(), "--filter", "o?"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn i2s_stats_use_the_tensor_scale() {
    let dir = tempfile::tempdir().unwrap();
    // 256 elements: codes cycle 0,1,2 (-1, 0, +1) by byte; scale 0.5.
    let mut data: Vec<u8> = (0..64)
        .map(|i| [0b00_00_00_00u8, 0b01_01_01_01, 0b10_10_10_10][i % 3])
        .collect();
    let mut tail = vec![0u8; 32];
    tail[..4].copy_from_slice(&0.5f32.to_le_bytes());
    data.extend(tail);
    let path = write_model(dir.path(), &[("w", GgmlType::I2S, vec![256], data)]);
    let file = GgufFile::open(&path).unwrap();
    let (stats, errors) = tensor_stats(&file, &[0]);
    assert!(errors.is_empty(), "{errors:?}");
    let s = &stats[0];
    // Bytes 0,3,6.. are -1 (22 bytes), 1,4,.. are 0 (21), 2,5,.. are +1 (21); 4 values each.
    assert_eq!((s.min, s.max, s.zeros), (-0.5, 0.5, 84));
    assert!(close(s.mean, (21.0 - 22.0) * 4.0 * 0.5 / 256.0));
}

#[test]
fn smollm2_stats_agree_with_gguf_py_and_numpy() {
    let Some(model) = smollm2() else { return };
    if python_with_gguf().is_none() {
        return;
    }
    let out = run(&["stats", model.to_str().unwrap(), "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<TensorStats> =
        serde_json::from_value::<Vec<serde_json::Value>>(ours["tensors"].clone())
            .unwrap()
            .into_iter()
            .map(|j| TensorStats {
                name: j["name"].as_str().unwrap().into(),
                ty: j["type"].as_str().unwrap().into(),
                elements: j["elements"].as_u64().unwrap(),
                rms: j["rms"].as_f64().unwrap(),
                mean: j["mean"].as_f64().unwrap(),
                std: j["std"].as_f64().unwrap(),
                min: j["min"].as_f64().unwrap(),
                max: j["max"].as_f64().unwrap(),
                nan: j["nan"].as_u64().unwrap(),
                inf: j["inf"].as_u64().unwrap(),
                zeros: j["zeros"].as_u64().unwrap(),
            })
            .collect();
    let theirs: serde_json::Value =
        serde_json::from_slice(&reference("stats", &model).stdout).unwrap();
    let theirs = theirs["tensors"].as_array().unwrap();
    assert_eq!(ours.len(), 272);
    assert_eq!(theirs.len(), 272);
    for (s, t) in ours.iter().zip(theirs) {
        assert_eq!(s.name, t["name"]);
        assert_eq!(s.elements, t["elements"]);
        for (what, a, b) in [
            ("rms", s.rms, &t["rms"]),
            ("mean", s.mean, &t["mean"]),
            ("std", s.std, &t["std"]),
            ("min", s.min, &t["min"]),
            ("max", s.max, &t["max"]),
        ] {
            let b = b.as_f64().unwrap();
            assert!(close(a, b), "{} {what}: ours {a}, gguf-py {b}", s.name);
        }
        assert_eq!(
            (s.nan, s.inf, s.zeros),
            (0, 0, t["zeros"].as_u64().unwrap()),
            "{}",
            s.name
        );
    }
}
