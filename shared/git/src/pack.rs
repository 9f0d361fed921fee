//! Writing a received pack and its index without memory-mapping the pack.
//!
//! gix indexes a received pack through a memory map of the whole file, so every page of it is
//! resident in the process at once (a 90 MB pack is 90 MB of RSS). Here the pack is streamed
//! to disk while its entries are listed, then each object is read back with positioned reads
//! to compute its id: memory stays at the entry table plus the delta bases in use, bounded by
//! [`BASE_CACHE_LIMIT`]. The result is a standard `pack-<hash>.pack` + version 2 `.idx` pair
//! that gix (or git) reads as usual.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use gix::ObjectId;
use gix::odb::pack::data::entry::Header;
use gix::odb::pack::data::input;

/// Decompressed delta bases kept for later deltas, at most.
pub(crate) const BASE_CACHE_LIMIT: usize = 16 << 20;

/// The largest object a pack may hold: sizes come from the remote, and nothing is allocated
/// for a larger one.
const MAX_OBJECT_SIZE: usize = 1 << 30;

/// The deepest delta chain accepted (git itself writes at most 4095).
const MAX_DELTA_DEPTH: usize = 10_000;

/// One entry of the pack as it was streamed.
struct Entry {
    offset: u64,
    header: Header,
    data_offset: u64,
    compressed_size: u64,
    decompressed_size: u64,
    crc32: u32,
}

/// Reads `pack` (a pack stream) into `pack_dir` as `pack-<hash>.pack` and `.idx`.
///
/// Returns the number of objects.
pub(crate) fn write_pack(
    pack: &mut dyn BufRead,
    pack_dir: &Path,
    interrupt: &AtomicBool,
) -> Result<usize, String> {
    let temp = tempfile::Builder::new()
        .prefix("incoming-")
        .tempfile_in(pack_dir)
        .map_err(|err| format!("creating a pack file in {}: {err}", pack_dir.display()))?;
    let mut entries = Vec::new();
    let mut trailer = None;
    {
        let tee = Tee { inner: pack, out: BufWriter::with_capacity(1 << 16, temp.as_file()) };
        let stream = BufReader::with_capacity(1 << 16, tee);
        let iter = input::BytesToEntriesIter::new_from_header(
            stream,
            input::Mode::Verify,
            input::EntryDataMode::Crc32,
            gix::hash::Kind::Sha1,
        )
        .map_err(|err| format!("reading the pack: {err}"))?;
        for entry in iter {
            if interrupt.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            let entry = entry.map_err(|err| format!("reading the pack: {err}"))?;
            entries.push(Entry {
                offset: entry.pack_offset,
                header: entry.header,
                data_offset: entry.pack_offset + u64::from(entry.header_size),
                compressed_size: entry.compressed_size,
                decompressed_size: entry.decompressed_size,
                crc32: entry.crc32.unwrap_or_default(),
            });
            if let Some(hash) = entry.trailer {
                trailer = Some(hash);
            }
        }
    }
    let trailer = trailer.ok_or("the pack ended before its checksum")?;
    temp.as_file().sync_all().map_err(|err| format!("writing the pack: {err}"))?;

    let ids = object_ids(temp.as_file(), &entries, interrupt)?;
    let pack_path = pack_dir.join(format!("pack-{trailer}.pack"));
    let index_path = pack_dir.join(format!("pack-{trailer}.idx"));
    let index =
        tempfile::Builder::new()
            .prefix("incoming-")
            .suffix(".idx")
            .tempfile_in(pack_dir)
            .map_err(|err| format!("creating an index file in {}: {err}", pack_dir.display()))?;
    write_index(index.as_file(), &entries, &ids, trailer)
        .map_err(|err| format!("writing the pack index: {err}"))?;
    temp.persist(&pack_path).map_err(|err| format!("storing the pack: {}", err.error))?;
    index.persist(&index_path).map_err(|err| format!("storing the pack index: {}", err.error))?;
    Ok(entries.len())
}

