//! Files: each directory holding secret files (not a symlink, not writable by others; 0700
//! for compose-secrets' own), each declared file (exists, non-empty, mode, owner), and stray
//! files in compose-secrets' own directories.

use super::*;
use crate::files::layout::{Layout, OpenDirs, Placement};
use crate::files::secret_dir::SecretDir;

/// Each directory, each declared file and the strays; returns what each file held, for the
/// checks after this one.
pub fn check_files<'m>(
    f: &mut Findings,
    project: &'m Project,
    layout: &Layout,
    state: &State,
    fingerprints: &FingerprintKey,
) -> Vec<LocalSecret<'m>> {
    let euid = nix::unistd::Uid::effective().as_raw();
    let opened = check_dirs(f, layout, state, euid);
    for spec in project
        .secrets
        .iter()
        .filter(|s| !s.in_use && s.file_path().is_some())
    {
        f.add(Status::Skip, "files", &spec.name, spec.unused_reason());
    }
    let mut out = Vec::new();
    for placement in &layout.placements {
        let Some(spec) = project.secret(&placement.secret) else {
            continue;
        };
        out.push(check_file(
            f,
            project,
            spec,
            placement,
            &opened,
            (euid, fingerprints),
        ));
    }
    check_strays(f, layout, state, fingerprints);
    out
}

/// Each directory that holds secret files: there, not a symlink, and 0700 where it is ours.
fn check_dirs(
    f: &mut Findings,
    layout: &Layout,
    state: &State,
    euid: u32,
) -> BTreeMap<PathBuf, SecretDir> {
    let mut opened = BTreeMap::new();
    for (dir, result) in OpenDirs::open_each(layout) {
        let subject = f.path_subject(&dir);
        match result {
            Ok(None) => f.add(
                Status::Fail,
                "files",
                &subject,
                "the directory does not exist; run `compose-secrets load`",
            ),
            Err(e) => f.add(Status::Fail, "files", &subject, e.to_string()),
            Ok(Some(d)) => {
                match d.mode_and_owner() {
                    // A --secrets-dir the user made keeps its mode (compose-secrets never
                    // changes it); one it made, or its runtime directory, must be 0700.
                    Ok((mode, _)) if layout.is_ours(&dir) && mode != 0o700 => f.add(
                        if crate::files::strays::owned(layout, state, &dir) {
                            Status::Fail
                        } else {
                            Status::Warn
                        },
                        "files",
                        &subject,
                        format!(
                            "directory mode {mode:04o}, expected 0700: other users can list the secret names \
                             (`chmod 700 {subject}`)"
                        ),
                    ),
                    Ok((mode, uid)) => f.add(
                        Status::Pass,
                        "files",
                        &subject,
                        format!(
                            "directory {mode:04o}, owned by uid {uid}{}",
                            if uid == euid {
                                " (the running user)"
                            } else {
                                ""
                            }
                        ),
                    ),
                    Err(e) => f.add(Status::Fail, "files", &subject, e.to_string()),
                }
                opened.insert(dir, d);
            }
        }
    }
    opened
}

