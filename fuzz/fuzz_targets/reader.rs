//! Fuzz target for the GGUF header reader: any bytes must give `Ok` or a typed error,
//! never a panic, an overflow or an out-of-bounds slice; an accepted header's tensor
//! ranges must lie inside the input.
#![no_main]

use gguf_gate::gguf::parse_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = parse_header(data) {
        for t in &header.tensors {
            let range = header.data_range(t);
            assert!(range.end <= data.len() as u64);
            assert_eq!(t.ty.tensor_bytes(t.elements), Some(t.size));
        }
        for e in &header.metadata {
            let _ = e.value.to_string();
            assert!(header.get(&e.key).is_some());
        }
    }
});
