//! The `.runtime` directory: created 0700, never a symlink.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use crate::error::{Error, Result};

pub fn ensure(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::UnsafePath {
            path: path.to_path_buf(),
            message: "the runtime directory is a symlink".into(),
        }),
        Ok(meta) if !meta.is_dir() => Err(Error::UnsafePath {
            path: path.to_path_buf(),
            message: "the runtime directory is not a directory".into(),
        }),
        Ok(meta) => {
            if meta.permissions().mode() & 0o022 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                    .map_err(Error::io(path, "chmod 0700"))?;
            }
            Ok(())
        }
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(Error::io(path, "create directory")),
    }
}
