//! Reading a Hugging Face checkpoint: `model.safetensors`, or the shards listed in
//! `model.safetensors.index.json` (or, failing both, PyTorch's `pytorch_model.bin` or the
//! shards of `pytorch_model.bin.index.json`, parsed by `pickle`), memory-mapped and parsed with the `safetensors` crate
//! (bounded header, offsets proven contiguous and in bounds, sizes checked against
//! shape × dtype). Tensor data is never copied: the converter reads rows straight from
//! the map and releases the pages behind it, so memory stays flat however large the
//! model is. Shard names from the index are untrusted: only plain file names inside
//! the checkpoint directory are accepted.
//!
//! Also here: decoding of the element types we accept (F32, F16, BF16) and of BitNet's
//! packed ternary weights (see [`ternary_row`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;

use super::error::ExportError;
use super::pickle::BinError;

/// A safetensors header (the JSON after the 8-byte length) larger than this is refused.
/// The crate's own limit is 100 MB; real headers are well under 1 MB.
pub const MAX_HEADER_BYTES: u64 = 64 << 20;
/// `model.safetensors.index.json` larger than this is refused.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// At most this many shards.
pub const MAX_SHARDS: usize = 10_000;

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";
pub const BIN_SINGLE_FILE: &str = "pytorch_model.bin";
pub const BIN_INDEX_FILE: &str = "pytorch_model.bin.index.json";

/// How a checkpoint's weight files are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Safetensors,
    /// `torch.save`'s zip + pickle, read by [`super::pickle`] without executing it.
    TorchBin,
}

/// One memory-mapped safetensors file.
pub struct Shard {
    pub path: PathBuf,
    map: Option<Mmap>,
}

impl Shard {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// One tensor of the checkpoint.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub shard: usize,
    pub dtype: Dtype,
    /// Row-major (PyTorch) order.
    pub shape: Vec<u64>,
    /// Byte range within the shard file.
    pub range: Range<usize>,
}

impl Entry {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A checkpoint: every tensor of every shard, by name.
pub struct Checkpoint {
    pub shards: Vec<Shard>,
    /// Sorted by name.
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// The index file, when the checkpoint is sharded.
    pub index: Option<PathBuf>,
}

impl Checkpoint {
    /// Open the checkpoint in `dir`: the index's shards when the index exists, else
    /// `model.safetensors`; without either, the same for PyTorch `.bin` files
    /// (`pytorch_model.bin.index.json` or `pytorch_model.bin`), read by [`super::pickle`].
    pub fn open(dir: &Path) -> Result<Checkpoint, ExportError> {
        let candidates = [
            (INDEX_FILE, Format::Safetensors, true),
            (SINGLE_FILE, Format::Safetensors, false),
            (BIN_INDEX_FILE, Format::TorchBin, true),
            (BIN_SINGLE_FILE, Format::TorchBin, false),
        ];
        for (name, format, indexed) in candidates {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            if !indexed {
                let mut ckpt = Checkpoint::empty(None);
                ckpt.add_shard(&path, format)?;
                return Ok(ckpt);
            }
            return Checkpoint::open_index(dir, path, format);
        }
        Err(ExportError::NoCheckpoint {
            dir: dir.to_path_buf(),
        })
    }

    fn open_index(
        dir: &Path,
        index_path: PathBuf,
        format: Format,
    ) -> Result<Checkpoint, ExportError> {
        let bytes = super::read_bounded(&index_path, MAX_INDEX_BYTES, "checkpoint index")?;
        let map = parse_index(&index_path, &bytes)?;
        let shard_names: BTreeSet<&str> = map.values().map(String::as_str).collect();
        if shard_names.len() > MAX_SHARDS {
            return Err(ExportError::Index {
                path: index_path,
                message: format!(
                    "{} shards; at most {MAX_SHARDS} are accepted",
                    shard_names.len()
                ),
            });
        }
        let mut ckpt = Checkpoint::empty(Some(index_path.clone()));
        for name in &shard_names {
            ckpt.add_shard(&dir.join(name), format)?;
        }
        // The index and the shards must describe the same tensors.
        for (tensor, shard) in &map {
            match ckpt.get(tensor) {
                Some(e)
                    if ckpt
                        .shards
                        .get(e.shard)
                        .is_some_and(|s| s.path == dir.join(shard)) => {}
                Some(e) => {
                    return Err(ExportError::Index {
                        path: index_path,
                        message: format!(
                            "weight_map puts {tensor:?} in {shard}, but it is in {}",
                            ckpt.shard_name(e.shard)
                        ),
                    })
                }
                None => {
                    return Err(ExportError::Index {
                        path: index_path,
                        message: format!(
                            "weight_map puts {tensor:?} in {shard}, which does not contain it"
                        ),
                    })
                }
            }
        }
        if let Some(extra) = ckpt.entries.iter().find(|e| !map.contains_key(&e.name)) {
            return Err(ExportError::Index {
                path: index_path,
                message: format!(
                    "{} holds {:?}, which weight_map does not list",
                    ckpt.shard_name(extra.shard),
                    extra.name
                ),
            });
        }
        Ok(ckpt)
    }

