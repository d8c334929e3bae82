//! Reading a PyTorch `pytorch_model.bin` without executing it. `torch.save` writes a zip
//! archive (entries stored, not compressed) holding `<prefix>/data.pkl`, a pickle of the
//! state dict, and one `<prefix>/data/<key>` file of raw little-endian bytes per storage.
//! Unpickling with Python runs whatever the pickle names, which is why a downloaded
//! `.bin` is a code-execution risk; here the zip's central directory is parsed by hand
//! (bounded, checked arithmetic, stored entries only, no overlap) and `data.pkl` is read
//! by a small stack machine that knows only the opcodes a dict of tensors needs and only
//! five globals (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch.{Float,Half,BFloat16}Storage`). Anything else is an error naming the opcode or
//! the global and its byte offset in data.pkl. The result is, for each tensor, its dtype,
//! shape and byte range within the `.bin` file, which the checkpoint reader maps like a
//! safetensors shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

use safetensors::Dtype;

/// At most this many zip entries.
pub const MAX_ZIP_ENTRIES: usize = 1 << 17;
/// data.pkl larger than this is refused.
pub const MAX_PICKLE_BYTES: usize = 256 << 20;
/// At most this many opcodes are executed.
pub const MAX_OPS: u64 = 50_000_000;
/// At most this many values on the stack.
pub const MAX_STACK: usize = 1 << 16;
/// At most this many open MARKs.
pub const MAX_MARKS: usize = 64;
/// At most this many memo slots in use.
pub const MAX_MEMO: usize = 1 << 22;
/// At most this many tensors.
pub const MAX_TENSORS: usize = 1 << 20;
/// Strings (tensor names, global names) longer than this are refused.
pub const MAX_STRING: usize = 1 << 16;
/// Containers nested deeper than this are refused.
pub const MAX_DEPTH: u32 = 32;
/// Tensors with more dimensions than this are refused.
pub const MAX_DIMS: usize = 8;

/// A problem with the `.bin` file: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BinError {
    /// The zip archive: what is wrong with it (the message names entries and offsets).
    Zip(String),
    /// A pickle written by torch < 1.6 (not a zip).
    Legacy,
    /// data.pkl at this byte offset.
    Pickle { offset: u64, message: String },
}

/// One tensor of a `.bin` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinTensor {
    pub name: String,
    pub dtype: Dtype,
    /// Row-major.
    pub shape: Vec<u64>,
    /// Byte range within the `.bin` file.
    pub range: Range<usize>,
}

/// Read the tensors of a `torch.save` zip archive.
pub fn read(bytes: &[u8]) -> Result<Vec<BinTensor>, BinError> {
    if !bytes.starts_with(b"PK\x03\x04") {
        if bytes.first() == Some(&0x80) {
            return Err(BinError::Legacy);
        }
        return Err(BinError::Zip(
            "not a zip archive (torch.save writes one since PyTorch 1.6)".into(),
        ));
    }
    let entries = read_zip(bytes).map_err(BinError::Zip)?;
    let pkl: Vec<&ZipEntry> = entries
        .iter()
        .filter(|e| {
            e.name
                .strip_suffix("/data.pkl")
                .is_some_and(|p| !p.is_empty() && !p.contains('/'))
        })
        .collect();
    let pkl = match pkl.as_slice() {
        [one] => *one,
        [] => return Err(BinError::Zip("no <archive>/data.pkl entry".into())),
        _ => {
            return Err(BinError::Zip(
                "more than one <archive>/data.pkl entry".into(),
            ))
        }
    };
    let prefix = pkl.name.strip_suffix("data.pkl").unwrap_or_default();
    let by_name: HashMap<&str, &ZipEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    if let Some(order) = by_name.get(format!("{prefix}byteorder").as_str()) {
        let text = bytes.get(order.data.clone()).unwrap_or(&[]);
        if text.trim_ascii() != b"little" {
            return Err(BinError::Zip(format!(
                "{prefix}byteorder is {:?}; only little-endian checkpoints are read",
                String::from_utf8_lossy(text)
                    .chars()
                    .take(32)
                    .collect::<String>()
            )));
        }
    }
    let pkl_bytes = bytes.get(pkl.data.clone()).unwrap_or(&[]);
    if pkl_bytes.len() > MAX_PICKLE_BYTES {
        return Err(BinError::Zip(format!(
            "{} is {} bytes; at most {MAX_PICKLE_BYTES} are accepted",
            pkl.name,
            pkl_bytes.len()
        )));
    }
    let raw = unpickle(pkl_bytes)?;
    let mut out = Vec::with_capacity(raw.len());
    // Every tensor of one storage must agree on its type and size.
    let mut storages: HashMap<&str, (Dtype, u64)> = HashMap::new();
    for (name, t) in &raw {
        let perr = |message: String| BinError::Pickle {
            offset: t.storage.at,
            message: format!("tensor {name:?}: {message}"),
        };
        let s = &t.storage;
        let entry_name = format!("{prefix}data/{}", s.key);
        let entry = by_name
            .get(entry_name.as_str())
            .ok_or_else(|| perr(format!("its storage {entry_name} is not in the archive")))?;
        match storages.insert(&s.key, (s.dtype, s.numel)) {
            Some(prev) if prev != (s.dtype, s.numel) => {
                return Err(perr(format!(
                    "storage {:?} is described twice differently ({:?} x {} and {:?} x {})",
                    s.key, prev.0, prev.1, s.dtype, s.numel
                )))
            }
            _ => {}
        }
        let esz = elem_size(s.dtype) as u64;
        let entry_len = entry.data.len() as u64;
        let storage_bytes = s.numel.checked_mul(esz).filter(|&b| b <= entry_len);
        let Some(storage_bytes) = storage_bytes else {
            return Err(perr(format!(
                "storage {entry_name} claims {} elements of {esz} bytes but the entry holds {entry_len} bytes",
                s.numel
            )));
        };
        let count = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| perr(format!("shape {:?} overflows", t.shape)))?;
        let span = t
            .offset
            .checked_add(count)
            .and_then(|e| e.checked_mul(esz))
            .filter(|&e| e <= storage_bytes);
        let Some(end) = span else {
            return Err(perr(format!(
                "offset {} + {count} elements is beyond its storage of {} elements",
                t.offset, s.numel
            )));
        };
        let to_usize = |x: u64| usize::try_from(x).ok();
        let range = t
            .offset
            .checked_mul(esz)
            .and_then(to_usize)
            .zip(to_usize(end))
            .and_then(|(a, b)| {
                Some(entry.data.start.checked_add(a)?..entry.data.start.checked_add(b)?)
            })
            .filter(|r| r.end <= entry.data.end)
            .ok_or_else(|| perr("its byte range is outside the storage entry".into()))?;
        out.push(BinTensor {
            name: name.to_string(),
            dtype: s.dtype,
            shape: t.shape.clone(),
            range,
        });
    }
    Ok(out)
}

