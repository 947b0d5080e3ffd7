//! The state directory: private permissions, atomic writes, emulator.env and vault.json.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Creates the directory (0700) or tightens an existing one; it holds keys and secrets.
pub fn ensure_private_dir(dir: &Path) -> io::Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    dir.canonicalize()
}

/// Writes via a temp file and rename so readers never see a partial file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)
}

pub fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

pub struct EnvFile<'a> {
    pub base_url: &'a str,
    pub ca_file: &'a Path,
    pub tenant: &'a str,
    pub identity_header: &'a str,
}

impl EnvFile<'_> {
    pub fn render(&self) -> String {
        let base = self.base_url;
        let ca = self.ca_file.display();
        format!(
            "export AZURE_KEYVAULT_URL={base}\n\
             export COMPOSE_SECRETS_CA_FILE={ca}\n\
             export REQUESTS_CA_BUNDLE={ca}\n\
             export AZURE_TENANT_ID={tenant}\n\
             export AZURE_AUTHORITY_HOST={base}\n\
             export IDENTITY_ENDPOINT={base}/msi/token\n\
             export IDENTITY_HEADER={header}\n\
             export KV_EMULATOR_ADMIN_URL={base}/_emulator\n",
            tenant = self.tenant,
            header = self.identity_header,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private_and_replace() {
        let dir = std::env::temp_dir().join(format!("kv-emulator-files-{}", std::process::id()));
        let dir = ensure_private_dir(&dir.join("state")).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = dir.join("secret");
        write_atomic(&file, b"one", 0o600).unwrap();
        write_atomic(&file, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp files left");
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn env_file_has_every_export() {
        let text = EnvFile {
            base_url: "https://127.0.0.1:1234",
            ca_file: Path::new("/s/ca.pem"),
            tenant: "t",
            identity_header: "h",
        }
        .render();
        for line in [
            "export AZURE_KEYVAULT_URL=https://127.0.0.1:1234",
            "export COMPOSE_SECRETS_CA_FILE=/s/ca.pem",
            "export REQUESTS_CA_BUNDLE=/s/ca.pem",
            "export AZURE_TENANT_ID=t",
            "export AZURE_AUTHORITY_HOST=https://127.0.0.1:1234",
            "export IDENTITY_ENDPOINT=https://127.0.0.1:1234/msi/token",
            "export IDENTITY_HEADER=h",
            "export KV_EMULATOR_ADMIN_URL=https://127.0.0.1:1234/_emulator",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}");
        }
    }
}