/// One declared file: there, not empty, its mode and owner, readable by its services.
fn check_file<'m>(
    f: &mut Findings,
    project: &Project,
    spec: &'m SecretSpec,
    placement: &Placement,
    opened: &BTreeMap<PathBuf, SecretDir>,
    (euid, fingerprints): (u32, &FingerprintKey),
) -> LocalSecret<'m> {
    let name = &spec.name;
    // The line names the secret already: the directory alone when the file is named after it.
    let shown = if placement.file_name == placement.secret {
        format!("in {}", f.path_subject(&placement.dir))
    } else {
        f.path_subject(&placement.path)
    };
    let mut local = LocalSecret {
        spec,
        path: placement.path.clone(),
        value: None,
        fingerprint: None,
        mtime_ns: None,
    };
    match opened
        .get(&placement.dir)
        .map(|d| d.read(&placement.file_name))
    {
        None => {}
        Some(Err(e)) => f.add(Status::Fail, "files", name, e.to_string()),
        Some(Ok(None)) => f.add(
            Status::Fail,
            "files",
            name,
            format!("the file is missing ({shown}); run `compose-secrets load`"),
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
            let from = owner_source(spec);
            if want_uid != st.uid || spec.owner_gid.is_some_and(|g| g != st.gid) {
                problems.push(format!(
                    "owner {}:{}, expected {}:{}{from}",
                    st.uid,
                    st.gid,
                    want_uid,
                    spec.owner_gid.map_or_else(|| "*".into(), |g| g.to_string())
                ));
            }
            for warning in unreadable_by(project, spec, st.uid, st.gid, st.mode) {
                f.add(Status::Warn, "files", name, format!("{shown}: {warning}"));
            }
            if problems.is_empty() {
                f.add(
                    Status::Pass,
                    "files",
                    name,
                    format!("{shown}: {:04o}, {}:{}{from}", st.mode, st.uid, st.gid),
                );
            } else {
                f.add(
                    Status::Fail,
                    "files",
                    name,
                    format!("{shown}: {}", problems.join("; ")),
                );
            }
            local.fingerprint = Some(fingerprints.fingerprint(&st.contents));
            local.value = Some(SecretValue::binary(st.contents.to_vec()));
            local.mtime_ns = Some(st.mtime_ns);
        }
    }
    local
}

fn check_strays(f: &mut Findings, layout: &Layout, state: &State, key: &FingerprintKey) {
    match crate::files::strays::find(layout, state, key) {
        Ok(found) => {
            for path in found.iter().flat_map(|s| s.paths()) {
                f.add(
                    Status::Warn,
                    "files",
                    f.path_subject(&path),
                    "stray file: no declared secret owns it now (`load --prune` removes it)",
                );
            }
            for path in found.iter().flat_map(|s| s.changed_paths()) {
                f.add(
                    Status::Warn,
                    "files",
                    f.path_subject(&path),
                    "stray file: no declared secret owns it now, but it does not hold what \
                     compose-secrets recorded writing (`load --prune` leaves it; remove it by hand)",
                );
            }
        }
        Err(e) => f.add(Status::Fail, "files", "strays", e.to_string()),
    }
}