fn elem_size(d: Dtype) -> usize {
    match d {
        Dtype::F32 => 4,
        _ => 2,
    }
}

// ---- the zip archive ----

/// One stored entry: its name and the byte range of its data in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    pub name: String,
    pub data: Range<usize>,
}

fn le(bytes: &[u8], at: usize, n: usize) -> Result<u64, String> {
    let b = at
        .checked_add(n)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| format!("a {n}-byte field at byte {at} is past the end of the file"))?;
    Ok(b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn to_usize(x: u64, what: &str) -> Result<usize, String> {
    usize::try_from(x).map_err(|_| format!("{what} {x} does not fit in memory"))
}

const EOCD: u64 = 0x0605_4b50;
const EOCD64: u64 = 0x0606_4b50;
const EOCD64_LOCATOR: u64 = 0x0706_4b50;
const CENTRAL: u64 = 0x0201_4b50;
const LOCAL: u64 = 0x0403_4b50;

/// Parse the central directory of a zip archive whose entries are all stored.
pub fn read_zip(bytes: &[u8]) -> Result<Vec<ZipEntry>, String> {
    let len = bytes.len();
    // The end-of-central-directory record: 22 bytes + a comment of at most 64 KiB.
    let lowest = len.saturating_sub(22 + 0xFFFF);
    let mut eocd = None;
    let mut pos = len
        .checked_sub(22)
        .ok_or_else(|| format!("{len} bytes: too short for a zip archive (truncated download?)"))?;
    loop {
        if le(bytes, pos, 4)? == EOCD && le(bytes, pos + 20, 2)? as usize == len - pos - 22 {
            eocd = Some(pos);
            break;
        }
        if pos == lowest {
            break;
        }
        pos -= 1;
    }
    let eocd = eocd.ok_or_else(|| {
        "no end-of-central-directory record: the archive is truncated or not a zip".to_string()
    })?;
    let disk = le(bytes, eocd + 4, 2)?;
    let cd_disk = le(bytes, eocd + 6, 2)?;
    let mut n_disk = le(bytes, eocd + 8, 2)?;
    let mut n = le(bytes, eocd + 10, 2)?;
    let mut cd_size = le(bytes, eocd + 12, 4)?;
    let mut cd_offset = le(bytes, eocd + 16, 4)?;
    let mut cd_limit = eocd;
    if n == 0xFFFF || n_disk == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        // Zip64: the locator sits just before the record and points at the zip64 record.
        let loc = eocd
            .checked_sub(20)
            .ok_or("zip64 fields but no room for the zip64 locator")?;
        if le(bytes, loc, 4)? != EOCD64_LOCATOR {
            return Err("zip64 fields but no zip64 end-of-central-directory locator".into());
        }
        if le(bytes, loc + 4, 4)? != 0 || le(bytes, loc + 16, 4)? != 1 {
            return Err("multi-disk zip64 archives are not supported".into());
        }
        let rec = to_usize(le(bytes, loc + 8, 8)?, "zip64 record offset")?;
        if rec.checked_add(56).is_none_or(|e| e > loc) || le(bytes, rec, 4)? != EOCD64 {
            return Err(format!(
                "no zip64 end-of-central-directory record at byte {rec}"
            ));
        }
        if le(bytes, rec + 16, 4)? != 0 || le(bytes, rec + 20, 4)? != 0 {
            return Err("multi-disk zip64 archives are not supported".into());
        }
        n_disk = le(bytes, rec + 24, 8)?;
        n = le(bytes, rec + 32, 8)?;
        cd_size = le(bytes, rec + 40, 8)?;
        cd_offset = le(bytes, rec + 48, 8)?;
        cd_limit = rec;
    } else if disk != 0 || cd_disk != 0 {
        return Err("multi-disk zip archives are not supported".into());
    }
    if n != n_disk {
        return Err(format!(
            "{n_disk} entries on this disk but {n} in all: multi-disk archives are not supported"
        ));
    }
    let n = to_usize(n, "entry count")?;
    if n > MAX_ZIP_ENTRIES {
        return Err(format!(
            "{n} entries; at most {MAX_ZIP_ENTRIES} are accepted"
        ));
    }
    let cd_start = to_usize(cd_offset, "central directory offset")?;
    let cd_end = to_usize(cd_size, "central directory size")?
        .checked_add(cd_start)
        .filter(|&e| e <= cd_limit)
        .ok_or_else(|| {
            format!(
                "the central directory ({cd_size} bytes at byte {cd_offset}) is outside the archive (truncated?)"
            )
        })?;
    if n.checked_mul(46).is_none_or(|b| b > cd_end - cd_start) {
        return Err(format!(
            "{n} entries do not fit in a central directory of {cd_size} bytes"
        ));
    }
    let mut entries = Vec::with_capacity(n);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(n);
    let mut names = std::collections::HashSet::new();
    let mut p = cd_start;
    for i in 0..n {
        let field = |off: usize, w: usize| le(bytes, p + off, w);
        if p.checked_add(46).is_none_or(|e| e > cd_end) || field(0, 4)? != CENTRAL {
            return Err(format!(
                "central directory entry {i} at byte {p} is malformed"
            ));
        }
        let flags = field(8, 2)?;
        let method = field(10, 2)?;
        let mut csize = field(20, 4)?;
        let mut usize_ = field(24, 4)?;
        let name_len = field(28, 2)? as usize;
        let extra_len = field(30, 2)? as usize;
        let comment_len = field(32, 2)? as usize;
        let mut disk_start = field(34, 2)?;
        let mut local = field(42, 4)?;
        let name_start = p + 46;
        let extra_start = name_start + name_len;
        let next = extra_start + extra_len + comment_len;
        if next > cd_end {
            return Err(format!(
                "central directory entry {i} runs past the directory"
            ));
        }
        let name_bytes = bytes.get(name_start..extra_start).unwrap_or(&[]);
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| format!("entry {i}: its name is not UTF-8"))?
            .to_string();
        if flags & 0x41 != 0 {
            return Err(format!("entry {name:?} is encrypted"));
        }
        if method != 0 {
            return Err(format!(
                "entry {name:?} is compressed (method {method}); torch.save stores entries uncompressed"
            ));
        }
        // The zip64 extended-information extra field replaces the 0xFFFF... values, in order.
        let extra = bytes
            .get(extra_start..extra_start + extra_len)
            .unwrap_or(&[]);
        let mut q = 0usize;
        while q + 4 <= extra.len() {
            let id = le(extra, q, 2)?;
            let size = le(extra, q + 2, 2)? as usize;
            let body = extra
                .get(q + 4..q + 4 + size)
                .ok_or_else(|| format!("entry {name:?}: an extra field runs past its entry"))?;
            if id == 1 {
                let mut r = 0usize;
                let mut take = |v: &mut u64, wide: u64, width: usize| -> Result<(), String> {
                    if *v == wide {
                        *v = le(body, r, width)
                            .map_err(|_| format!("entry {name:?}: short zip64 extra field"))?;
                        r += width;
                    }
                    Ok(())
                };
                take(&mut usize_, 0xFFFF_FFFF, 8)?;
                take(&mut csize, 0xFFFF_FFFF, 8)?;
                take(&mut local, 0xFFFF_FFFF, 8)?;
                take(&mut disk_start, 0xFFFF, 4)?;
            }
            q += 4 + size;
        }
        if disk_start != 0 {
            return Err(format!("entry {name:?} is on another disk"));
        }
        if csize != usize_ {
            return Err(format!(
                "entry {name:?}: stored size {csize} differs from its size {usize_}"
            ));
        }
        if !names.insert(name.clone()) {
            return Err(format!("entry {name:?} appears twice"));
        }
        let local = to_usize(local, "local header offset")?;
        if local.checked_add(30).is_none_or(|e| e > cd_start) || le(bytes, local, 4)? != LOCAL {
            return Err(format!(
                "entry {name:?}: no local header at byte {local} (truncated or corrupt archive)"
            ));
        }
        if le(bytes, local + 8, 2)? != 0 {
            return Err(format!("entry {name:?}: its local header says compressed"));
        }
        let lname = le(bytes, local + 26, 2)? as usize;
        let lextra = le(bytes, local + 28, 2)? as usize;
        let data_start = local + 30 + lname + lextra;
        if bytes.get(local + 30..local + 30 + lname) != Some(name_bytes) {
            return Err(format!(
                "entry {name:?}: its local header names another file"
            ));
        }
        let data_end = to_usize(csize, "entry size")?
            .checked_add(data_start)
            .filter(|&e| e <= cd_start)
            .ok_or_else(|| {
                format!(
                    "entry {name:?}: {csize} bytes at byte {data_start} run past the data area (truncated?)"
                )
            })?;
        spans.push((local, data_end));
        entries.push(ZipEntry {
            name,
            data: data_start..data_end,
        });
        p = next;
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if let [a, b] = w {
            if b.0 < a.1 {
                return Err(format!("entries at bytes {} and {} overlap", a.0, b.0));
            }
        }
    }
    Ok(entries)
}

