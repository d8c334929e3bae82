//! Fuzz target for the policy loader: any text must give a `Policy` or a list of
//! located problems — never a panic — through YAML parsing, the unknown-key pass,
//! preset merging and validation.
#![no_main]

use gguf_gate::policy::{load_source, PolicySource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = PolicySource {
        text,
        name: "fuzz.yaml",
        base_dir: None,
    };
    for arch in [Some("llama"), Some("bitnet-b1.58"), None] {
        if let Err(errors) = load_source(Some(source), arch, false) {
            assert!(!errors.0.is_empty());
        }
    }
});
