//! `--json`: whatever happens, stdout holds exactly one JSON document. A failure is an
//! `"error"` object (kind, message, exit code; each problem when there are several), inside
//! the command's own document when it had one (verify's checks, rotate's steps).

use crate::harness::Project;

/// stdout as the one JSON document it must be (trailing whitespace aside).
#[track_caller]
fn one_document(stdout: &str) -> serde_json::Value {
    let mut docs = serde_json::Deserializer::from_str(stdout).into_iter::<serde_json::Value>();
    let first = docs
        .next()
        .unwrap_or_else(|| panic!("no JSON document on stdout:\n{stdout}"))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    assert!(
        docs.next().is_none(),
        "more than one document on stdout:\n{stdout}"
    );
    first
}

#[test]
fn a_bad_manifest_is_one_error_document_listing_each_problem() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: busybox\n    secrets: [a, b]\n\
         secrets:\n  a:\n    file: ./secrets/a.txt\n    x-compose-secrets:\n      generater: hex:32\n  \
         b:\n    file: ./secrets/b.txt\n    x-compose-secrets:\n      mode: \"0999\"\n",
    );
    let out = p.cmd(&["load", "--json"]).run().code(2);
    let doc = one_document(&out.stdout);
    let error = &doc["error"];
    assert_eq!(error["kind"], "manifest", "{doc:#}");
    assert_eq!(error["exit_code"], 2, "{doc:#}");
    assert!(error["message"].as_str().unwrap().contains("2 problems"));
    let problems = error["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 2, "{doc:#}");
    assert!(problems[0]["message"]
        .as_str()
        .unwrap()
        .contains("generater"));
    assert!(problems[1]["message"]
        .as_str()
        .unwrap()
        .contains("secret `b`"));
    assert!(problems
        .iter()
        .all(|p| p["kind"] == "manifest" && p["exit_code"] == 2));
    // For the log, the same error in words on stderr.
    assert!(
        out.stderr.contains("compose-secrets: error: 2 problems"),
        "{}",
        out.stderr
    );
    assert!(!p.exists(".runtime/secrets"));
}

#[test]
fn missing_values_name_the_secrets() {
    let p = Project::demo();
    p.write(".env", "FLASK_SECRET_KEY=x0123456789\n");
    let out = p.cmd(&["load", "--json"]).run().code(3);
    let error = one_document(&out.stdout)["error"].clone();
    assert_eq!(error["kind"], "missing-secrets");
    assert_eq!(error["exit_code"], 3);
    assert_eq!(
        error["secrets"],
        serde_json::json!([
            "audit-log-signing-key",
            "keycloak-admin-password",
            "keycloak-service-client-secret"
        ])
    );
}

#[test]
fn a_failing_verify_is_one_document_with_its_checks_and_the_error() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    // A file that no longer matches .env: drift fails.
    std::fs::remove_file(p.path(".runtime/secrets/flask-secret-key")).unwrap();
    let out = p.cmd(&["verify", "--json", "--no-docker"]).run().code(1);
    let doc = one_document(&out.stdout);
    assert_eq!(doc["command"], "verify");
    assert!(doc["summary"]["fail"].as_u64().unwrap() >= 1, "{doc:#}");
    assert!(doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["status"] == "fail" && c["subject"] == "flask-secret-key"));
    assert_eq!(doc["error"]["kind"], "verify-failed", "{doc:#}");
    assert_eq!(doc["error"]["exit_code"], 1);
}

#[test]
fn a_passing_command_has_no_error_member() {
    let p = Project::demo();
    let doc = one_document(&p.cmd(&["ensure", "--json"]).run().success().stdout);
    assert_eq!(doc["command"], "ensure");
    assert!(doc.get("error").is_none(), "{doc:#}");
}

#[test]
fn a_failed_rotation_is_its_steps_and_the_error_in_one_document() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: busybox\n    secrets: [api-token]\n\
         secrets:\n  api-token:\n    file: ./.runtime/secrets/api-token\n    \
         x-compose-secrets:\n      rotation-hook: [\"false\"]\n",
    );
    p.write(".env", "API_TOKEN=first-value-0123\n");
    p.cmd(&["load"]).run().success();
    let out = p
        .cmd(&["rotate", "api-token", "--no-restart", "--json"])
        .run();
    assert_ne!(out.code, 0, "{out:?}");
    let doc = one_document(&out.stdout);
    assert_eq!(doc["command"], "rotate", "{doc:#}");
    assert_eq!(doc["error"]["exit_code"], out.code, "{doc:#}");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("api-token"));
}

#[test]
fn a_command_line_clap_refuses_is_a_usage_error_document() {
    let p = Project::empty();
    let out = p.cmd(&["load", "--json", "--no-such-flag"]).run().code(2);
    let doc = one_document(&out.stdout);
    assert_eq!(doc["error"]["kind"], "usage");
    assert_eq!(doc["error"]["exit_code"], 2);
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--no-such-flag"));
    // clap's own message and usage stay on stderr.
    assert!(out.stderr.contains("Usage:"), "{}", out.stderr);
    // Without --json, stdout stays empty.
    let out = p.cmd(&["load", "--no-such-flag"]).run().code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}