// ---- the restricted unpickler ----

/// The only globals a pickle may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    Storage(Dtype),
}

/// Where a tensor's elements live: `('storage', StorageType, key, location, numel)`.
#[derive(Debug)]
struct StorageRef {
    dtype: Dtype,
    key: String,
    numel: u64,
    /// The BINPERSID opcode's offset.
    at: u64,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: u64,
    shape: Vec<u64>,
    /// Why the strides are not row-major, if they are not.
    strided: Option<String>,
    /// The REDUCE opcode's offset.
    at: u64,
}

/// A dict (plain or OrderedDict). Mutable only while it is not inside another value,
/// so that nesting depth is fixed once counted and no value can contain itself.
#[derive(Debug)]
struct Dict {
    items: RefCell<Vec<(V, V)>>,
    /// The string keys, to refuse a repeated one.
    keys: RefCell<std::collections::HashSet<Rc<str>>>,
    depth: Cell<u32>,
    sealed: Cell<bool>,
    ordered: bool,
}

impl Dict {
    fn new(ordered: bool) -> Rc<Dict> {
        Rc::new(Dict {
            items: RefCell::default(),
            keys: RefCell::default(),
            depth: Cell::new(1),
            sealed: Cell::new(false),
            ordered,
        })
    }
}

#[derive(Clone, Debug)]
enum V {
    None,
    Bool,
    Int(i64),
    Str(Rc<str>),
    Tuple(Rc<(Vec<V>, u32)>),
    Dict(Rc<Dict>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl V {
    fn depth(&self) -> u32 {
        match self {
            V::Tuple(t) => t.1,
            V::Dict(d) => d.depth.get(),
            _ => 0,
        }
    }

    /// This value is now inside another: it may no longer change.
    fn seal(&self) {
        if let V::Dict(d) = self {
            d.sealed.set(true);
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            V::None => "None",
            V::Bool => "a bool",
            V::Int(_) => "an int",
            V::Str(_) => "a string",
            V::Tuple(_) => "a tuple",
            V::Dict(_) => "a dict",
            V::Global(_) => "a global",
            V::Storage(_) => "a storage",
            V::Tensor(_) => "a tensor",
        }
    }
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "an unknown opcode",
    }
}

/// The global `module.name`, if it is one we accept.
fn global(module: &str, name: &str) -> Result<Global, String> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch", "FloatStorage") => Ok(Global::Storage(Dtype::F32)),
        ("torch", "HalfStorage") => Ok(Global::Storage(Dtype::F16)),
        ("torch", "BFloat16Storage") => Ok(Global::Storage(Dtype::BF16)),
        ("torch", s) if s.ends_with("Storage") => Err(format!(
            "storage type torch.{s} is not accepted: tensors must be F32, F16 or BF16 \
             (torch.FloatStorage, torch.HalfStorage, torch.BFloat16Storage)"
        )),
        _ => Err(format!(
            "global {module}.{name} is refused: a checkpoint may name only \
             collections.OrderedDict, torch._utils._rebuild_tensor_v2 and \
             torch.{{Float,Half,BFloat16}}Storage (the file was not executed)"
        )),
    }
}