    fn empty(index: Option<PathBuf>) -> Checkpoint {
        Checkpoint {
            shards: Vec::new(),
            entries: Vec::new(),
            by_name: HashMap::new(),
            index,
        }
    }

    fn shard_name(&self, shard: usize) -> String {
        self.shards.get(shard).map_or_else(String::new, |s| {
            s.path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
    }

    fn add_shard(&mut self, path: &Path, format: Format) -> Result<(), ExportError> {
        let (file, len) = crate::input::open_regular(path)?;
        let map = if len == 0 {
            None
        } else {
            // SAFETY: read-only map. A file truncated by another process while mapped can
            // fault (SIGBUS); the same documented limit as the GGUF reader's.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| ExportError::io(path, e))?)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let found = match format {
            Format::Safetensors => read_safetensors(path, bytes, len)?,
            Format::TorchBin => super::pickle::read(bytes)
                .map_err(|e| match e {
                    BinError::Zip(message) => ExportError::Zip {
                        path: path.to_path_buf(),
                        message,
                    },
                    BinError::Legacy => ExportError::LegacyPickle {
                        path: path.to_path_buf(),
                    },
                    BinError::Pickle { offset, message } => ExportError::Pickle {
                        path: path.to_path_buf(),
                        offset,
                        message,
                    },
                })?
                .into_iter()
                .map(|t| (t.name, t.dtype, t.shape, t.range))
                .collect(),
        };
        let shard = self.shards.len();
        let mut new = Vec::with_capacity(found.len());
        let mut seen = BTreeSet::new();
        for (name, dtype, shape, range) in found {
            if let Some(&other) = self.by_name.get(&name) {
                let first = self
                    .entries
                    .get(other)
                    .and_then(|e| self.shards.get(e.shard))
                    .map_or_else(PathBuf::new, |s| s.path.clone());
                return Err(ExportError::DuplicateTensor {
                    tensor: name,
                    first,
                    second: path.to_path_buf(),
                });
            }
            if !seen.insert(name.clone()) {
                return Err(ExportError::DuplicateTensor {
                    tensor: name,
                    first: path.to_path_buf(),
                    second: path.to_path_buf(),
                });
            }
            new.push(Entry {
                name,
                shard,
                dtype,
                shape,
                range,
            });
        }
        self.shards.push(Shard {
            path: path.to_path_buf(),
            map,
        });
        self.entries.extend(new);
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
        self.by_name = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(self.index_of(name)?)
    }

    /// The position of `name` in `entries`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The tensor's bytes (proven in bounds when the shard was opened).
    pub fn data(&self, e: &Entry) -> &[u8] {
        self.shards
            .get(e.shard)
            .and_then(|s| s.bytes().get(e.range.clone()))
            .unwrap_or(&[])
    }

    pub fn path_of(&self, e: &Entry) -> &Path {
        self.shards.get(e.shard).map_or(Path::new(""), |s| &s.path)
    }

    /// Let the kernel drop the pages behind a tensor we are done with (they stay in the
    /// page cache), so resident memory does not grow with the model.
    pub fn release(&self, e: &Entry) {
        let Some(map) = self.shards.get(e.shard).and_then(|s| s.map.as_ref()) else {
            return;
        };
        if e.range.start < e.range.end && e.range.end <= map.len() {
            // SAFETY: the map is read-only and file-backed; after MADV_DONTNEED a later
            // access re-reads the same file bytes, so no live slice observes a change.
            #[cfg(unix)]
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    e.range.start,
                    e.range.end - e.range.start,
                )
            };
        }
    }

