//! The CLI as an API client: tables for people, JSON for scripts, the server's message on error.

use std::process::Command;

use serde_json::Value;

use crate::harness::{TestServer, caravan_bin, stderr_failed, stdout_ok};

#[test]
fn tenant_lifecycle_through_the_cli() {
    let server = TestServer::start();
    // No token given, local server: the CLI reads <data-dir>/admin.token.
    let created = stdout_ok(&server.cli(
        None,
        &[
            "tenant",
            "create",
            "payments",
            "--display-name",
            "Payments team",
            "--retention-days",
            "7",
        ],
    ));
    assert!(
        created.contains("payments") && created.contains("7 days"),
        "{created}"
    );

    let listed = stdout_ok(&server.cli(None, &["tenant", "list", "--output", "json"]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["name"], "payments");
    assert_eq!(listed[0]["display_name"], "Payments team");
    assert_eq!(listed[0]["daily_quota_bytes"], Value::Null);

    let updated = stdout_ok(&server.cli(
        None,
        &[
            "tenant",
            "update",
            "payments",
            "--daily-quota-bytes",
            "10737418240",
            "-o",
            "json",
        ],
    ));
    let updated: Value = serde_json::from_str(&updated).unwrap();
    assert_eq!(updated["daily_quota_bytes"], 10_737_418_240_u64);
    let shown = stdout_ok(&server.cli(None, &["tenant", "show", "payments"]));
    assert!(shown.contains("10.0 GiB"), "{shown}");
    let updated = stdout_ok(&server.cli(
        None,
        &[
            "tenant",
            "update",
            "payments",
            "--unlimited-quota",
            "-o",
            "json",
        ],
    ));
    let updated: Value = serde_json::from_str(&updated).unwrap();
    assert_eq!(updated["daily_quota_bytes"], Value::Null);

    // A tenant token makes deletion need --force; nothing is left orphaned.
    let token = stdout_ok(&server.cli(
        None,
        &[
            "token",
            "create",
            "--name",
            "filebeat",
            "--tenant",
            "payments",
            "--scope",
            "logs:write",
            "-o",
            "json",
        ],
    ));
    let token: Value = serde_json::from_str(&token).unwrap();
    let secret = token["secret"].as_str().unwrap().to_owned();
    let refused = stderr_failed(&server.cli(None, &["tenant", "delete", "payments"]));
    assert!(
        refused.contains("tenant \"payments\" is in use: it owns 1 active tokens"),
        "{refused}"
    );
    stdout_ok(&server.cli(None, &["tenant", "delete", "payments", "--force"]));
    let missing = stderr_failed(&server.cli(None, &["tenant", "show", "payments"]));
    assert!(missing.contains("not found"), "{missing}");
    let tokens = stdout_ok(&server.cli(None, &["token", "list", "-o", "json"]));
    let tokens: Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(
        tokens.as_array().unwrap().len(),
        1,
        "only the admin token is left: {tokens}"
    );
    let (status, _) = server.call("GET", "/api/v1/whoami", Some(&secret), None);
    assert_eq!(status, 401);
}

#[test]
fn token_commands_and_scoped_access() {
    let server = TestServer::start();
    server.create_tenant("search");
    let created = stdout_ok(&server.cli(
        None,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--tenant",
            "search",
            "--scope",
            "logs:read,fleet:read",
        ],
    ));
    let secret = created
        .lines()
        .find_map(|line| line.strip_prefix("secret (shown once, keep it safe): "))
        .expect("the secret is printed once")
        .to_owned();
    let whoami = stdout_ok(&server.cli(Some(&secret), &["whoami"]));
    assert!(
        whoami.contains("tenant token")
            && whoami.contains("search")
            && whoami.contains("logs:read"),
        "{whoami}"
    );

    // The tenant token may not manage tenants: the server's message, non-zero exit.
    let refused = stderr_failed(&server.cli(Some(&secret), &["tenant", "create", "other"]));
    assert!(
        refused.contains("needs an admin token") && refused.contains("403"),
        "{refused}"
    );
    let hidden = stderr_failed(&server.cli(Some(&secret), &["tenant", "show", "default"]));
    assert!(hidden.contains("not found"), "{hidden}");

    let listed = stdout_ok(&server.cli(None, &["token", "list", "--tenant", "search"]));
    assert!(
        listed.contains("ci") && listed.contains("logs:read,fleet:read"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "listing shows a secret");
    let id = listed
        .split_whitespace()
        .find(|word| word.starts_with("tok_"))
        .unwrap()
        .to_owned();
    stdout_ok(&server.cli(None, &["token", "revoke", &id]));
    let rejected = stderr_failed(&server.cli(Some(&secret), &["whoami"]));
    assert!(rejected.contains("revoked"), "{rejected}");

    let admin = stdout_ok(&server.cli(
        None,
        &["token", "create", "--name", "ops", "--admin", "-o", "json"],
    ));
    let admin: Value = serde_json::from_str(&admin).unwrap();
    assert_eq!(admin["token"]["kind"], "admin");
}

#[test]
fn cli_errors_are_clear() {
    let server = TestServer::start();
    let bad = stderr_failed(&server.cli(None, &["tenant", "create", "Not_A_Label"]));
    assert!(bad.contains("may only contain lowercase letters"), "{bad}");
    let unreachable = Command::new(caravan_bin())
        .args([
            "--server",
            "http://127.0.0.1:1",
            "--token",
            "x",
            "tenant",
            "list",
        ])
        .output()
        .unwrap();
    let stderr = stderr_failed(&unreachable);
    assert!(
        stderr.contains("cannot reach the server at http://127.0.0.1:1"),
        "{stderr}"
    );
    let no_token = Command::new(caravan_bin())
        .args([
            "--server",
            &server.url,
            "--data-dir",
            "/nonexistent",
            "tenant",
            "list",
        ])
        .env_remove("CARAVAN_TOKEN")
        .output()
        .unwrap();
    let stderr = stderr_failed(&no_token);
    assert!(stderr.contains("missing credentials"), "{stderr}");
}

#[test]
fn help_everywhere_and_completions() {
    let commands: [&[&str]; 19] = [
        &[],
        &["server"],
        &["tenant"],
        &["tenant", "create"],
        &["tenant", "list"],
        &["tenant", "show"],
        &["tenant", "update"],
        &["tenant", "delete"],
        &["token"],
        &["token", "create"],
        &["token", "list"],
        &["token", "revoke"],
        &["completions"],
        &["schema"],
        &["schema", "init"],
        &["schema", "compile"],
        &["schema", "diff"],
        &["schema", "push"],
        &["schema", "show"],
    ];
    for command in commands {
        let output = Command::new(caravan_bin())
            .args(command)
            .arg("--help")
            .output()
            .unwrap();
        let help = stdout_ok(&output);
        assert!(help.contains("Usage: caravan"), "{command:?}: {help}");
    }
    let completions = stdout_ok(
        &Command::new(caravan_bin())
            .args(["completions", "bash"])
            .output()
            .unwrap(),
    );
    assert!(
        completions.contains("_caravan") && completions.contains("tenant"),
        "{completions}"
    );
}
