//! An image's files read through a created, never started container's archive API: the tar
//! the engine sends, cut down to the one regular file in it.

use bollard::Docker;

use super::DockerEngine;
use crate::error::{DockerFailure, Error, Result};

impl DockerEngine {
    /// One file of a container, through the archive API (a tar of it); `None` when absent.
    pub(super) async fn archived_file(
        &self,
        client: &Docker,
        id: &str,
        path: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>> {
        use futures::StreamExt as _;
        let options = bollard::query_parameters::DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = client.download_from_container(id, Some(options));
        let mut tar = Vec::new();
        // Headers and padding come on top of the file itself.
        let cap = limit.saturating_add(16 * 1024);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(None),
                Err(e) => return Err(self.error(&format!("read {path} of container {id}"), &e)),
            }
            if tar.len() > cap {
                return Err(Error::docker(
                    DockerFailure::Other,
                    format!("{path} in the image is over {limit} bytes"),
                ));
            }
        }
        single_file(&tar)
            .map(Some)
            .map_err(|m| Error::docker(DockerFailure::Other, format!("{path} in the image: {m}")))
    }
}

/// The contents of the one regular file in a tar archive, as the archive API sends a file.
fn single_file(tar: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let size_field = std::str::from_utf8(&header[124..136])
            .map_err(|_| "a malformed tar header".to_string())?;
        let size =
            usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .map_err(|_| "a malformed tar header".to_string())?;
        let data = at + 512;
        let end = data
            .checked_add(size)
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| "a truncated archive".to_string())?;
        match header[156] {
            b'0' | 0 => return Ok(tar[data..end].to_vec()),
            // Long names and extended attributes come before the entry they describe.
            b'x' | b'g' | b'L' | b'K' => {}
            b'1' | b'2' => {
                return Err("a link, not a file: compose-secrets does not follow it".into())
            }
            _ => return Err("not a regular file".into()),
        }
        at = data + size.div_ceil(512) * 512;
    }
    Err("an empty archive".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of entries (name, type flag, contents), as the archive API sends them.
    fn tar(entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in entries {
            let mut header = [0u8; 512];
            header[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", data.len());
            header[124..136].copy_from_slice(size.as_bytes());
            header[156] = *kind;
            out.extend_from_slice(&header);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn the_archive_of_one_file_gives_its_contents() {
        let passwd = b"root:x:0:0::/root:/bin/sh\n".as_slice();
        assert_eq!(
            single_file(&tar(&[("passwd", b'0', passwd)])),
            Ok(passwd.to_vec())
        );
        let pax = b"30 path=a/very/long/name/passwd\n".as_slice();
        assert_eq!(
            single_file(&tar(&[("PaxHeader", b'x', pax), ("passwd", b'0', passwd)])),
            Ok(passwd.to_vec()),
            "an extended header before the file"
        );
    }

    #[test]
    fn links_truncated_and_empty_archives_are_refused() {
        assert!(single_file(&tar(&[("passwd", b'2', b"")]))
            .unwrap_err()
            .contains("link"));
        let mut cut = tar(&[("passwd", b'0', &[b'a'; 600])]);
        cut.truncate(700);
        assert_eq!(single_file(&cut), Err("a truncated archive".into()));
        assert_eq!(single_file(&[0u8; 1024]), Err("an empty archive".into()));
    }
}