    /// Every input file: the index (if any), then the shards.
    pub fn files(&self) -> Vec<PathBuf> {
        self.index
            .iter()
            .cloned()
            .chain(self.shards.iter().map(|s| s.path.clone()))
            .collect()
    }
}

/// One tensor found in a file: name, element type, row-major shape, byte range.
type Found = (String, Dtype, Vec<u64>, Range<usize>);

/// The tensors of one safetensors file.
fn read_safetensors(path: &Path, bytes: &[u8], len: u64) -> Result<Vec<Found>, ExportError> {
    let bad = |message: String| ExportError::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    let header_len = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| {
            bad(format!(
                "{len} bytes: too short for the 8-byte header length"
            ))
        })?;
    if header_len > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "the header claims {header_len} bytes; at most {MAX_HEADER_BYTES} are accepted"
        )));
    }
    let after_length = (bytes.len() as u64).saturating_sub(8);
    if header_len > after_length {
        return Err(bad(format!(
            "the header claims {header_len} bytes but the file has only {after_length} after the length"
        )));
    }
    let (n, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let data_start = n
        .checked_add(8)
        .ok_or_else(|| bad("header length overflows".into()))?;
    let mut found = Vec::new();
    for name in metadata.offset_keys() {
        let Some(info) = metadata.info(&name) else {
            continue;
        };
        let (s, e) = info.data_offsets;
        let range = data_start
            .checked_add(s)
            .zip(data_start.checked_add(e))
            .map(|(a, b)| a..b)
            .filter(|r| r.end <= bytes.len())
            .ok_or_else(|| bad(format!("tensor {name:?}: data offsets out of the file")))?;
        let shape = info.shape.iter().map(|&d| d as u64).collect();
        found.push((name, info.dtype, shape, range));
    }
    Ok(found)
}

/// `weight_map` of an index file: tensor -> shard file name (a plain name, no path).
fn parse_index(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>, ExportError> {
    let err = |message: String| ExportError::Index {
        path: path.to_path_buf(),
        message,
    };
    let json: Json = serde_json::from_slice(bytes).map_err(|e| ExportError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let map = json
        .get("weight_map")
        .and_then(Json::as_object)
        .ok_or_else(|| err("no \"weight_map\" object of tensor -> shard file".into()))?;
    let mut out = BTreeMap::new();
    for (tensor, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| err(format!("weight_map[{tensor:?}] is not a file name")))?;
        let plain = !shard.is_empty()
            && shard != "."
            && shard != ".."
            && !shard.contains(['/', '\\', '\0'])
            && Path::new(shard).file_name().is_some_and(|n| n == shard);
        if !plain {
            return Err(err(format!(
                "weight_map[{tensor:?}] = {shard:?}: shards must be plain file names in the checkpoint directory"
            )));
        }
        out.insert(tensor.clone(), shard.to_string());
    }
    if out.is_empty() {
        return Err(err("weight_map is empty".into()));
    }
    Ok(out)
}

/// The float element types a weight may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatType {
    F32,
    F16,
    BF16,
}

impl FloatType {
    pub fn of(dtype: Dtype) -> Option<FloatType> {
        match dtype {
            Dtype::F32 => Some(FloatType::F32),
            Dtype::F16 => Some(FloatType::F16),
            Dtype::BF16 => Some(FloatType::BF16),
            _ => None,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            FloatType::F32 => 4,
            FloatType::F16 | FloatType::BF16 => 2,
        }
    }

    /// Decode `src` (exactly `out.len()` elements) into `out`.
    pub fn decode(self, src: &[u8], out: &mut [f32]) {
        match self {
            FloatType::F32 => {
                for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            FloatType::F16 => {
                for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
            }
            FloatType::BF16 => {
                for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
            }
        }
    }
}

/// A 2-bit code that is not a ternary value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadCode {
    /// Column of the packed byte within its row.
    pub col: usize,
}

