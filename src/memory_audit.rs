//! Test hook for the zeroization proof: after a command has finished, search this process's
//! own writable memory for secret values that should have been wiped.
//!
//! Enabled only by `COMPOSE_SECRETS_MEMORY_AUDIT=<file>`. The file names the values without
//! holding them: one line per value, `<length> <first 4 bytes as hex> <sha256 as hex>`, so
//! the search itself brings no copy into memory. The report is counts and line numbers of
//! the file, never a value or an address.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};

use sha2::{Digest as _, Sha256};

pub const ENV_VAR: &str = "COMPOSE_SECRETS_MEMORY_AUDIT";

struct Needle {
    line: usize,
    len: usize,
    digest: [u8; 32],
}

/// Run the audit if the environment asks for it; prints one line on stderr.
pub fn run_if_requested() {
    let Some(path) = std::env::var_os(ENV_VAR) else {
        return;
    };
    match audit(std::path::Path::new(&path)) {
        Ok((found, total, scanned)) => eprintln!(
            "memory-audit: {} of {total} values still in memory ({scanned} bytes of writable memory searched){}",
            found.len(),
            if found.is_empty() {
                String::new()
            } else {
                format!(
                    "; lines {}",
                    found
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        ),
        Err(e) => eprintln!("memory-audit: failed: {e}"),
    }
}

/// (lines of the needles found, number of needles, bytes searched).
fn audit(path: &std::path::Path) -> std::io::Result<(Vec<usize>, usize, u64)> {
    let mut by_prefix: HashMap<[u8; 4], Vec<Needle>> = HashMap::new();
    let text = std::fs::read_to_string(path)?;
    let mut total = 0;
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [len, prefix, digest] = fields[..] else {
            continue;
        };
        let (Ok(len), Ok(prefix), Ok(digest)) =
            (len.parse(), hex::decode(prefix), hex::decode(digest))
        else {
            continue;
        };
        let (Ok(prefix), Ok(digest)) = (<[u8; 4]>::try_from(prefix), <[u8; 32]>::try_from(digest))
        else {
            continue;
        };
        total += 1;
        by_prefix.entry(prefix).or_default().push(Needle {
            line: i + 1,
            len,
            digest,
        });
    }

    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut mem = std::fs::File::open("/proc/self/mem")?;
    let mut found: Vec<usize> = Vec::new();
    let mut scanned = 0u64;
    let regions: Vec<(u64, u64)> = maps.lines().filter_map(writable_region).collect();
    // One buffer for every region, allocated before the search so that it is not a region
    // that changes while being read.
    let largest = regions.iter().map(|(start, end)| end - start).max();
    let mut buffer = vec![0u8; largest.map_or(0, |l| usize::try_from(l).unwrap_or(0))];
    for &(start, end) in &regions {
        let len = usize::try_from(end - start).unwrap_or(0);
        let chunk = &mut buffer[..len];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(chunk).is_err() {
            continue;
        }
        scanned += end - start;
        for at in 0..len.saturating_sub(3) {
            let Some(needles) =
                by_prefix.get(&[chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]])
            else {
                continue;
            };
            for n in needles {
                if at + n.len <= len
                    && !found.contains(&n.line)
                    && Sha256::digest(&chunk[at..at + n.len]).as_slice() == n.digest
                {
                    found.push(n.line);
                }
            }
        }
    }
    // The buffer now holds copies of whatever was found: wipe it before it is freed.
    zeroize::Zeroize::zeroize(&mut buffer);
    found.sort_unstable();
    Ok((found, total, scanned))
}

/// A private, writable mapping that is not a file's contents: heap, stacks, anonymous maps.
fn writable_region(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let _device = fields.next()?;
    let inode = fields.next()?;
    let name = fields.next().unwrap_or("");
    if !perms.starts_with("rw") || inode != "0" || name == "[vvar]" || name == "[vsyscall]" {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    ))
}
