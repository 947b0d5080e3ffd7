//! Files: the secrets directory and each declared file (exists, non-empty, mode, owner), strays.

use super::*;

/// Files: directory and each declared secret's file (exists, non-empty, mode, owner), strays.
pub fn check_files<'m>(
    f: &mut Findings,
    manifest: &'m Manifest,
    secrets_dir: &Path,
) -> Vec<LocalSecret<'m>> {
    let dir_name = f.path_subject(secrets_dir);
    let file_names = match manifest.file_names_in(secrets_dir) {
        Ok(names) => names,
        Err(e) => {
            f.add(Status::Fail, "files", &dir_name, e.to_string());
            return Vec::new();
        }
    };
    let euid = nix::unistd::Uid::effective().as_raw();
    let dir = match crate::files::secret_dir::describe_mode(secrets_dir) {
        Err(_) => {
            f.add(
                Status::Fail,
                "files",
                &dir_name,
                "the secrets directory does not exist; run `compose-secrets load`",
            );
            None
        }
        Ok((_, _, _, true)) => {
            f.add(
                Status::Fail,
                "files",
                &dir_name,
                "the secrets directory is a symlink; replace it with a real directory (`compose-secrets load` creates it)",
            );
            None
        }
        Ok((mode, uid, _, false)) => {
            let mut problems = Vec::new();
            if mode != 0o700 {
                problems.push(format!("mode {mode:04o}, expected 0700"));
            }
            if uid != euid {
                problems.push(format!("owned by uid {uid}, expected {euid}"));
            }
            if problems.is_empty() {
                f.add(
                    Status::Pass,
                    "files",
                    &dir_name,
                    "directory 0700, owned by the running user",
                );
            } else {
                f.add(
                    Status::Fail,
                    "files",
                    &dir_name,
                    format!("directory {}", problems.join("; ")),
                );
            }
            // SecretDir refuses a group- or world-writable directory: its files are then
            // not checked one by one (the directory's failure above says why).
            SecretDir::open(secrets_dir, false).ok()
        }
    };
    let mut out = Vec::new();
    for (name, file_name) in &file_names {
        let Some(spec) = manifest.secret(name) else {
            continue;
        };
        let mut local = LocalSecret {
            spec,
            file_name: file_name.clone(),
            value: None,
            fingerprint: None,
            mtime_ns: None,
        };
        match dir.as_ref().map(|d| d.read(file_name)) {
            None => {}
            Some(Err(e)) => f.add(Status::Fail, "files", name, e.to_string()),
            Some(Ok(None)) => f.add(
                Status::Fail,
                "files",
                name,
                format!("{file_name} is missing; run `compose-secrets load`"),
            ),
            Some(Ok(Some(st))) => {
                let mut problems = Vec::new();
                if st.contents.is_empty() {
                    problems.push("the file is empty".to_string());
                }
                if st.mode != spec.mode {
                    problems.push(format!("mode {:04o}, expected {:04o}", st.mode, spec.mode));
                }
                // Without a declared owner, load leaves the file to the user who wrote it.
                let want_uid = spec.owner_uid.unwrap_or(euid);
                if want_uid != st.uid || spec.owner_gid.is_some_and(|g| g != st.gid) {
                    problems.push(format!(
                        "owner {}:{}, expected {}:{}",
                        st.uid,
                        st.gid,
                        want_uid,
                        spec.owner_gid.map_or_else(|| "*".into(), |g| g.to_string())
                    ));
                }
                if problems.is_empty() {
                    f.add(
                        Status::Pass,
                        "files",
                        name,
                        format!("{file_name}: {:04o}, {}:{}", st.mode, st.uid, st.gid),
                    );
                } else {
                    f.add(
                        Status::Fail,
                        "files",
                        name,
                        format!("{file_name}: {}", problems.join("; ")),
                    );
                }
                local.fingerprint = Some(fingerprint_bytes(&st.contents));
                local.value = SecretValue::from_bytes(st.contents.to_vec()).ok();
                local.mtime_ns = Some(
                    std::fs::symlink_metadata(secrets_dir.join(file_name))
                        .map_or(i128::from(st.mtime) * 1_000_000_000, |m| {
                            i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
                        }),
                );
            }
        }
        out.push(local);
    }
    if let Some(d) = &dir {
        let declared: Vec<&String> = file_names.iter().map(|(_, f)| f).collect();
        for entry in d.entries().unwrap_or_default() {
            if !declared.contains(&&entry) {
                f.add(
                    Status::Warn,
                    "files",
                    &entry,
                    "stray file: no declared secret owns it (`load --prune` removes it)",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    #[test]
    fn a_loaded_file_passes() {
        let fx = Fixture::new(COMPOSE);
        let (f, locals) = fx.files();
        assert_only(&f, "files", "db-password", Status::Pass, "0400");
        assert_only(&f, "files", "secrets", Status::Pass, "0700");
        assert_eq!(f.checks.len(), 2, "{:#?}", f.checks);
        assert!(locals[0].fingerprint.is_some() && locals[0].mtime_ns.is_some());
    }

    #[test]
    fn a_missing_empty_or_loose_file_fails_until_rewritten() {
        let fx = Fixture::new(COMPOSE);
        std::fs::remove_file(fx.secret_file()).unwrap();
        assert_only(
            &fx.files().0,
            "files",
            "db-password",
            Status::Fail,
            "missing",
        );

        fx.write_secret("");
        assert_only(&fx.files().0, "files", "db-password", Status::Fail, "empty");

        fx.write_secret(VALUE);
        set_mode(&fx.secret_file(), 0o644);
        assert_only(
            &fx.files().0,
            "files",
            "db-password",
            Status::Fail,
            "mode 0644, expected 0400",
        );

        fx.write_secret(VALUE);
        assert_only(&fx.files().0, "files", "db-password", Status::Pass, "0400");
    }

    #[test]
    fn a_file_with_the_wrong_owner_fails() {
        let fx = Fixture::new(&COMPOSE.replace(
            "file: ./secrets/db-password",
            "file: ./secrets/db-password\n    x-compose-secrets:\n      owner: \"4242:4343\"",
        ));
        let euid = nix::unistd::Uid::effective().as_raw();
        let egid = nix::unistd::Gid::effective().as_raw();
        assert_only(
            &fx.files().0,
            "files",
            "db-password",
            Status::Fail,
            &format!("owner {euid}:{egid}, expected 4242:4343"),
        );
        // Only root can hand a file to another user.
        if euid == 0 {
            std::os::unix::fs::chown(fx.secret_file(), Some(4242), Some(4343)).unwrap();
            assert_only(
                &fx.files().0,
                "files",
                "db-password",
                Status::Pass,
                "4242:4343",
            );
        }
    }

    #[test]
    fn an_unsafe_or_symlinked_directory_fails_until_fixed() {
        let fx = Fixture::new(COMPOSE);
        for loose in [0o755, 0o777] {
            set_mode(&fx.secrets_dir(), loose);
            assert_only(
                &fx.files().0,
                "files",
                "secrets",
                Status::Fail,
                &format!("mode {loose:04o}, expected 0700"),
            );
        }
        set_mode(&fx.secrets_dir(), 0o700);
        assert_only(&fx.files().0, "files", "secrets", Status::Pass, "0700");

        let real = fx.dir.path().join("real");
        std::fs::rename(fx.secrets_dir(), &real).unwrap();
        std::os::unix::fs::symlink(&real, fx.secrets_dir()).unwrap();
        assert_only(&fx.files().0, "files", "secrets", Status::Fail, "symlink");

        std::fs::remove_file(fx.secrets_dir()).unwrap();
        std::fs::rename(&real, fx.secrets_dir()).unwrap();
        assert_only(&fx.files().0, "files", "secrets", Status::Pass, "0700");
    }

    #[test]
    fn a_stray_file_warns_until_removed() {
        let fx = Fixture::new(COMPOSE);
        std::fs::write(fx.secrets_dir().join("old-token"), "x").unwrap();
        assert_only(&fx.files().0, "files", "old-token", Status::Warn, "stray");
        std::fs::remove_file(fx.secrets_dir().join("old-token")).unwrap();
        assert!(statuses(&fx.files().0, "files", "old-token").is_empty());
    }
}
