//! Vault access: reachable, and `list`, `get` and `set` permitted.

use super::*;

/// The vault answers and the identity may `list` and `get` (load) and `set` (rotate), probed
/// without writing wherever the API allows.
pub async fn check_vault(f: &mut Findings, store: &dyn SecretStore, names: &[String]) {
    let probe = store.probe_access(names).await;
    let subject = store.describe();
    if !probe.reachable {
        f.add(
            Status::Fail,
            "vault",
            &subject,
            format!("not reachable: {}", probe.detail),
        );
        return;
    }
    f.add(Status::Pass, "vault", &subject, "reachable");
    match probe.can_list {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`list` permitted (load)"),
        Some(false) => f.add(
            Status::Fail,
            "vault",
            &subject,
            "the identity lacks the secrets `list` permission (needed by load)",
        ),
        None => f.add(
            Status::Warn,
            "vault",
            &subject,
            format!("`list` could not be probed: {}", probe.detail),
        ),
    }
    match probe.can_get {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`get` permitted (load)"),
        Some(false) => f.add(
            Status::Fail,
            "vault",
            &subject,
            format!(
                "the identity lacks the secrets `get` permission (needed by load): {}",
                probe.detail
            ),
        ),
        None => f.add(
            Status::Warn,
            "vault",
            &subject,
            format!("`get` could not be probed: {}", probe.detail),
        ),
    }
    // Only rotate needs `set`; a load-only VM without it is a sound deployment.
    match probe.can_set {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`set` permitted (rotate)"),
        Some(false) => f.add(
            Status::Warn,
            "vault",
            &subject,
            "the identity lacks the secrets `set` permission: `rotate` will fail (fine for a load-only VM)",
        ),
        None => f.add(
            Status::Warn,
            "vault",
            &subject,
            format!(
                "`set` (rotate) cannot be probed without writing: {}",
                probe.detail
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    /// A store that only answers the access probe.
    struct Probed(AccessProbe);

    #[async_trait::async_trait]
    impl SecretStore for Probed {
        fn describe(&self) -> String {
            "https://probe.vault.azure.net".into()
        }
        fn keeps_versions(&self) -> bool {
            true
        }
        async fn get_latest(&self, _: &str) -> crate::error::Result<crate::store::FetchedSecret> {
            Err(crate::error::Error::Usage("probe only".into()))
        }
        async fn get_version(
            &self,
            _: &str,
            _: &str,
        ) -> crate::error::Result<crate::store::FetchedSecret> {
            Err(crate::error::Error::Usage("probe only".into()))
        }
        async fn set_version(
            &self,
            _: &str,
            _: &SecretValue,
            _: &crate::store::NewVersion,
        ) -> crate::error::Result<VersionInfo> {
            Err(crate::error::Error::Usage("probe only".into()))
        }
        async fn list_properties(&self) -> crate::error::Result<Vec<VersionInfo>> {
            Ok(Vec::new())
        }
        async fn list_versions(&self, _: &str) -> crate::error::Result<Vec<VersionInfo>> {
            Ok(Vec::new())
        }
        async fn probe_access(&self, _: &[String]) -> AccessProbe {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn vault_access_names_the_missing_permission() {
        let probe = |reachable, can_get, can_set| {
            Probed(AccessProbe {
                reachable,
                can_list: Some(reachable),
                can_get,
                can_set,
                detail: "credential: managed identity".into(),
            })
        };
        let run = |store: Probed| async move {
            let mut f = Findings::default();
            check_vault(&mut f, &store, &["db-password".into()]).await;
            f
        };
        let f = run(probe(false, None, None)).await;
        assert_eq!(statuses(&f, "vault", "probe"), vec![Status::Fail]);
        assert!(f.checks[0].message.contains("not reachable"));

        let f = run(probe(true, Some(false), None)).await;
        let get = f
            .checks
            .iter()
            .find(|c| c.message.contains("`get`"))
            .unwrap();
        assert_eq!(get.status, Status::Fail);
        let set = f
            .checks
            .iter()
            .find(|c| c.message.contains("`set`"))
            .unwrap();
        assert_eq!(set.status, Status::Warn, "{set:?}");
        assert!(set.message.contains("without writing"));

        let f = run(probe(true, Some(true), Some(false))).await;
        assert_eq!(f.count(Status::Fail), 0, "{:#?}", f.checks);
        assert!(f
            .checks
            .iter()
            .any(|c| c.status == Status::Warn && c.message.contains("lacks the secrets `set`")));

        let f = run(probe(true, Some(true), Some(true))).await;
        assert_eq!(f.count(Status::Pass), 4, "{:#?}", f.checks);

        // The memory twin reports `set` from its injected failures.
        let store = MemoryStore::new();
        store.fail_sets(true);
        let mut f = Findings::default();
        check_vault(&mut f, &store, &[]).await;
        assert!(f
            .checks
            .iter()
            .any(|c| c.status == Status::Warn && c.message.contains("`set`")));
    }
}