struct Machine<'a> {
    code: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed.
    at: u64,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u32, V>,
    tensors: usize,
}

type Tensors = Vec<(Rc<str>, Rc<TensorRef>)>;

/// Run data.pkl; the result must be a dict of name -> tensor.
fn unpickle(code: &[u8]) -> Result<Tensors, BinError> {
    let mut m = Machine {
        code,
        pos: 0,
        at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        tensors: 0,
    };
    let result = m.run().map_err(|message| BinError::Pickle {
        offset: m.at,
        message,
    })?;
    let err = |message: String| BinError::Pickle {
        offset: m.at,
        message,
    };
    let V::Dict(d) = result else {
        return Err(err(format!(
            "the pickle holds {}, not a dict of name -> tensor (a state dict)",
            result.kind()
        )));
    };
    let items = d.items.borrow();
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items.iter() {
        match (k, v) {
            (V::Str(k), V::Tensor(t)) => {
                if let Some(why) = &t.strided {
                    return Err(BinError::Pickle {
                        offset: t.at,
                        message: format!("tensor {k:?}: {why}"),
                    });
                }
                out.push((k.clone(), t.clone()));
            }
            (V::Str(k), v) => {
                return Err(err(format!(
                    "state dict entry {k:?} is {}, not a tensor",
                    v.kind()
                )))
            }
            (k, _) => return Err(err(format!("state dict key is {}, not a string", k.kind()))),
        }
    }
    Ok(out)
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.code.len())
            .ok_or_else(|| {
                format!(
                    "{} needs {n} more bytes than data.pkl has",
                    opcode_name(self.code.get(self.at as usize).copied().unwrap_or(0))
                )
            })?;
        let s = self.code.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        le(b, 0, n)
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = self.code.get(self.pos..).unwrap_or(&[]);
        let limit = rest.len().min(MAX_STRING);
        let nl = rest
            .get(..limit)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
            .ok_or("GLOBAL: no newline-terminated name")?;
        let s = self.take(nl + 1)?;
        let s = s.get(..nl).unwrap_or(&[]);
        std::str::from_utf8(s)
            .map(str::to_string)
            .map_err(|_| "GLOBAL: the name is not UTF-8".into())
    }

    fn string(&mut self, len: u64) -> Result<V, String> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_STRING)
            .ok_or_else(|| format!("a string of {len} bytes; at most {MAX_STRING} are accepted"))?;
        let b = self.take(len)?;
        let s = std::str::from_utf8(b).map_err(|_| "a string that is not UTF-8".to_string())?;
        Ok(V::Str(Rc::from(s)))
    }

    fn push(&mut self, v: V) -> Result<(), String> {
        if self.stack.len() >= MAX_STACK {
            return Err(format!("the stack is deeper than {MAX_STACK}"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<V, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("pops an empty stack".into());
        }
        self.stack.pop().ok_or_else(|| "pops an empty stack".into())
    }

    fn top(&self) -> Result<&V, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("needs a value on an empty stack".into());
        }
        self.stack
            .last()
            .ok_or_else(|| "needs a value on an empty stack".into())
    }

    /// Everything above the last MARK.
    fn pop_mark(&mut self) -> Result<Vec<V>, String> {
        let m = self.marks.pop().ok_or("no MARK to pop to")?;
        if m > self.stack.len() {
            return Err("the MARK is above the stack".into());
        }
        Ok(self.stack.split_off(m))
    }

    fn tuple(&mut self, items: Vec<V>) -> Result<(), String> {
        let depth = items.iter().map(V::depth).max().unwrap_or(0) + 1;
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        items.iter().for_each(V::seal);
        self.push(V::Tuple(Rc::new((items, depth))))
    }

    fn dict(&mut self, ordered: bool) -> Result<(), String> {
        self.push(V::Dict(Dict::new(ordered)))
    }

    fn set_items(&mut self, target: &V, kv: Vec<V>) -> Result<(), String> {
        let V::Dict(d) = target else {
            return Err(format!("sets items on {}, not a dict", target.kind()));
        };
        if d.sealed.get() {
            return Err("sets items on a dict that is already inside another value".into());
        }
        if !kv.len().is_multiple_of(2) {
            return Err("an odd number of keys and values".into());
        }
        let mut items = d.items.borrow_mut();
        let mut it = kv.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            // A state dict (and its `_metadata`) is keyed by names; any other key could
            // only be a trick (a dict keyed by itself).
            let V::Str(key) = &k else {
                return Err(format!("a dict key that is {}, not a string", k.kind()));
            };
            if !d.keys.borrow_mut().insert(key.clone()) {
                return Err(format!("key {key:?} appears twice"));
            }
            let depth = v.depth() + 1;
            if depth > MAX_DEPTH {
                return Err(format!("values nested deeper than {MAX_DEPTH}"));
            }
            if matches!(v, V::Dict(ref inner) if Rc::ptr_eq(inner, d)) {
                return Err("a dict inside itself".into());
            }
            v.seal();
            d.depth.set(d.depth.get().max(depth));
            items.push((k, v));
        }
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(format!("more than {MAX_MEMO} memo entries"));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), String> {
        let v = u32::try_from(key)
            .ok()
            .and_then(|k| self.memo.get(&k))
            .cloned()
            .ok_or_else(|| format!("memo slot {key} is read before it is written"))?;
        self.push(v)
    }

    fn int(v: &V, what: &str) -> Result<u64, String> {
        match v {
            V::Int(i) => u64::try_from(*i).map_err(|_| format!("{what} is negative ({i})")),
            other => Err(format!("{what} is {}, expected an int", other.kind())),
        }
    }

    fn ints(v: &V, what: &str) -> Result<Vec<u64>, String> {
        let V::Tuple(t) = v else {
            return Err(format!("{what} is {}, expected a tuple of ints", v.kind()));
        };
        if t.0.len() > MAX_DIMS {
            return Err(format!(
                "{what} has {} dimensions; at most {MAX_DIMS} are accepted",
                t.0.len()
            ));
        }
        t.0.iter().map(|x| Self::int(x, what)).collect()
    }

    /// `('storage', StorageType, key, location, numel)`.
    fn persistent(&mut self, pid: &V) -> Result<V, String> {
        let bad = || {
            "a persistent id that is not ('storage', torch.<Type>Storage, key, location, numel)"
                .to_string()
        };
        let V::Tuple(t) = pid else {
            return Err(bad());
        };
        let [V::Str(tag), ty, V::Str(key), _location, numel] = t.0.as_slice() else {
            return Err(bad());
        };
        if &**tag != "storage" {
            return Err(bad());
        }
        let V::Global(Global::Storage(dtype)) = ty else {
            return Err(format!(
                "persistent id storage type is {}, expected torch.FloatStorage, HalfStorage or BFloat16Storage",
                ty.kind()
            ));
        };
        if key.is_empty() || key.contains(['/', '\\', '\0']) {
            return Err(format!("storage key {key:?} is not a plain name"));
        }
        let numel = Self::int(numel, "storage numel")?;
        Ok(V::Storage(Rc::new(StorageRef {
            dtype: *dtype,
            key: key.to_string(),
            numel,
            at: self.at,
        })))
    }

    fn reduce(&mut self, f: &V, args: &V) -> Result<V, String> {
        let V::Tuple(a) = args else {
            return Err(format!("REDUCE arguments are {}, not a tuple", args.kind()));
        };
        match f {
            V::Global(Global::OrderedDict) => {
                if !a.0.is_empty() {
                    return Err("collections.OrderedDict called with arguments".into());
                }
                Ok(V::Dict(Dict::new(true)))
            }
            V::Global(Global::RebuildTensorV2) => self.rebuild_tensor(&a.0),
            V::Global(Global::Storage(_)) => Err(
                "a storage type called as a function (storages come from persistent ids)".into(),
            ),
            other => Err(format!("REDUCE calls {}, not a global", other.kind())),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`.
    fn rebuild_tensor(&mut self, a: &[V]) -> Result<V, String> {
        let (storage, offset, size, stride, hooks, metadata) = match a {
            [s, o, size, stride, _grad, hooks] => (s, o, size, stride, hooks, None),
            [s, o, size, stride, _grad, hooks, meta] => (s, o, size, stride, hooks, Some(meta)),
            _ => {
                return Err(format!(
                    "torch._utils._rebuild_tensor_v2 with {} arguments, expected 6 or 7",
                    a.len()
                ))
            }
        };
        let V::Storage(storage) = storage else {
            return Err(format!(
                "_rebuild_tensor_v2's storage is {}, expected a persistent storage id",
                storage.kind()
            ));
        };
        let empty = |v: &V| match v {
            V::None => true,
            V::Dict(d) => d.items.borrow().is_empty(),
            _ => false,
        };
        if !empty(hooks) || metadata.is_some_and(|m| !empty(m)) {
            return Err("a tensor with backward hooks or metadata".into());
        }
        let offset = Self::int(offset, "storage_offset")?;
        let shape = Self::ints(size, "size")?;
        let stride = Self::ints(stride, "stride")?;
        if stride.len() != shape.len() {
            return Err(format!(
                "size {shape:?} and stride {stride:?} differ in length"
            ));
        }
        // Row-major (contiguous): each stride is the product of the later sizes; a
        // dimension of size 1 may have any stride (PyTorch's own rule). Reported with the
        // tensor's name once the state dict names it.
        let mut want = 1u64;
        let mut strided = None;
        for (&d, &s) in shape.iter().zip(&stride).rev() {
            if d != 1 && s != want {
                strided = Some(format!(
                    "size {shape:?} with stride {stride:?} is not contiguous (row-major); \
                     call .contiguous() before saving, or save as safetensors"
                ));
            }
            want = want
                .checked_mul(d)
                .ok_or_else(|| format!("size {shape:?} overflows"))?;
        }
        self.tensors += 1;
        if self.tensors > MAX_TENSORS {
            return Err(format!("more than {MAX_TENSORS} tensors"));
        }
        Ok(V::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            offset,
            shape,
            strided,
            at: self.at,
        })))
    }

    fn run(&mut self) -> Result<V, String> {
        let mut ops = 0u64;
        loop {
            ops += 1;
            if ops > MAX_OPS {
                return Err(format!("more than {MAX_OPS} opcodes"));
            }
            self.at = self.pos as u64;
            let op = *self
                .code
                .get(self.pos)
                .ok_or("data.pkl ends without STOP (truncated?)")?;
            self.pos += 1;
            match op {
                0x80 => {
                    let v = self.uint(1)?;
                    if !(2..=5).contains(&v) {
                        return Err(format!("pickle protocol {v}; expected 2 to 5"));
                    }
                }
                0x95 => {
                    self.uint(8)?;
                }
                b'.' => {
                    let v = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err("STOP with values left on the stack".into());
                    }
                    return Ok(v);
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(format!("more than {MAX_MARKS} open MARKs"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'}' => self.dict(false)?,
                b')' => self.tuple(Vec::new())?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.tuple(items)?;
                }
                b'q' => {
                    let k = self.uint(1)? as u32;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.uint(4)? as u32;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.uint(1)?;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.uint(4)?;
                    self.memo_get(k)?;
                }
                b'X' => {
                    let n = self.uint(4)?;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                0x8c => {
                    let n = self.uint(1)?;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = self.uint(8)?;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(V::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(V::Int(v as i64))?;
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(V::Int(v as i64))?;
                }
                0x8a => {
                    let n = self.uint(1)? as usize;
                    if n > 8 {
                        return Err(format!("LONG1 of {n} bytes; at most 8 are accepted"));
                    }
                    let b = self.take(n)?;
                    let raw = le(b, 0, n)?;
                    let v = if n == 0 {
                        0
                    } else {
                        // Sign-extend from n bytes.
                        let shift = 64 - 8 * n as u32;
                        ((raw << shift) as i64) >> shift
                    };
                    self.push(V::Int(v))?;
                }
                0x88 => self.push(V::Bool)?,
                0x89 => self.push(V::Bool)?,
                b'N' => self.push(V::None)?,
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![k, v])?;
                }
                b'u' => {
                    let kv = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, kv)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = global(&module, &name)?;
                    self.push(V::Global(g))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (V::Str(module), V::Str(name)) = (&module, &name) else {
                        return Err("STACK_GLOBAL of values that are not strings".into());
                    };
                    let g = global(module, name)?;
                    self.push(V::Global(g))?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    args.seal();
                    let v = self.reduce(&f, &args)?;
                    self.push(v)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(&pid)?;
                    self.push(v)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    let V::Dict(d) = target else {
                        return Err(format!("BUILD on {}, expected an OrderedDict", target.kind()));
                    };
                    if !d.ordered {
                        return Err("BUILD on a plain dict".into());
                    }
                    // OrderedDict's state is its instance __dict__: nothing, or the
                    // `_metadata` that `state_dict()` attaches (data, ignored).
                    let ok = match &state {
                        V::None => true,
                        V::Dict(s) => s.items.borrow().iter().all(
                            |(k, _)| matches!(k, V::Str(k) if &**k == "_metadata"),
                        ),
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "BUILD with {} as state; an OrderedDict accepts only None or {{'_metadata': …}}",
                            state.kind()
                        ));
                    }
                }
                other => {
                    return Err(format!(
                        "opcode {} (0x{other:02x}) is not accepted in a checkpoint (the file was not executed)",
                        opcode_name(other)
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &[u8]) -> Result<Tensors, BinError> {
        unpickle(code)
    }

    fn err(code: &[u8]) -> (u64, String) {
        match run(code) {
            Err(BinError::Pickle { offset, message }) => (offset, message),
            other => panic!("expected a pickle error, got {other:?}"),
        }
    }

    /// A one-tensor state dict as torch writes it (protocol 2).
    fn one_tensor(storage: &str, stride: u8) -> Vec<u8> {
        let mut p =
            b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02".to_vec();
        p.extend_from_slice(
            b"ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04c",
        );
        p.extend_from_slice(format!("torch\n{storage}\n").as_bytes());
        p.extend_from_slice(b"q\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x06tq\x08QK\x00K\x02K\x03\x86q\x09");
        p.extend_from_slice(&[b'K', stride]);
        p.extend_from_slice(
            b"K\x01\x86q\x0a\x89ccollections\nOrderedDict\nq\x0b)Rq\x0ctq\x0dRq\x0es.",
        );
        p
    }

    #[test]
    fn reads_a_state_dict() {
        let t = run(&one_tensor("FloatStorage", 3)).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(&*t[0].0, "w");
        assert_eq!(t[0].1.shape, vec![2, 3]);
        assert_eq!(t[0].1.storage.dtype, Dtype::F32);
        assert_eq!(t[0].1.storage.numel, 6);
        let t = run(&one_tensor("BFloat16Storage", 3)).unwrap();
        assert_eq!(t[0].1.storage.dtype, Dtype::BF16);
    }

    #[test]
    fn refuses_strides_storages_and_globals() {
        let (_, m) = err(&one_tensor("FloatStorage", 1));
        assert!(m.contains("not contiguous"), "{m}");
        let (_, m) = err(&one_tensor("LongStorage", 3));
        assert!(m.contains("torch.LongStorage"), "{m}");
        let (at, m) = err(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.");
        assert_eq!(at, 2);
        assert!(m.contains("global os.system is refused"), "{m}");
        let (at, m) = err(b"\x80\x02X\x08\x00\x00\x00builtinsX\x04\x00\x00\x00eval\x93.");
        assert_eq!(at, 24);
        assert!(m.contains("builtins.eval"), "{m}");
    }

    #[test]
    fn unknown_and_unaccepted_opcodes_name_themselves() {
        let (at, m) = err(b"\x80\x02}i");
        assert_eq!(at, 3);
        assert!(m.contains("INST"), "{m}");
        let (at, m) = err(b"\x80\x02\xff");
        assert_eq!(at, 2);
        assert!(m.contains("0xff"), "{m}");
        for (code, name) in [
            (&b"\x80\x02)\x81."[..], "NEWOBJ"),
            (b"\x80\x02\x82\x01.", "EXT1"),
            (b"\x80\x02]."[..].as_ref(), "EMPTY_LIST"),
            (b"\x80\x02N0.", "POP"),
        ] {
            let (_, m) = err(code);
            assert!(m.contains(name), "{name}: {m}");
        }
        let (_, m) = err(b"\x80\x09}.");
        assert!(m.contains("protocol 9"), "{m}");
    }

    #[test]
    fn memo_misuse_and_stack_errors() {
        let (at, m) = err(b"\x80\x02h\x05.");
        assert_eq!(at, 2);
        assert!(m.contains("memo slot 5"), "{m}");
        assert!(err(b"\x80\x02q\x00.").1.contains("empty stack"));
        assert!(err(b"\x80\x02.").1.contains("empty stack"));
        assert!(err(b"\x80\x02}").1.contains("without STOP"));
        assert!(err(b"\x80\x02}}.").1.contains("left on the stack"));
        assert!(err(b"\x80\x02(t.").1.contains("not a dict"));
        assert!(err(b"\x80\x02X\xff\xff\xff\x00").1.contains("at most"));
        assert!(err(b"\x80\x02X\x05\x00\x00\x00ab").1.contains("more bytes"));
        // A dict set into after it was placed inside another value.
        let (_, m) = err(b"\x80\x02}q\x00\x85h\x00K\x01K\x02s.");
        assert!(m.contains("already inside"), "{m}");
        // Keys that are not names: an int, the dict itself.
        assert!(err(b"\x80\x02}K\x01K\x02s.").1.contains("not a string"));
        let (_, m) = err(b"\x80\x02}q\x00h\x00Ns.");
        assert!(m.contains("a dict, not a string"), "{m}");
        // SETITEMS with an odd count; SETITEM on a tuple.
        assert!(err(b"\x80\x02}(K\x01u.").1.contains("odd"));
        assert!(err(b"\x80\x02)K\x01K\x02s.").1.contains("not a dict"));
        // BUILD with code-like state; onto a plain dict.
        assert!(err(b"\x80\x02ccollections\nOrderedDict\n)RK\x01b.")
            .1
            .contains("BUILD"));
        assert!(err(b"\x80\x02}Nb.").1.contains("plain dict"));
        // Values that are not tensors.
        assert!(err(b"\x80\x02}X\x01\x00\x00\x00aK\x01s.")
            .1
            .contains("not a tensor"));
    }

    #[test]
    fn bounds_hold() {
        // Stack.
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'N', MAX_STACK + 1));
        assert!(err(&p).1.contains("stack is deeper"));
        // Marks.
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'(', MAX_MARKS + 1));
        assert!(err(&p).1.contains("MARKs"));
        // Nesting: TUPLE1 repeated.
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat_n(0x85, MAX_DEPTH as usize + 1));
        assert!(err(&p).1.contains("nested deeper"));
        // Memo size is bounded by MAX_MEMO; many PUTs to one slot are fine.
        let mut p = b"\x80\x02}".to_vec();
        for _ in 0..1000 {
            p.extend_from_slice(b"q\x00");
        }
        p.push(b'.');
        assert!(run(&p).unwrap().is_empty());
        // LONG1 wider than 8 bytes, and its sign.
        assert!(
            err(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00.")
                .1
                .contains("LONG1")
        );
    }

    #[test]
    fn never_panics_on_mutations() {
        let base = one_tensor("HalfStorage", 3);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let mut p = base.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % p.len() as u64) as usize;
                p[i] = (seed >> 32) as u8;
            }
            let _ = run(&p);
            let _ = read(&p);
            let _ = read_zip(&p);
        }
    }

    #[test]
    fn zip_errors() {
        assert_eq!(
            read(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."),
            Err(BinError::Legacy)
        );
        assert!(matches!(read(b"hello"), Err(BinError::Zip(_))));
        assert!(read_zip(b"PK\x03\x04").unwrap_err().contains("too short"));
        let mut z = vec![0u8; 40];
        z[..4].copy_from_slice(b"PK\x03\x04");
        assert!(read_zip(&z)
            .unwrap_err()
            .contains("end-of-central-directory"));
        // An empty archive is fine for the zip reader, but has no data.pkl.
        let empty = [b"PK\x05\x06".as_slice(), &[0u8; 18]].concat();
        assert_eq!(read_zip(&empty).unwrap(), vec![]);
    }

    fn local(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"PK\x03\x04".to_vec();
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn central(name: &str, size: u64, off: u64, zip64: bool) -> Vec<u8> {
        let mut c = b"PK\x01\x02".to_vec();
        c.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let (s32, o32) = if zip64 {
            (u32::MAX, u32::MAX)
        } else {
            (size as u32, off as u32)
        };
        c.extend_from_slice(&s32.to_le_bytes());
        c.extend_from_slice(&s32.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&(if zip64 { 28u16 } else { 0 }).to_le_bytes());
        c.extend_from_slice(&[0; 10]);
        c.extend_from_slice(&o32.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        if zip64 {
            c.extend_from_slice(&[1, 0, 24, 0]);
            c.extend_from_slice(&size.to_le_bytes());
            c.extend_from_slice(&size.to_le_bytes());
            c.extend_from_slice(&off.to_le_bytes());
        }
        c
    }

    fn eocd(n: u16, cd_len: u32, cd_off: u32) -> Vec<u8> {
        let mut e = b"PK\x05\x06\0\0\0\0".to_vec();
        e.extend_from_slice(&n.to_le_bytes());
        e.extend_from_slice(&n.to_le_bytes());
        e.extend_from_slice(&cd_len.to_le_bytes());
        e.extend_from_slice(&cd_off.to_le_bytes());
        e.extend_from_slice(&[0, 0]);
        e
    }

    /// A zip of stored entries, built by hand; `zip64` puts every size and offset in
    /// zip64 fields (central extra field, zip64 record and locator), as writers do for
    /// files over 4 GiB.
    fn zip(entries: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data) in entries {
            cd.extend(central(name, data.len() as u64, out.len() as u64, zip64));
            out.extend(local(name, data));
        }
        let cd_off = out.len() as u64;
        out.extend_from_slice(&cd);
        let n = entries.len() as u64;
        if !zip64 {
            out.extend(eocd(n as u16, cd.len() as u32, cd_off as u32));
            return out;
        }
        let rec = out.len() as u64;
        out.extend_from_slice(b"PK\x06\x06");
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for v in [n, n, cd.len() as u64, cd_off] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(b"PK\x06\x07\0\0\0\0");
        out.extend_from_slice(&rec.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend(eocd(u16::MAX, u32::MAX, u32::MAX));
        out
    }

    #[test]
    fn reads_zip_and_zip64_archives() {
        let pkl = one_tensor("FloatStorage", 3);
        let data: Vec<u8> = (0..6u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
        for zip64 in [false, true] {
            let z = zip(
                &[
                    ("archive/data.pkl", &pkl),
                    ("archive/byteorder", b"little"),
                    ("archive/data/0", &data),
                    ("archive/version", b"3\n"),
                ],
                zip64,
            );
            let entries = read_zip(&z).unwrap();
            assert_eq!(entries.len(), 4);
            let t = read(&z).unwrap();
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].shape, vec![2, 3]);
            assert_eq!(&z[t[0].range.clone()], &data[..], "zip64 {zip64}");
            // Cut anywhere: refused, never a panic.
            for cut in 0..z.len() {
                assert!(read(&z[..cut]).is_err());
            }
        }
        // A big-endian archive, a storage shorter than its numel, a missing storage.
        let z = zip(
            &[
                ("a/data.pkl", &pkl),
                ("a/byteorder", b"big"),
                ("a/data/0", &data),
            ],
            false,
        );
        assert!(matches!(read(&z), Err(BinError::Zip(m)) if m.contains("little-endian")));
        let z = zip(&[("a/data.pkl", &pkl), ("a/data/0", &data[..20])], false);
        assert!(
            matches!(read(&z), Err(BinError::Pickle { message, .. }) if message.contains("claims 6 elements"))
        );
        let z = zip(&[("a/data.pkl", &pkl)], false);
        assert!(
            matches!(read(&z), Err(BinError::Pickle { message, .. }) if message.contains("a/data/0 is not in the archive"))
        );
        // Two data.pkl, a duplicate name.
        let z = zip(&[("a/data.pkl", &pkl), ("b/data.pkl", &pkl)], false);
        assert!(matches!(read(&z), Err(BinError::Zip(m)) if m.contains("more than one")));
        let z = zip(&[("a/x", b"1"), ("a/x", b"2")], false);
        assert!(read_zip(&z).unwrap_err().contains("twice"));
    }

    #[test]
    fn overlapping_and_escaping_entries_are_refused() {
        // Entry "b" is a whole stored entry inside the data of "a": its local header is
        // genuine, but the bytes belong to both.
        let inner = local("b", b"xyz");
        let body = local("a", &inner);
        let mut cd = central("a", inner.len() as u64, 0, false);
        cd.extend(central("b", 3, 31, false));
        let mut z = body.clone();
        z.extend_from_slice(&cd);
        z.extend(eocd(2, cd.len() as u32, body.len() as u32));
        assert!(
            read_zip(&z).unwrap_err().contains("overlap"),
            "{:?}",
            read_zip(&z)
        );
        // An entry whose size runs into the central directory.
        let mut z = zip(&[("a", b"abc")], false);
        let cd = z.len() - 22 - 47;
        z[cd + 20..cd + 24].copy_from_slice(&100u32.to_le_bytes());
        z[cd + 24..cd + 28].copy_from_slice(&100u32.to_le_bytes());
        assert!(read_zip(&z).unwrap_err().contains("run past the data area"));
        // Too many entries for the directory's size.
        let mut z = zip(&[("a", b"abc")], false);
        let e = z.len() - 22;
        z[e + 8..e + 12].copy_from_slice(&[0xF0, 0xFF, 0xF0, 0xFF]);
        assert!(read_zip(&z).is_err());
    }
}