/// Row `row` of a BitNet weight packed the way transformers' BitNet integration
/// (`integrations/bitnet.py`, `unpack_weights`) and llama.cpp's `dequant_bitnet` read it:
/// a `[out/4, in]` U8 tensor where bits `2i..2i+2` of byte `[p, c]` hold the weight at
/// row `i * out/4 + p`, column `c`, as `value + 1` (0 -> -1, 1 -> 0, 2 -> +1; 3 is not
/// a ternary value and is an error). `packed_row` is the `in` bytes of row `p`,
/// `slot` is `i`; each weight becomes `value * unit`.
pub fn ternary_row(
    packed_row: &[u8],
    slot: u32,
    unit: f32,
    out: &mut [f32],
) -> Result<(), BadCode> {
    let shift = 2 * slot;
    for (col, (o, &b)) in out.iter_mut().zip(packed_row).enumerate() {
        *o = match (b >> shift) & 3 {
            0 => -unit,
            1 => 0.0,
            2 => unit,
            _ => return Err(BadCode { col }),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pack ternary rows as transformers' `pack_weights` does.
    fn pack(w: &[Vec<i8>]) -> Vec<u8> {
        let rows = w.len();
        let cols = w[0].len();
        let p = rows / 4;
        let mut out = vec![0u8; p * cols];
        for (r, row) in w.iter().enumerate() {
            let (slot, pr) = (r / p, r % p);
            for (c, &v) in row.iter().enumerate() {
                out[pr * cols + c] |= ((v + 1) as u8) << (2 * slot);
            }
        }
        out
    }

    #[test]
    fn unpacks_as_transformers_documents() {
        // The example in transformers' unpack_weights docstring.
        let packed = [0b1010_0001u8, 0b0001_1000, 0b1001_0000, 0b0000_1010];
        let expected: [[f32; 2]; 8] = [
            [0., -1.],
            [-1., 1.],
            [-1., 1.],
            [-1., 1.],
            [1., 0.],
            [0., -1.],
            [1., -1.],
            [1., -1.],
        ];
        let p = 2;
        for (r, want) in expected.iter().enumerate() {
            let (slot, pr) = (r / p, r % p);
            let mut out = [0f32; 2];
            ternary_row(&packed[pr * 2..pr * 2 + 2], slot as u32, 1.0, &mut out).unwrap();
            assert_eq!(&out, want, "row {r}");
        }
    }

    #[test]
    fn pack_unpack_round_trip_and_bad_code() {
        let w: Vec<Vec<i8>> = (0..8)
            .map(|r| (0..5).map(|c| ((r * 7 + c * 3) % 3) as i8 - 1).collect())
            .collect();
        let packed = pack(&w);
        for (r, row) in w.iter().enumerate() {
            let mut out = [0f32; 5];
            ternary_row(
                &packed[(r % 2) * 5..(r % 2) * 5 + 5],
                (r / 2) as u32,
                0.5,
                &mut out,
            )
            .unwrap();
            let want: Vec<f32> = row.iter().map(|&v| f32::from(v) * 0.5).collect();
            assert_eq!(out.to_vec(), want);
        }
        let mut out = [0f32; 2];
        assert_eq!(
            ternary_row(&[0b01, 0b11 << 4], 2, 1.0, &mut out),
            Err(BadCode { col: 1 })
        );
    }

    #[test]
    fn float_decoding() {
        let mut out = [0f32; 2];
        FloatType::F32.decode(&[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
        FloatType::F16.decode(&[0x00, 0x3c, 0x00, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
        FloatType::BF16.decode(&[0x80, 0x3f, 0x00, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
    }

    #[test]
    fn index_shard_names_must_be_plain() {
        let p = Path::new("model.safetensors.index.json");
        for bad in ["../x.safetensors", "/etc/passwd", "a/b", "..", "", "a\\b"] {
            let j = serde_json::json!({"weight_map": {"t": bad}}).to_string();
            assert!(
                matches!(parse_index(p, j.as_bytes()), Err(ExportError::Index { .. })),
                "{bad}"
            );
        }
        for bad in [
            &b"{}"[..],
            br#"{"weight_map": {}}"#,
            br#"{"weight_map": {"t": 1}}"#,
        ] {
            assert!(parse_index(p, bad).is_err());
        }
        let ok = parse_index(
            p,
            br#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        assert_eq!(ok["a"], "model-00001-of-00002.safetensors");
    }
}