/// Copies everything read from `inner` into `out`.
struct Tee<'a, W: Write> {
    inner: &'a mut dyn BufRead,
    out: W,
}

impl<W: Write> Read for Tee<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        if n == 0 {
            self.out.flush()?;
        }
        Ok(n)
    }
}

impl<W: Write> Drop for Tee<'_, W> {
    fn drop(&mut self) {
        // Errors surface when the file is read back (a short file fails the object reads).
        let _ = self.out.flush();
    }
}

/// The id of every entry, in entry order.
fn object_ids(
    file: &File,
    entries: &[Entry],
    interrupt: &AtomicBool,
) -> Result<Vec<ObjectId>, String> {
    let by_offset: HashMap<u64, usize> =
        entries.iter().enumerate().map(|(index, entry)| (entry.offset, index)).collect();
    // How many deltas still need each entry as their base.
    let mut pending_children = vec![0usize; entries.len()];
    let mut bases = vec![None; entries.len()];
    for (index, entry) in entries.iter().enumerate() {
        if let Header::OfsDelta { base_distance } = entry.header {
            let base = entry
                .offset
                .checked_sub(base_distance)
                .and_then(|offset| by_offset.get(&offset).copied())
                .ok_or_else(|| format!("delta at {} has no base in the pack", entry.offset))?;
            bases[index] = Some(base);
            pending_children[base] += 1;
        }
    }
    let mut resolver = Resolver {
        file,
        entries,
        bases,
        pending_children,
        ids: vec![None; entries.len()],
        by_id: HashMap::new(),
        cache: HashMap::new(),
        cached_bytes: 0,
    };
    // Reference deltas may name a base that comes later: retry them until none is left.
    let mut todo: Vec<usize> = (0..entries.len()).collect();
    loop {
        let mut deferred = Vec::new();
        for &index in &todo {
            if interrupt.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            match resolver.object(index)? {
                Some(object) => {
                    let (kind, data) = &*object;
                    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
                    hasher.update(&gix::objs::encode::loose_header(*kind, data.len() as u64));
                    hasher.update(data);
                    let id = hasher.try_finalize().map_err(|err| {
                        format!("hashing object at {}: {err}", entries[index].offset)
                    })?;
                    resolver.ids[index] = Some(id);
                    resolver.by_id.insert(id, index);
                }
                None => deferred.push(index),
            }
        }
        if deferred.is_empty() {
            break;
        }
        if deferred.len() == todo.len() {
            return Err(format!("{} deltas have no base in the pack", deferred.len()));
        }
        todo = deferred;
    }
    Ok(resolver
        .ids
        .into_iter()
        .map(|id| id.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1)))
        .collect())
}

type Object = Rc<(gix::object::Kind, Vec<u8>)>;

struct Resolver<'a> {
    file: &'a File,
    entries: &'a [Entry],
    /// The base entry of each offset delta.
    bases: Vec<Option<usize>>,
    pending_children: Vec<usize>,
    ids: Vec<Option<ObjectId>>,
    by_id: HashMap<ObjectId, usize>,
    cache: HashMap<usize, Object>,
    cached_bytes: usize,
}

