//! `/etc/passwd` and `/etc/group` as an image holds them, and a `user:` of Compose resolved
//! against them the way the engine resolves it when it starts the container.

/// Larger files are refused: a name table this big is not what an image's /etc holds.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The ids a `user:` (`name`, `name:group`, `uid:group`, `name:gid`) stands for in an image.
/// A user without a group part takes its passwd entry's primary group. `None` for a file the
/// image does not have. The error says what is missing, in words for the user.
pub fn resolve(
    user: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<(u32, u32), String> {
    let (name, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match name.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => {
            let text = passwd
                .ok_or_else(|| format!("the image has no /etc/passwd to find user `{name}` in"))?;
            let e = find(text, name, 4)?
                .ok_or_else(|| format!("the image's /etc/passwd has no user `{name}`"))?;
            (e.id, Some(e.gid))
        }
    };
    let gid = match group_part {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let text = group
                    .ok_or_else(|| format!("the image has no /etc/group to find group `{g}` in"))?;
                find(text, g, 3)?
                    .ok_or_else(|| format!("the image's /etc/group has no group `{g}`"))?
                    .id
            }
        },
        None => primary.ok_or_else(|| {
            // Only a numeric user without a group reaches here, and those never come to
            // `owners` (they need no image); say so rather than guess group 0.
            format!("user `{user}` has no group to take")
        })?,
    };
    Ok((uid, gid))
}

struct Entry {
    id: u32,
    gid: u32,
}

/// The first entry named `name` (as getpwnam and getgrnam take the first), in a file of
/// `name:password:id[:gid…]` lines; `fields` is how many a valid line has at least.
/// Comments, NIS lines (`+`, `-`) and lines whose ids are not numbers are skipped, as glibc
/// skips them.
fn find(text: &[u8], name: &str, fields: usize) -> Result<Option<Entry>, String> {
    if text.len() > MAX_FILE_BYTES {
        return Err(format!(
            "its name table is {} bytes, over the {MAX_FILE_BYTES} read",
            text.len()
        ));
    }
    for line in text.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with(['#', '+', '-']) {
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        if parts.len() < fields || parts[0] != name {
            continue;
        }
        let Ok(id) = parts[2].parse::<u32>() else {
            continue;
        };
        let gid = if fields >= 4 {
            match parts[3].parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => continue,
            }
        } else {
            id
        };
        return Ok(Some(Entry { id, gid }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        +nis\n\
        broken:x:notanumber:1::/:/bin/false\n\
        www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
        postgres:x:999:999::/var/lib/postgresql:/bin/sh\r\n\
        www-data:x:4242:4242:a second entry is never used:/:/bin/false\n\
        short:x:7\n";
    const GROUP: &[u8] = b"root:x:0:\nnogroup:x:65534:\nwww-data:x:33:\nssl-cert:x:108:postgres\n";

    fn ok(user: &str) -> Result<(u32, u32), String> {
        resolve(user, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn a_name_takes_its_uid_and_primary_group() {
        assert_eq!(ok("www-data"), Ok((33, 33)));
        assert_eq!(ok("postgres"), Ok((999, 999)), "CRLF line endings");
        assert_eq!(ok("root"), Ok((0, 0)));
    }

    #[test]
    fn a_group_part_overrides_the_primary_group() {
        assert_eq!(ok("postgres:ssl-cert"), Ok((999, 108)));
        assert_eq!(ok("www-data:www-data"), Ok((33, 33)));
        assert_eq!(ok("1000:nogroup"), Ok((1000, 65534)));
        assert_eq!(ok("postgres:70"), Ok((999, 70)));
    }

    #[test]
    fn a_numeric_user_with_a_named_group_needs_no_passwd() {
        assert_eq!(
            resolve("1000:nogroup", None, Some(GROUP)),
            Ok((1000, 65534))
        );
    }

    #[test]
    fn missing_users_groups_and_files_are_named() {
        assert_eq!(
            ok("nginx"),
            Err("the image's /etc/passwd has no user `nginx`".into())
        );
        assert_eq!(
            ok("www-data:staff"),
            Err("the image's /etc/group has no group `staff`".into())
        );
        assert_eq!(
            resolve("postgres", None, Some(GROUP)),
            Err("the image has no /etc/passwd to find user `postgres` in".into())
        );
        assert_eq!(
            resolve("1:staff", Some(PASSWD), None),
            Err("the image has no /etc/group to find group `staff` in".into())
        );
    }

    #[test]
    fn comments_nis_and_malformed_lines_never_match() {
        assert!(ok("broken").is_err());
        assert!(ok("short").is_err(), "a line without a gid field");
        assert!(ok("+nis").is_err());
        assert!(ok("# a comment").is_err());
    }

    #[test]
    fn an_oversized_file_is_refused() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        let e = resolve("root", Some(&big), Some(GROUP)).unwrap_err();
        assert!(e.contains("over the"), "{e}");
    }
}
