//! Git: `.env` and the runtime directory are ignored and were never committed, and no secret
//! file is tracked.

use super::*;

/// `.env` and the runtime directory are git-ignored and were never committed; the secret files
/// in `tracked` (each secret's file) are not tracked.
///
/// Runs `git` in `cwd` with paths only; no value is ever on its command line.
pub fn check_git(
    f: &mut Findings,
    cwd: &Path,
    env_file: &Path,
    runtime_dir: &Path,
    secret_files: &[(&str, &Path)],
) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let inside = git(&["rev-parse", "--is-inside-work-tree"])
        .is_ok_and(|out| out.status.success() && out.stdout.starts_with(b"true"));
    if !inside {
        f.add(
            Status::Warn,
            "git",
            f.path_subject(cwd),
            "not a git repository; ignore rules and history not checked",
        );
        return;
    }
    for (path, is_dir) in [(env_file, false), (runtime_dir, true)] {
        let subject = f.path_subject(path);
        let rel = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
        // A directory is asked about with a trailing slash: `.runtime/` in .gitignore only
        // matches a directory, and before the first `load` there is none on disk to look at.
        let probe = if is_dir {
            format!("{rel}/")
        } else {
            rel.clone()
        };
        // --no-index: a tracked file matched by .gitignore is still "ignored" here; the
        // history check below reports that it was committed.
        let ignored = git(&["check-ignore", "-q", "--no-index", "--", &probe])
            .is_ok_and(|o| o.status.success());
        if ignored {
            f.add(Status::Pass, "git", &subject, "git-ignored");
        } else {
            f.add(
                Status::Fail,
                "git",
                &subject,
                format!("not git-ignored: add {probe} to .gitignore"),
            );
        }
        match git(&["log", "--all", "--format=%h", "--", &rel]) {
            Ok(out) if out.status.success() => {
                let commits = String::from_utf8_lossy(&out.stdout);
                match commits.lines().last() {
                    Some(first) => f.add(
                        Status::Fail,
                        "git",
                        &subject,
                        format!(
                            "committed in history (first in {first}, {} commit(s)); rotate every secret it held \
                             and purge it from history",
                            commits.lines().count()
                        ),
                    ),
                    None => f.add(Status::Pass, "git", &subject, "never committed"),
                }
            }
            // A repository without commits yet has no history to leak.
            Ok(_) => f.add(
                Status::Pass,
                "git",
                &subject,
                "never committed (no commits yet)",
            ),
            Err(e) => f.add(
                Status::Warn,
                "git",
                &subject,
                format!("cannot read git history: {e}"),
            ),
        }
    }
    for (secret, path) in secret_files {
        let Ok(rel) = path.strip_prefix(cwd) else {
            continue;
        };
        let rel = rel.display().to_string();
        let tracked =
            git(&["ls-files", "--error-unmatch", "--", &rel]).is_ok_and(|o| o.status.success());
        if tracked {
            f.add(
                Status::Fail,
                "git",
                *secret,
                format!(
                    "{rel} holds a secret and is tracked by git: `git rm --cached {rel}` and add it to .gitignore"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn git_ignore_rules_and_history_are_checked_inside_a_work_tree_only() {
        let dir = tempfile::tempdir().unwrap();
        let (env, runtime) = (dir.path().join(".env"), dir.path().join(".runtime"));
        std::fs::write(&env, "A=b\n").unwrap();
        std::fs::create_dir(&runtime).unwrap();
        let run = || {
            let mut f = Findings::relative_to(dir.path());
            check_git(&mut f, dir.path(), &env, &runtime, &[]);
            f
        };
        // GIT_CEILING_DIRECTORIES is not needed: temp dirs are not inside a repository.
        assert_only(&run(), "git", "", Status::Warn, "not a git repository");

        git(dir.path(), &["init", "-q"]);
        let f = run();
        assert_eq!(
            statuses(&f, "git", ".env"),
            vec![Status::Fail, Status::Pass]
        );
        assert_eq!(
            statuses(&f, "git", ".runtime"),
            vec![Status::Fail, Status::Pass]
        );

        std::fs::write(dir.path().join(".gitignore"), ".env\n.runtime/\n").unwrap();
        assert_only(&run(), "git", ".env", Status::Pass, "git-ignored");

        git(dir.path(), &["add", "-f", ".env"]);
        git(dir.path(), &["commit", "-qm", "oops"]);
        git(dir.path(), &["rm", "-q", "--cached", ".env"]);
        git(dir.path(), &["commit", "-qm", "remove"]);
        let f = run();
        assert_eq!(
            statuses(&f, "git", ".env"),
            vec![Status::Pass, Status::Fail]
        );
        assert!(f
            .checks
            .iter()
            .any(|c| c.message.contains("committed in history")));
        assert_only(&f, "git", ".runtime", Status::Pass, "");
    }
}
