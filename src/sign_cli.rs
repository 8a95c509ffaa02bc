//! `reward-engine sign`: the headers a signed request needs, so a person can call the API
//! with curl. Secrets come from a credentials file or the environment, never from argv.

use std::path::Path;

use anyhow::Context;
use reward_actors::api::common::Secret;
use serde::Deserialize;

use crate::signing;

/// A secret key and its HMAC secret.
#[derive(Debug)]
pub struct SigningCredentials {
    pub secret_key: Secret,
    pub hmac_secret: Secret,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsFile {
    secret_key: String,
    hmac_secret: String,
}

impl SigningCredentials {
    /// Reads `secretKey` and `hmacSecret` from a JSON file (the demo writes one).
    pub fn from_file(path: &Path) -> anyhow::Result<SigningCredentials> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: CredentialsFile = serde_json::from_str(&text).with_context(|| format!("{} needs secretKey and hmacSecret", path.display()))?;
        Ok(SigningCredentials { secret_key: Secret::new(file.secret_key), hmac_secret: Secret::new(file.hmac_secret) })
    }

    /// Reads `REWARD_SECRET_KEY` and `REWARD_HMAC_SECRET`.
    pub fn from_environment() -> anyhow::Result<SigningCredentials> {
        let read = |name: &str| std::env::var(name).map(Secret::new).with_context(|| format!("{name} is not set (or pass --credentials FILE)"));
        Ok(SigningCredentials { secret_key: read("REWARD_SECRET_KEY")?, hmac_secret: read("REWARD_HMAC_SECRET")? })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub partner_key: String,
    pub timestamp: String,
    pub signature: String,
}

pub fn sign_request(credentials: &SigningCredentials, method: &str, path_with_query: &str, body: &[u8], unix_seconds: u64) -> SignedHeaders {
    let timestamp = unix_seconds.to_string();
    let signature = signing::sign(credentials.hmac_secret.expose(), &timestamp, method, path_with_query, body);
    SignedHeaders { partner_key: credentials.secret_key.expose().to_owned(), timestamp, signature }
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A complete curl command for the signed request.
pub fn curl_command(base_url: &str, method: &str, path_with_query: &str, body: &[u8], headers: &SignedHeaders) -> String {
    let mut command = format!(
        "curl -sS -X {method} {} -H {} -H {} -H {}",
        shell_quote(&format!("{}{path_with_query}", base_url.trim_end_matches('/'))),
        shell_quote(&format!("X-Partner-Key: {}", headers.partner_key)),
        shell_quote(&format!("X-Timestamp: {}", headers.timestamp)),
        shell_quote(&format!("X-Signature: {}", headers.signature)),
    );
    if !body.is_empty() {
        command.push_str(" -H 'Content-Type: application/json' --data-binary ");
        command.push_str(&shell_quote(&String::from_utf8_lossy(body)));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_contract_vector_and_quotes_for_the_shell() {
        let credentials = SigningCredentials { secret_key: Secret::new("sk_test_x".into()), hmac_secret: Secret::new("a".repeat(64)) };
        let headers = sign_request(&credentials, "GET", "/v1/partner/users?page=1&limit=20", b"", 1_767_225_600);
        assert_eq!(headers.signature, "ff8e14605d64181feebc92982a1bf6ff7142fb2d118c9d9d92e8a17a87a1372d");
        let command = curl_command("http://127.0.0.1:8080/", "POST", "/p", b"{\"a\":\"it's\"}", &headers);
        assert!(command.contains("'http://127.0.0.1:8080/p'"));
        assert!(command.contains(r#"--data-binary '{"a":"it'\''s"}'"#), "{command}");
    }
}
