//! Owners that only an image knows: a service's named `user:` (`postgres`, `www-data:www-data`,
//! `1000:nogroup`) turned into the uid:gid its secret files get, read from the image's
//! /etc/passwd and /etc/group through the engine without running the image.
//!
//! Only secrets with no `x-compose-secrets.owner` whose readers include a named user need it;
//! numeric users never cause a Docker call. An image already read (same image ID) is not
//! read again: its ids come from [`Cache`], at the cost of one inspect call.

mod cache;
mod passwd;

pub use cache::Cache;

use std::collections::BTreeMap;

use crate::compose::{OwnerFrom, Project, RunsAs};
use crate::deploy::{ContainerEngine, DockerEngine};
use crate::error::{Error, Result};

/// A named user to look up: which service runs as it, from which image, for which secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lookup {
    service: String,
    image: String,
    user: String,
    secrets: Vec<String>,
}

/// `project` with the owners its named users give, looked up through the local Docker engine;
/// an error (naming service, image and user) when one cannot be, before anything is written.
/// What was looked up goes into `cache`, for the caller to save once its run succeeded.
pub async fn resolved(mut project: Project, cache: &mut Cache) -> Result<Project> {
    let lookups = lookups(&project);
    if lookups.is_empty() {
        return Ok(project);
    }
    let engine = DockerEngine::connect().map_err(|e| lookup_error(&lookups[0], e))?;
    Error::all(apply(&mut project, &engine, cache).await)?;
    Ok(project)
}

/// For `verify`: the owners filled in where they can be, and each failed lookup as an error
/// to report (verify keeps going). It reads `cache` and never saves it.
pub async fn resolve_for_verify(project: &mut Project, cache: &mut Cache) -> Vec<Error> {
    let lookups = lookups(project);
    if lookups.is_empty() {
        return Vec::new();
    }
    match DockerEngine::connect() {
        Ok(engine) => apply(project, &engine, cache).await,
        Err(e) => vec![lookup_error(&lookups[0], e)],
    }
}

/// Look every named user up (each image read once, and not at all when `cache` knows its ID)
/// and set the owners they give; the errors of the lookups that failed, whose secrets are left
/// as they were.
pub async fn apply(
    project: &mut Project,
    engine: &dyn ContainerEngine,
    cache: &mut Cache,
) -> Vec<Error> {
    let lookups = lookups(project);
    let mut named: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut images: Vec<&str> = lookups.iter().map(|l| l.image.as_str()).collect();
    images.sort_unstable();
    images.dedup();
    for image in images {
        let users: Vec<&Lookup> = lookups.iter().filter(|l| l.image == image).collect();
        match of_image(engine, cache, image, &users).await {
            Ok(found) => {
                for (l, ids) in users.iter().zip(found) {
                    match ids {
                        Ok(ids) => {
                            named.insert(l.service.clone(), ids);
                        }
                        Err(message) => problems.push(lookup_error(l, Error::Usage(message))),
                    }
                }
            }
            // One error for the image, naming the first service that needs it.
            Err(e) => problems.push(lookup_error(users[0], e)),
        }
    }
    let services = project.services.clone();
    for spec in project.secrets.iter_mut() {
        let mine: Vec<&Lookup> = lookups
            .iter()
            .filter(|l| l.secrets.contains(&spec.name))
            .collect();
        // A secret with a failed lookup is left as it was: its error is reported.
        if mine.is_empty() || mine.iter().any(|l| !named.contains_key(&l.service)) {
            continue;
        }
        let (uid, gid) = crate::compose::owner_from_readers(&spec.name, &services, &named)
            .unwrap_or((None, None));
        spec.owner_uid = uid;
        spec.owner_gid = gid;
        // Readers that disagree (or an owner this process cannot give) leave the file to the
        // running user, as they do with numeric users.
        spec.owner_from = if uid.is_some() || gid.is_some() {
            OwnerFrom::Image {
                image: mine[0].image.clone(),
                user: mine[0].user.clone(),
            }
        } else {
            OwnerFrom::Runner
        };
    }
    problems
}

/// The ids of each of `users` (all of `image`), or why the image tells none: from `cache`
/// when it knows them all for the image's ID, else from the image's files, read through the
/// engine by that ID (so a rebuild between the two calls is not filed under the old one).
async fn of_image(
    engine: &dyn ContainerEngine,
    cache: &mut Cache,
    image: &str,
    users: &[&Lookup],
) -> Result<Vec<std::result::Result<(u32, u32), String>>> {
    let id = engine.image_id(image).await?;
    let cached: Option<Vec<_>> = users.iter().map(|l| cache.get(&id, &l.user)).collect();
    if let Some(cached) = cached {
        return Ok(cached.into_iter().map(Ok).collect());
    }
    let read = engine
        .image_files(&id, &["/etc/passwd", "/etc/group"], passwd::MAX_FILE_BYTES)
        .await?;
    let (passwd, group) = match read.as_slice() {
        [passwd, group] => (passwd.as_deref(), group.as_deref()),
        _ => (None, None),
    };
    let found: Vec<_> = users
        .iter()
        .map(|l| passwd::resolve(&l.user, passwd, group))
        .collect();
    for (l, ids) in users.iter().zip(&found) {
        if let Ok(ids) = ids {
            cache.put(&id, &l.user, *ids);
        }
    }
    Ok(found)
}

/// The named users whose ids decide a file's owner: enabled services mounting an in-use file
/// secret that declares no owner, without a numeric `uid` on the mount.
fn lookups(project: &Project) -> Vec<Lookup> {
    let mut out: Vec<Lookup> = Vec::new();
    for spec in project.secrets_in_use() {
        if spec.owner_from == OwnerFrom::Declared || spec.file_path().is_none() {
            continue;
        }
        for m in spec.uses.iter().filter(|m| m.source == spec.name) {
            let Some(service) = project.services.get(&m.service).filter(|s| s.enabled) else {
                continue;
            };
            let Some(RunsAs::Named(user)) = service.runs_as() else {
                continue;
            };
            if m.uid.as_deref().is_some_and(|u| u.parse::<u32>().is_ok()) {
                continue;
            }
            // A service Compose builds has no `image:`; Compose names its image so.
            let image = service
                .image
                .clone()
                .unwrap_or_else(|| format!("{}-{}", project.name, service.name));
            match out.iter_mut().find(|l| l.service == service.name) {
                Some(l) if !l.secrets.contains(&spec.name) => l.secrets.push(spec.name.clone()),
                Some(_) => {}
                None => out.push(Lookup {
                    service: service.name.clone(),
                    image,
                    user,
                    secrets: vec![spec.name.clone()],
                }),
            }
        }
    }
    out
}

/// The cause, said of the secrets whose owner it leaves unknown, with the way out.
fn lookup_error(l: &Lookup, cause: Error) -> Error {
    use crate::error::DockerFailure;
    let hint = match &cause {
        Error::Docker {
            kind: DockerFailure::Unreachable,
            ..
        } => "start Docker",
        Error::Docker {
            kind: DockerFailure::Refused { status: 404 },
            ..
        } => "pull or build the image",
        Error::Usage(_) => "fix the service's `user:`",
        _ => "try again",
    };
    let plural = if l.secrets.len() == 1 { "" } else { "s" };
    let secrets = l
        .secrets
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Error::within(
        format!(
            "owner of secret{plural} {secrets}: service `{}` runs as user `{}`, whose uid:gid \
             only image {} holds ({hint}, or set x-compose-secrets.owner)",
            l.service, l.user, l.image
        ),
        cause,
    )
}

#[cfg(test)]
mod tests;
