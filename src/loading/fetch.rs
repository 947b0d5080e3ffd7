//! Listing and fetching, overlapped: a secret is fetched as soon as the listing page naming it
//! arrives, at most `concurrency` at a time, and a secret whose listed version is the one last
//! written (file intact) is not fetched at all. A cold load (nothing could be cached) skips the
//! listing: each GET brings its version, so the pages would only cost round trips.

use std::collections::HashMap;

use futures::StreamExt as _;

use super::Candidate;
use crate::error::{Error, Result};
use crate::store::{FetchedSecret, SecretStore, VersionInfo};

pub(crate) struct Fetched {
    /// Each fetched candidate (by index) with what the store answered.
    pub results: Vec<(usize, Result<FetchedSecret>)>,
    /// The listing's entry for each candidate, where the store lists versions.
    pub listed: HashMap<usize, VersionInfo>,
}

/// How the candidates are found: from the store's listing, or all of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// List first; fetch what the listing shows changed (warm loads, `sync`).
    Listed,
    /// GET every candidate directly: nothing is cached, so every one is fetched anyway, and a
    /// secret the store lacks answers not-found to its GET (cold loads).
    Direct,
}

pub(crate) async fn fetch(
    store: &dyn SecretStore,
    candidates: &[Candidate<'_>],
    is_cached: &(dyn Fn(usize, Option<&VersionInfo>) -> bool + Sync),
    concurrency: usize,
    reporter: &crate::output::Reporter,
) -> Result<Fetched> {
    fetch_with(
        store,
        candidates,
        is_cached,
        concurrency,
        reporter,
        Listing::Listed,
    )
    .await
}

pub(crate) async fn fetch_with(
    store: &dyn SecretStore,
    candidates: &[Candidate<'_>],
    is_cached: &(dyn Fn(usize, Option<&VersionInfo>) -> bool + Sync),
    concurrency: usize,
    reporter: &crate::output::Reporter,
    how: Listing,
) -> Result<Fetched> {
    let versions = store.keeps_versions();
    let lists = versions && how == Listing::Listed;
    // Several candidates share a key when they are parts of one certificate.
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        by_key
            .entry(c.key.to_ascii_lowercase())
            .or_default()
            .push(i);
    }
    let progress = reporter.progress(candidates.len(), "fetching");
    let (wanted, wanted_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let listing = async {
        let wanted = wanted;
        let mut listed: HashMap<usize, VersionInfo> = HashMap::new();
        if !lists {
            for i in (0..candidates.len()).filter(|&i| !is_cached(i, None)) {
                let _ = wanted.send(i);
            }
            return Ok(listed);
        }
        // A pinned version does not depend on the listing.
        for (i, c) in candidates.iter().enumerate() {
            if c.spec.pinned_version.is_some() && !is_cached(i, None) {
                let _ = wanted.send(i);
            }
        }
        let mut stream = store.list_properties_stream();
        while let Some(item) = stream.next().await {
            let info = item?;
            for &i in by_key
                .get(&info.name.to_ascii_lowercase())
                .into_iter()
                .flatten()
            {
                if candidates[i].spec.pinned_version.is_none() && !is_cached(i, Some(&info)) {
                    let _ = wanted.send(i);
                }
                listed.insert(i, info.clone());
            }
        }
        Ok::<_, Error>(listed)
    };
    let fetching = futures::stream::unfold(wanted_rx, |mut rx| async move {
        rx.recv().await.map(|i| (i, rx))
    })
    .map(|i| {
        let progress = progress.clone();
        let c = &candidates[i];
        async move {
            let result = match &c.spec.pinned_version {
                Some(v) if versions => store.get_version(&c.key, v).await,
                _ => store.get_latest(&c.key).await,
            };
            if let Some(p) = &progress {
                p.inc(1);
            }
            (i, result)
        }
    })
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<_>>();
    let (listed, results) = tokio::join!(listing, fetching);
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let listed = listed?;
    if lists {
        unlisted(store, candidates, &listed)?;
    }
    Ok(Fetched { results, listed })
}

/// A secret the listing does not name is missing (a pinned version is not listed).
fn unlisted(
    store: &dyn SecretStore,
    candidates: &[Candidate<'_>],
    listed: &HashMap<usize, VersionInfo>,
) -> Result<()> {
    let missing: Vec<String> = candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| c.spec.pinned_version.is_none() && !listed.contains_key(i))
        .map(|(_, c)| c.spec.name.clone())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::MissingSecrets {
        names: missing,
        origin: store.describe(),
    })
}
