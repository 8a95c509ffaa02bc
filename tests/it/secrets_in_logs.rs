//! No secret in the logs: the real binary, at its most verbose, serves a representative
//! session (partners, keys, rotation, signed and Basic requests, bad signatures, portal
//! sign-up, sign-in and refresh), then every secret it handed out or was handed is looked
//! for in everything it printed. Started with `REWARD_ADMIN_TOKEN` and without `--demo`, so
//! no banner is expected either.

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};

use crate::support::binary::start_binary;
use crate::support::{ADMIN_TOKEN, MASTER_KEY, Operator, action_body, now_secs, request};

async fn the_server_never_logs_a_secret(backend: StoreBackend) {
    let temp = tempfile::tempdir().expect("temp dir");
    let log = temp.path().join("server.log");
    let environment = [
        ("REWARD_LOG", "debug"),
        ("REWARD_PORTAL_REGISTRATION", "open"),
        ("REWARD_SERVER_LOG_FORMAT", "json"),
        ("REWARD_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8"),
    ];
    let (mut child, address) = start_binary(&temp.path().join("data"), backend, &log, &environment).await;
    let operator = Operator { address };
    let mut secrets: Vec<String> = vec![ADMIN_TOKEN.into(), MASTER_KEY.into()];

    let partner = operator.onboard_partner(10_000).await;
    let production = operator.issue_key(&partner.id, "production").await;
    for key in [&partner, &production] {
        secrets.extend([key.secret_key.clone(), key.hmac_secret.clone()]);
    }
    assert_eq!(partner.submit(&action_body("logged-1", "49.99", "user_42")).await.status, 200);
    assert_eq!(partner.basic(Method::POST, "/v1/partner/actions/submit", &action_body("logged-2", "1", "user_42")).await.status, 200);
    use base64::Engine as _;
    secrets.push(base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", partner.public_key, partner.secret_key)));
    // A wrong signature and an unknown secret key.
    let mut headers = partner.sign_with(&partner.secret_key, "POST", "/v1/partner/actions/submit", b"{}", now_secs());
    headers.iter_mut().filter(|(name, _)| name == "x-signature").for_each(|(_, value)| *value = "0".repeat(64));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    assert_eq!(request(address, Method::POST, "/v1/partner/actions/submit", &headers, Bytes::from_static(b"{}")).await.status, 401);
    let unknown = format!("sk_test_{}", "9".repeat(64));
    secrets.push(unknown.clone());
    assert_eq!(request(address, Method::GET, "/v1/partner/me", &[("x-partner-key", unknown.as_str())], Bytes::new()).await.status, 401);

    let me = partner.signed(Method::GET, "/v1/partner/me", "").await.json();
    let rotated = operator
        .admin(Method::POST, &format!("/api/v1/admin/partners/{}/keys/{}/rotate", partner.id, me["keyId"].as_str().expect("key")), Value::Null)
        .await
        .json();
    secrets.extend([rotated["secretKey"].as_str().expect("sk").to_owned(), rotated["hmacSecret"].as_str().expect("hmac").to_owned()]);

    // Webhook secrets (issued, rotated) and a credential in a custom header, through attempts
    // the dispatcher makes (and logs) to a port where nothing listens.
    let header_secret = "Bearer hook-credential-0123456789abcdef";
    secrets.push(header_secret.into());
    let target = crate::support::binary::free_address();
    let body = json!({ "url": format!("http://{target}/hooks"), "headers": { "Authorization": header_secret } }).to_string();
    let endpoint = partner.signed(Method::POST, "/v1/partner/webhooks", &body).await.json();
    secrets.push(endpoint["secret"].as_str().expect("whsec").to_owned());
    let endpoint_id = endpoint["id"].as_str().expect("id").to_owned();
    let rotated_hook = partner.signed(Method::POST, &format!("/v1/partner/webhooks/{endpoint_id}/rotate-secret"), "").await.json();
    secrets.push(rotated_hook["secret"].as_str().expect("whsec").to_owned());
    assert_eq!(partner.signed(Method::POST, &format!("/v1/partner/webhooks/{endpoint_id}/test"), "").await.status, 200);
    assert_eq!(partner.submit(&action_body("logged-3", "1", "user_42")).await.status, 200);
    let listed = partner.signed(Method::GET, "/v1/partner/webhooks", "").await;
    for secret in &secrets {
        assert!(!String::from_utf8_lossy(&listed.body).contains(secret.as_str()), "a secret appears in the webhook list");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let password = "correct horse battery staple";
    secrets.push(password.into());
    let registration = json!({ "email": "secret-keeper@good.example", "password": password, "name": "Keeper" }).to_string();
    let session =
        operator.raw(Method::POST, "/v1/partner/auth/register", &[("content-type", "application/json")], Bytes::from(registration)).await.json();
    let access = session["accessToken"].as_str().expect("access").to_owned();
    let refresh = session["refreshToken"].as_str().expect("refresh").to_owned();
    let key = operator.portal(Method::POST, "/v1/partner/keys", &access, json!({ "name": "portal", "environment": "sandbox" })).await.json();
    secrets.extend([
        access,
        refresh.clone(),
        key["secretKey"].as_str().expect("sk").to_owned(),
        key["hmacSecret"].as_str().expect("hmac").to_owned(),
    ]);
    let renewed = operator
        .raw(
            Method::POST,
            "/v1/partner/auth/refresh",
            &[("content-type", "application/json")],
            Bytes::from(json!({ "refreshToken": refresh }).to_string()),
        )
        .await
        .json();
    secrets.extend([renewed["accessToken"].as_str().expect("access").to_owned(), renewed["refreshToken"].as_str().expect("refresh").to_owned()]);
    let wrong_login = json!({ "email": "secret-keeper@good.example", "password": "a wrong guess at it" }).to_string();
    secrets.push("a wrong guess at it".into());
    assert_eq!(
        operator.raw(Method::POST, "/v1/partner/auth/login", &[("content-type", "application/json")], Bytes::from(wrong_login)).await.status,
        401
    );

    // Stop gracefully (SIGTERM) so everything buffered is written.
    let pid = child.id().expect("running") as i32;
    // SAFETY-free: libc::kill is a plain syscall wrapper; the pid is our own child.
    assert_eq!(unsafe_free_kill(pid), 0);
    child.wait().await.expect("exits");

    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("reward engine listening"), "the log is the server's: {logged}");
    assert!(logged.lines().count() > 5, "debug logging produced a real log:\n{logged}");
    for secret in &secrets {
        assert!(!logged.contains(secret.as_str()), "a secret appears in the log: {}…", &secret[..secret.len().min(12)]);
    }
}

/// SIGTERM through the `kill` command: no `unsafe` in this workspace.
fn unsafe_free_kill(pid: i32) -> i32 {
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().map_or(-1, |status| status.code().unwrap_or(-1))
}

crate::backend_tests!(the_server_never_logs_a_secret);
