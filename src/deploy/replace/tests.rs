use super::*;
use crate::deploy::memory::MemoryEngine;

fn no_url(_: &ContainerInfo) -> Option<String> {
    None
}

fn gate() -> Gate<'static> {
    Gate {
        health_timeout: Duration::from_secs(2),
        stop_timeout: Duration::ZERO,
        health_url: &no_url,
    }
}

#[tokio::test]
async fn the_replica_takes_the_next_number_and_the_old_container_goes() {
    let engine = MemoryEngine::new();
    let old = engine.add("p", "app", 1, true);
    engine.add("p", "app", 3, true);
    let new = replace_one(&engine, &old, &StartFirst::default(), &gate())
        .await
        .unwrap();
    assert_eq!(new.name, "p_app_4");
    assert_eq!(new.number, Some(4));
    assert!(new.running);
    assert_eq!(new.health.as_deref(), Some("healthy"));
    assert_eq!(new.labels.get(labels::REPLACES), Some(&old));
    assert_eq!(
        new.labels.get(labels::SERVICE).map(String::as_str),
        Some("app")
    );
    let left: Vec<String> = engine
        .project_containers("p")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(left, ["p_app_3", "p_app_4"]);
    assert!(
        engine.restarts().iter().all(|r| r != &old),
        "never restarted"
    );
}

#[tokio::test]
async fn an_unhealthy_replica_is_removed_and_the_old_container_is_untouched() {
    let engine = MemoryEngine::new();
    let old = engine.add("p", "app", 1, true);
    let before = engine.inspect(&old).await.unwrap();
    engine.unhealthy_replicas(true);
    let err = replace_one(&engine, &old, &StartFirst::default(), &gate())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("new container p_app_2 removed"), "{text}");
    assert!(text.contains("p_app_1 kept serving, untouched"), "{text}");
    assert_eq!(err.exit_code(), crate::error::exit::HEALTH);
    assert_eq!(engine.inspect(&old).await.unwrap(), before);
    let (created, removed) = engine.created_and_removed();
    assert_eq!(created, removed, "the replica, and only it, removed");
    assert!(
        engine.joined().is_empty(),
        "a failed replica never gets the service's aliases"
    );
    assert_eq!(engine.project_containers("p").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_replica_that_fails_during_monitor_is_removed() {
    let engine = std::sync::Arc::new(MemoryEngine::new());
    let old = engine.add("p", "app", 1, false);
    let watcher = engine.clone();
    let crash = tokio::spawn(async move {
        loop {
            let replica = "p_app_2-id";
            if watcher.inspect(replica).await.is_ok_and(|c| c.running) {
                watcher.update(replica, |c| {
                    c.running = false;
                    c.status = "exited".into();
                });
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    let strategy = StartFirst {
        monitor: Duration::from_secs(30),
        delay: Duration::ZERO,
    };
    let err = replace_one(engine.as_ref(), &old, &strategy, &gate())
        .await
        .unwrap_err();
    crash.await.unwrap();
    assert!(err.to_string().contains("monitor period"), "{err}");
    assert!(engine.inspect(&old).await.unwrap().running);
    assert_eq!(engine.project_containers("p").await.unwrap().len(), 1);
}

#[test]
fn start_first_with_a_container_name_or_fixed_port_is_refused_naming_the_key() {
    let start_first = UpdateConfig {
        start_first: true,
        ..UpdateConfig::default()
    };
    let named = [Singleton::ContainerName("web".into())];
    let err = Strategy::of("app", Some(&start_first), &named).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("service `app`"), "{text}");
    assert!(text.contains("`container_name: web`"), "{text}");
    assert!(text.contains("reverse proxy"), "{text}");
    assert_eq!(err.exit_code(), crate::error::exit::USAGE);
    let port = [Singleton::HostPort("8080:80".into())];
    let text = Strategy::of("app", Some(&start_first), &port)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("`ports: 8080:80` (a fixed host port)"),
        "{text}"
    );
    // The same keys without start-first: today's restart, no refusal.
    assert_eq!(
        Strategy::of("app", None, &named).unwrap(),
        Strategy::Restart
    );
    let stop_first = UpdateConfig::default();
    assert_eq!(
        Strategy::of("app", Some(&stop_first), &port).unwrap(),
        Strategy::Restart
    );
}

#[tokio::test]
async fn an_interrupted_replacement_leaves_one_extra_container_that_settle_removes() {
    let engine = MemoryEngine::new();
    let old = engine.add("p", "app", 1, false);
    let old_info = engine.inspect(&old).await.unwrap();
    let (name, labels) = replica_identity(&old_info, &[]);
    // Crash after the create, before the old one stopped: the replica goes.
    let replica = engine.create_like(&old, &name, &labels).await.unwrap();
    engine.start(&replica).await.unwrap();
    let found = leftovers(&engine.project_containers("p").await.unwrap());
    assert_eq!(found.len(), 1);
    assert!(found[0].describe().contains("unconfirmed"), "{found:?}");
    assert_eq!(found[0].extra().0, replica);
    settle(&engine, "p").await.unwrap();
    let left = engine.project_containers("p").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, old);

    // Crash after the old one stopped: the replica passed its gate, the old one goes.
    let replica = engine.create_like(&old, &name, &labels).await.unwrap();
    engine.start(&replica).await.unwrap();
    engine.stop(&old, Duration::ZERO).await.unwrap();
    settle(&engine, "p").await.unwrap();
    let left = engine.project_containers("p").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, replica);
    assert!(leftovers(&left).is_empty(), "the survivor is no leftover");
}

#[test]
fn the_name_follows_compose_v2_or_the_old_separator() {
    let old = ContainerInfo {
        id: "abc".into(),
        name: "shop-app-1".into(),
        project: "shop".into(),
        service: "app".into(),
        number: Some(1),
        labels: BTreeMap::from([
            (labels::PROJECT.to_string(), "shop".to_string()),
            (labels::SERVICE.to_string(), "app".to_string()),
        ]),
        ..ContainerInfo::default()
    };
    let (name, set) = replica_identity(&old, std::slice::from_ref(&old));
    assert_eq!(name, "shop-app-2");
    assert_eq!(set.get(labels::NUMBER).map(String::as_str), Some("2"));
    let v1 = ContainerInfo {
        name: "shop_app_1".into(),
        ..old
    };
    assert_eq!(replica_identity(&v1, &[]).0, "shop_app_2");
}
