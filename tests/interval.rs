//! `sync --watch --interval`: a bare number is seconds, as `sleep(1)` and `watch(1)` read it.

use std::time::Duration;

use crate::harness::Project;
use crate::support::process::Background;

#[test]
fn a_bare_interval_is_seconds() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let mut watch = Background::spawn(p.cmd(&["sync", "--watch", "--interval", "2"]).env(
        "DOCKER_HOST",
        "unix:///nonexistent/compose-secrets-test/docker.sock",
    ));
    watch.wait_for("the watcher's start line", Duration::from_secs(60), |w| {
        w.stderr().contains("watching the store every 2s")
    });
    assert_eq!(watch.terminate(), 0, "stderr:\n{}", watch.stderr());
    // Still at least one second, whatever the spelling.
    p.cmd(&["sync", "--watch", "--interval", "0"])
        .run()
        .code(2)
        .stderr_has("--interval 0");
}
