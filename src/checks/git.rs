//! Git: `.env` and the runtime directory are ignored and were never committed, and each
//! secret file is ignored and not tracked.

use super::facts::GitPath;
use super::gather;
use super::*;

/// `.env` and the runtime directory are git-ignored and were never committed; each secret's
/// file in `secret_files` is not tracked (FAIL) and is ignored (WARN: the next `git add .`
/// would commit it). `git` is what [`gather::git`] found for the same paths.
pub fn check_git(
    f: &mut Findings,
    cwd: &Path,
    env_file: &Path,
    runtime_dir: &Path,
    secret_files: &[(&str, &Path)],
    git: Option<&BTreeMap<String, GitPath>>,
) {
    let Some(git) = git else {
        f.add(
            Status::Warn,
            "git",
            f.path_subject(cwd),
            "not a git repository; ignore rules and history not checked",
        );
        return;
    };
    let unknown = GitPath::default();
    for (path, is_dir) in [(env_file, false), (runtime_dir, true)] {
        let subject = f.path_subject(path);
        let rel = gather::relative(cwd, path);
        let facts = git.get(&rel).unwrap_or(&unknown);
        let probe = if is_dir { format!("{rel}/") } else { rel };
        if facts.ignored == Some(true) {
            f.add(Status::Pass, "git", &subject, "git-ignored");
        } else {
            f.add(
                Status::Fail,
                "git",
                &subject,
                format!("not git-ignored: add {probe} to .gitignore"),
            );
        }
        match &facts.commits {
            Some(commits) if !commits.is_empty() => f.add(
                Status::Fail,
                "git",
                &subject,
                format!(
                    "committed in history (first in {}, {} commit(s)); rotate every secret it held \
                     and purge it from history",
                    commits.last().map_or("", String::as_str),
                    commits.len()
                ),
            ),
            Some(_) => f.add(Status::Pass, "git", &subject, "never committed"),
            None => f.add(Status::Warn, "git", &subject, "cannot read git history"),
        }
    }
    for (secret, path) in secret_files {
        let rel = gather::relative(cwd, path);
        let facts = git.get(&rel).unwrap_or(&unknown);
        if facts.tracked {
            f.add(
                Status::Fail,
                "git",
                *secret,
                format!(
                    "{rel} holds a secret and is tracked by git: `git rm --cached {rel}` and add it to .gitignore"
                ),
            );
        } else if facts.ignored == Some(false) {
            f.add(
                Status::Warn,
                "git",
                *secret,
                format!("{rel} holds a secret and is not git-ignored: add it to .gitignore"),
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
            let found = gather::git(dir.path(), &env, &runtime, &[]);
            check_git(&mut f, dir.path(), &env, &runtime, &[], found.as_ref());
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

    #[test]
    fn a_secret_file_must_be_ignored_and_never_tracked() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let (env, runtime) = (dir.path().join(".env"), dir.path().join(".runtime"));
        let secret = dir.path().join("db").join("password.txt");
        std::fs::create_dir(secret.parent().unwrap()).unwrap();
        std::fs::write(&secret, "x").unwrap();
        std::fs::write(dir.path().join(".gitignore"), ".env\n.runtime/\n").unwrap();
        let run = || {
            let mut f = Findings::relative_to(dir.path());
            let files = [("db", secret.as_path())];
            let found = gather::git(dir.path(), &env, &runtime, &files);
            check_git(&mut f, dir.path(), &env, &runtime, &files, found.as_ref());
            f
        };
        assert_only(
            &run(),
            "git",
            "db",
            Status::Warn,
            "db/password.txt holds a secret and is not git-ignored",
        );
        std::fs::write(dir.path().join(".gitignore"), ".env\n.runtime/\ndb/\n").unwrap();
        assert!(statuses(&run(), "git", "db").is_empty());
        git(dir.path(), &["add", "-f", "db/password.txt"]);
        assert_only(&run(), "git", "db", Status::Fail, "is tracked by git");
    }
}
