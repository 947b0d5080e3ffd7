//! Vault access: reachable, and `list`, `get` and `set` permitted.

use super::*;
use crate::store::AccessProbe;

/// The vault answers and the identity may `list` and `get` (load) and `set` (rotate), as the
/// store's probe (without writing wherever the API allows; see [`super::gather::store_facts`])
/// answered. `vault` is the store's description.
pub fn check_vault(f: &mut Findings, vault: &str, probe: &AccessProbe) {
    let subject = vault.to_string();
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

    const VAULT: &str = "https://probe.vault.azure.net";

    /// The check over a probe's answers alone: no store is asked.
    #[test]
    fn vault_access_names_the_missing_permission() {
        let run = |reachable, can_get, can_set| {
            let probe = AccessProbe {
                reachable,
                can_list: Some(reachable),
                can_get,
                can_set,
                detail: "credential: managed identity".into(),
            };
            let mut f = Findings::default();
            check_vault(&mut f, VAULT, &probe);
            f
        };
        let f = run(false, None, None);
        assert_eq!(statuses(&f, "vault", "probe"), vec![Status::Fail]);
        assert!(f.checks[0].message.contains("not reachable"));

        let f = run(true, Some(false), None);
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

        let f = run(true, Some(true), Some(false));
        assert_eq!(f.count(Status::Fail), 0, "{:#?}", f.checks);
        assert!(f
            .checks
            .iter()
            .any(|c| c.status == Status::Warn && c.message.contains("lacks the secrets `set`")));

        let f = run(true, Some(true), Some(true));
        assert_eq!(f.count(Status::Pass), 4, "{:#?}", f.checks);
    }

    /// The memory twin reports `set` from its injected failures; gathered, then checked.
    #[tokio::test]
    async fn the_memory_twins_probe_reports_a_refused_set() {
        let store = MemoryStore::new();
        store.fail_sets(true);
        let probe = store.probe_access(&[]).await;
        let mut f = Findings::default();
        check_vault(&mut f, &store.describe(), &probe);
        assert!(f
            .checks
            .iter()
            .any(|c| c.status == Status::Warn && c.message.contains("`set`")));
    }
}