/// Services that mount the secret but (as far as Compose says) run as a user the file does
/// not let read it; a named user is a warning too, since only its image knows its uid.
fn unreadable_by(
    project: &Project,
    spec: &SecretSpec,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Vec<String> {
    use crate::compose::RunsAs;
    let declared = spec.owner_uid.is_some() || spec.owner_gid.is_some();
    // Services running as different numeric users cannot all own the file: one shared group
    // (owner ":GID", mode 0440) is the way, not one owner per service.
    let users: std::collections::BTreeSet<u32> = spec
        .services()
        .iter()
        .filter_map(|s| project.services.get(s).filter(|s| s.enabled)?.runs_as())
        .filter_map(|r| match r {
            RunsAs::Ids(u, _) if u != 0 => Some(u),
            _ => None,
        })
        .collect();
    let advice =
        |u: u32, g: Option<u32>| {
            if users.len() > 1 {
                format!(
                "its services run as uids {}: give them one group and set x-compose-secrets owner \
                 \":GID\" and mode \"0440\"",
                users.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            )
            } else {
                format!(
                    "set x-compose-secrets.owner: \"{u}{}\" (see README, \"File owners\")",
                    g.map_or_else(String::new, |g| format!(":{g}"))
                )
            }
        };
    let mut out = Vec::new();
    for service in spec.services() {
        let Some(runs_as) = project
            .services
            .get(&service)
            .filter(|s| s.enabled)
            .and_then(|s| s.runs_as())
        else {
            continue;
        };
        match runs_as {
            RunsAs::Ids(u, g) => {
                let can = u == 0
                    || (u == uid && mode & 0o400 != 0)
                    || (g == Some(gid) && mode & 0o040 != 0)
                    || mode & 0o004 != 0;
                if !can {
                    out.push(format!(
                        "service {service} runs as {u}{} and cannot read this {mode:04o} file owned by {uid}:{gid}; {}",
                        g.map_or_else(String::new, |g| format!(":{g}")),
                        advice(u, g),
                    ));
                }
            }
            RunsAs::Named(name) if !declared && mode & 0o004 == 0 => {
                out.push(format!(
                    "service {service} runs as user `{name}`, whose uid only its image knows: it may not read this \
                     {mode:04o} file owned by {uid}:{gid}; set x-compose-secrets.owner to its uid:gid"
                ));
            }
            RunsAs::Named(_) => {}
        }
    }
    out
}

/// Where a file's expected owner comes from, for the line: ` (user app from image …)`.
fn owner_source(spec: &SecretSpec) -> String {
    spec.owner_from
        .describe()
        .map_or_else(String::new, |d| format!(" ({d})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    #[test]
    fn services_running_as_different_users_are_told_to_share_a_group() {
        let compose = COMPOSE
            .replace(
                "    image: demo\n    environment:",
                "    image: demo\n    user: \"999\"\n    environment:",
            )
            .replace(
                "  worker:\n    image: demo\n",
                "  worker:\n    image: demo\n    user: \"1000:1000\"\n    secrets: [db-password]\n",
            );
        let fx = Fixture::new(&compose);
        if nix::unistd::Uid::effective().as_raw() == 999 {
            return;
        }
        let (f, _) = fx.files();
        let warnings: Vec<&str> = f
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn && c.subject == "db-password")
            .map(|c| c.message.as_str())
            .collect();
        assert_eq!(warnings.len(), 2, "{:#?}", f.checks);
        assert!(
            warnings
                .iter()
                .all(|w| w.contains("its services run as uids 999, 1000") && w.contains("\":GID\"")),
            "{warnings:#?}"
        );
    }

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
            "file: ./.runtime/secrets/db-password",
            "file: ./.runtime/secrets/db-password\n    x-compose-secrets:\n      owner: \"4242:4343\"",
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
        set_mode(&fx.secrets_dir(), 0o755);
        assert_only(
            &fx.files().0,
            "files",
            "secrets",
            Status::Fail,
            "mode 0755, expected 0700",
        );
        set_mode(&fx.secrets_dir(), 0o777);
        assert_only(
            &fx.files().0,
            "files",
            "secrets",
            Status::Fail,
            "group- or world-writable (mode 0777)",
        );
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

    /// Only files state.json says compose-secrets wrote are stray: one that still holds what
    /// it wrote (`load --prune` removes it), one that changed since (left to a person); a file
    /// it never wrote is not mentioned.
    #[test]
    fn a_stray_file_warns_until_removed() {
        let fx = Fixture::new(COMPOSE);
        let mut state = State::new("");
        for (name, wrote) in [("old-token", "x"), ("edited", "y")] {
            std::fs::write(fx.secrets_dir().join(name), "x").unwrap();
            state.record_written(
                &fx.secrets_dir().join(name),
                &fx.fingerprints.fingerprint(wrote.as_bytes()),
            );
        }
        std::fs::write(fx.secrets_dir().join("notes.txt"), "x").unwrap();
        let files = |state: &State| {
            let mut f = Findings::relative_to(fx.dir.path());
            check_files(&mut f, &fx.manifest, &fx.layout, state, &fx.fingerprints);
            f
        };
        let f = files(&state);
        assert_only(
            &f,
            "files",
            "old-token",
            Status::Warn,
            "`load --prune` removes it",
        );
        assert_only(&f, "files", "edited", Status::Warn, "remove it by hand");
        assert!(statuses(&f, "files", "notes.txt").is_empty());
        std::fs::remove_file(fx.secrets_dir().join("old-token")).unwrap();
        assert!(statuses(&files(&state), "files", "old-token").is_empty());
    }
}
