//! The rotation policy against the emulator: `verify` passes, warns past 80 % and fails when a
//! secret is overdue or its version's `exp` has passed; `rotate --due` rotates exactly those,
//! and each rotation sets `exp` = rotated-at + rotate-every + expiry-grace on the new version.

use std::collections::BTreeMap;

use compose_secrets::testing::secret::SecretValue;
use compose_secrets::testing::store::{NewVersion, SecretStore as _};

use crate::harness::Project;
use crate::support::emulator::Emulator;

const DAY: i64 = 86_400;

const COMPOSE: &str = r#"services:
  app:
    image: x
    secrets: [fresh, soon, overdue, expired, plain]
secrets:
  fresh:
    file: ./.runtime/secrets/fresh
    x-compose-secrets: {rotate-every: 90d}
  soon:
    file: ./.runtime/secrets/soon
    x-compose-secrets: {rotate-every: 10d}
  overdue:
    file: ./.runtime/secrets/overdue
    x-compose-secrets: {rotate-every: 1d, expiry-grace: 12h}
  expired:
    file: ./.runtime/secrets/expired
    x-compose-secrets: {rotate-every: 90d}
  plain:
    file: ./.runtime/secrets/plain
"#;

fn statuses(out: &crate::harness::Output) -> BTreeMap<String, String> {
    out.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["category"] == "policy")
        .map(|c| {
            (
                c["subject"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_follows_the_policy_and_rotate_due_rotates_only_what_is_due_setting_exp() {
    let emulator = Emulator::start(&[]);
    let store = crate::support::store::store_for(&emulator, &[]);
    let now = compose_secrets::testing::clock::unix_now();
    let rotated = |ago: i64| {
        BTreeMap::from([(
            "rotated-at".to_string(),
            compose_secrets::testing::clock::rfc3339(now - ago),
        )])
    };
    let put = |name: &'static str, tags: BTreeMap<String, String>, expires: Option<i64>| {
        let store = &store;
        async move {
            store
                .set_version(
                    name,
                    &SecretValue::new(format!("{name}-value-0123456789")),
                    &NewVersion { tags, expires },
                )
                .await
                .unwrap()
        }
    };
    put("fresh", rotated(DAY), None).await;
    put("soon", rotated(9 * DAY), None).await;
    put("overdue", rotated(2 * DAY), None).await;
    put("expired", rotated(DAY), Some(now - 60)).await;
    put("plain", BTreeMap::new(), None).await;
    let p = Project::empty();
    p.write("compose.yaml", COMPOSE);
    p.cmd(&["load"]).keyvault(&emulator).run().success();

    let out = p
        .cmd(&["verify", "--no-docker", "--json"])
        .keyvault(&emulator)
        .run()
        .code(1);
    let policy = statuses(&out);
    assert_eq!(policy["fresh"], "pass", "{policy:?}");
    assert_eq!(policy["soon"], "warn", "past 80 %: {policy:?}");
    assert_eq!(policy["overdue"], "fail", "{policy:?}");
    assert_eq!(policy["expired"], "fail", "exp has passed: {policy:?}");
    assert!(!policy.contains_key("plain"), "no policy, no check");
    assert!(out.stdout.contains("rotate --due"), "{}", out.stdout);

    let before: BTreeMap<&str, Option<String>> = {
        let mut m = BTreeMap::new();
        for name in ["fresh", "soon", "overdue", "expired", "plain"] {
            m.insert(name, store.get_latest(name).await.unwrap().info.version);
        }
        m
    };
    let out = p
        .cmd(&["rotate", "--due", "--no-restart", "--json"])
        .keyvault(&emulator)
        .run()
        .success();
    let rotated_at = compose_secrets::testing::clock::unix_now();
    let items = out.json()["items"].as_array().unwrap().clone();
    let not_due: Vec<&str> = items
        .iter()
        .filter(|i| i["action"] == "not-due")
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(not_due, ["fresh", "soon"], "{items:#?}");
    for name in ["fresh", "soon", "plain"] {
        assert_eq!(
            store.get_latest(name).await.unwrap().info.version,
            before[name],
            "{name} is not due"
        );
    }
    for (name, period) in [("overdue", DAY + DAY / 2), ("expired", 97 * DAY)] {
        let latest = store.get_latest(name).await.unwrap();
        assert_ne!(latest.info.version, before[name], "{name} was rotated");
        let exp = latest.info.expires.expect("exp set on the new version");
        // rotated-at + rotate-every + expiry-grace, rotated-at within this test's run.
        assert!(
            exp >= now + period && exp <= rotated_at + period,
            "{name}: exp {exp}, expected {} (+{period})",
            rotated_at
        );
        let listed = store
            .list_properties()
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.name == name)
            .unwrap();
        assert_eq!(listed.expires, Some(exp), "the listing shows exp too");
        assert_eq!(
            p.read_string(&format!(".runtime/secrets/{name}")),
            latest.value.expose()
        );
    }

    let out = p
        .cmd(&["verify", "--no-docker", "--json"])
        .keyvault(&emulator)
        .run()
        .success();
    let policy = statuses(&out);
    assert_eq!(policy["overdue"], "pass", "{policy:?}");
    assert_eq!(policy["expired"], "pass", "{policy:?}");
    assert_eq!(policy["soon"], "warn", "{policy:?}");
    p.cmd(&["verify", "--no-docker", "--strict"])
        .keyvault(&emulator)
        .run()
        .code(1);
    // Nothing is due any more.
    let out = p
        .cmd(&["rotate", "--due", "--no-restart", "--json"])
        .keyvault(&emulator)
        .run()
        .success();
    assert!(
        !out.stdout.contains("\"rotated\""),
        "nothing rotated twice: {}",
        out.stdout
    );
}

#[test]
fn due_cannot_be_combined_with_older_than() {
    let p = Project::empty();
    p.write("compose.yaml", COMPOSE);
    p.cmd(&["rotate", "--due", "--older-than", "3d"])
        .run()
        .code(2);
}