impl Resolver<'_> {
    /// The kind and contents of entry `index`, or `None` for a reference delta whose base is
    /// not known yet.
    ///
    /// The delta chain is walked down to an object that is cached or is no delta, then the
    /// deltas are applied on the way back up: a loop, not recursion, so a chain as deep as the
    /// (untrusted) pack makes it cannot exhaust the stack.
    fn object(&mut self, index: usize) -> Result<Option<Object>, String> {
        let mut chain: Vec<(usize, usize)> = Vec::new();
        let mut current = index;
        let mut object = loop {
            if let Some(object) = self.cache.get(&current) {
                break Rc::clone(object);
            }
            let entry = &self.entries[current];
            let base = match &entry.header {
                Header::OfsDelta { .. } => self.bases[current],
                Header::RefDelta { base_id } => match self.by_id.get(base_id) {
                    Some(&base) => Some(base),
                    None => return Ok(None),
                },
                _ => None,
            };
            match base {
                Some(base) => {
                    if chain.len() >= MAX_DELTA_DEPTH {
                        return Err(format!(
                            "the delta chain of the entry at {} is deeper than {MAX_DELTA_DEPTH}",
                            self.entries[index].offset
                        ));
                    }
                    chain.push((current, base));
                    current = base;
                }
                None => {
                    let kind = entry
                        .header
                        .as_kind()
                        .ok_or_else(|| format!("entry at {} has no object kind", entry.offset))?;
                    let object = Rc::new((kind, self.inflate(entry)?));
                    self.keep(current, &object);
                    break object;
                }
            }
        };
        while let Some((delta, base)) = chain.pop() {
            let entry = &self.entries[delta];
            let instructions = self.inflate(entry)?;
            let data = apply_delta(&object.1, &instructions)
                .map_err(|err| format!("delta at {}: {err}", entry.offset))?;
            if let Some(pending) = self.pending_children.get_mut(base) {
                *pending = pending.saturating_sub(1);
                if *pending == 0
                    && let Some(dropped) = self.cache.remove(&base)
                {
                    self.cached_bytes -= dropped.1.len();
                }
            }
            object = Rc::new((object.0, data));
            self.keep(delta, &object);
        }
        Ok(Some(object))
    }

    /// Keeps `object` for the deltas still to come that use it as their base, within
    /// [`BASE_CACHE_LIMIT`].
    fn keep(&mut self, index: usize, object: &Object) {
        if self.pending_children[index] > 0
            && !self.cache.contains_key(&index)
            && self.cached_bytes + object.1.len() <= BASE_CACHE_LIMIT
        {
            self.cached_bytes += object.1.len();
            self.cache.insert(index, Rc::clone(object));
        }
    }

    /// The decompressed data of one entry (the object, or the delta instructions).
    fn inflate(&self, entry: &Entry) -> Result<Vec<u8>, String> {
        if entry.decompressed_size > MAX_OBJECT_SIZE as u64 {
            return Err(format!(
                "the entry at {} announces {} bytes, more than the {MAX_OBJECT_SIZE} allowed",
                entry.offset, entry.decompressed_size
            ));
        }
        let mut compressed = vec![0; entry.compressed_size as usize];
        self.file
            .read_exact_at(&mut compressed, entry.data_offset)
            .map_err(|err| format!("reading the pack at {}: {err}", entry.offset))?;
        let mut out = vec![0; entry.decompressed_size as usize];
        let (_, _, written) = gix::zlib::Inflate::default()
            .once(&compressed, &mut out)
            .map_err(|err| format!("inflating the entry at {}: {err}", entry.offset))?;
        if written != out.len() {
            return Err(format!("the entry at {} is shorter than announced", entry.offset));
        }
        Ok(out)
    }
}

/// Applies git delta instructions to `base`.
fn apply_delta(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, String> {
    let mut pos = 0;
    let varint = |pos: &mut usize| -> Result<usize, String> {
        let mut value = 0usize;
        let mut shift = 0;
        loop {
            let byte = *delta.get(*pos).ok_or("truncated delta header")?;
            *pos += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            if shift > 63 {
                return Err("delta size overflows".into());
            }
        }
    };
    let base_size = varint(&mut pos)?;
    let result_size = varint(&mut pos)?;
    if base_size != base.len() {
        return Err(format!("base has {} bytes, the delta expects {base_size}", base.len()));
    }
    if result_size > MAX_OBJECT_SIZE {
        return Err(format!(
            "the delta announces {result_size} bytes, more than {MAX_OBJECT_SIZE}"
        ));
    }
    let mut out = Vec::with_capacity(result_size);
    while pos < delta.len() {
        let op = delta[pos];
        pos += 1;
        if op & 0x80 != 0 {
            let mut offset = 0usize;
            let mut size = 0usize;
            for bit in 0..4 {
                if op & (1 << bit) != 0 {
                    offset |= usize::from(*delta.get(pos).ok_or("truncated copy")?) << (8 * bit);
                    pos += 1;
                }
            }
            for bit in 0..3 {
                if op & (1 << (4 + bit)) != 0 {
                    size |= usize::from(*delta.get(pos).ok_or("truncated copy")?) << (8 * bit);
                    pos += 1;
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            let chunk = offset
                .checked_add(size)
                .and_then(|end| base.get(offset..end))
                .ok_or("copy outside the base")?;
            out.extend_from_slice(chunk);
        } else if op != 0 {
            let chunk = delta.get(pos..pos + usize::from(op)).ok_or("truncated insert")?;
            out.extend_from_slice(chunk);
            pos += usize::from(op);
        } else {
            return Err("reserved delta instruction 0".into());
        }
    }
    if out.len() != result_size {
        return Err(format!("delta gives {} bytes, {result_size} expected", out.len()));
    }
    Ok(out)
}

/// Writes a version 2 pack index.
fn write_index(
    file: &File,
    entries: &[Entry],
    ids: &[ObjectId],
    pack_hash: ObjectId,
) -> std::io::Result<()> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|a, b| ids[*a].cmp(&ids[*b]));
    let mut out = HashingWriter {
        inner: BufWriter::new(file),
        hasher: gix::hash::hasher(gix::hash::Kind::Sha1),
    };
    out.write_all(b"\xfftOc")?;
    out.write_all(&2u32.to_be_bytes())?;
    let mut fanout = [0u32; 256];
    for id in ids {
        fanout[usize::from(id.as_bytes()[0])] += 1;
    }
    let mut total = 0u32;
    for count in fanout {
        total += count;
        out.write_all(&total.to_be_bytes())?;
    }
    for &index in &order {
        out.write_all(ids[index].as_bytes())?;
    }
    for &index in &order {
        out.write_all(&entries[index].crc32.to_be_bytes())?;
    }
    let mut large = Vec::new();
    for &index in &order {
        let offset = entries[index].offset;
        match u32::try_from(offset) {
            Ok(small) if small < 0x8000_0000 => out.write_all(&small.to_be_bytes())?,
            _ => {
                let slot =
                    0x8000_0000u32 | u32::try_from(large.len()).map_err(std::io::Error::other)?;
                out.write_all(&slot.to_be_bytes())?;
                large.push(offset);
            }
        }
    }
    for offset in large {
        out.write_all(&offset.to_be_bytes())?;
    }
    out.write_all(pack_hash.as_bytes())?;
    let HashingWriter { mut inner, hasher } = out;
    let checksum = hasher.try_finalize().map_err(std::io::Error::other)?;
    inner.write_all(checksum.as_bytes())?;
    inner.flush()?;
    inner.get_ref().sync_all()
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: gix::hash::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::apply_delta;

    #[test]
    fn delta_copies_and_inserts() {
        let base = b"hello world";
        // base size 11, result size 12: copy 6 bytes at 0 ("hello "), insert "there!".
        let mut delta = vec![11, 12, 0x80 | 0x10, 6, 6];
        delta.extend_from_slice(b"there!");
        assert_eq!(apply_delta(base, &delta).unwrap(), b"hello there!");
        assert!(apply_delta(b"short", &delta).is_err());
        assert!(apply_delta(base, &[11, 12, 0]).is_err());
    }

    #[test]
    fn a_delta_announcing_a_huge_object_allocates_nothing() {
        // Result size 2^40 as a varint: refused before any allocation.
        let delta = [11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 1, b'x'];
        let err = apply_delta(b"hello world", &delta).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }
}
