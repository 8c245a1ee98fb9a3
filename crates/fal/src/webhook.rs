//! fal's webhook signatures: ED25519 over the request id, the user id, the
//! timestamp and the body's SHA-256, checked against the keys fal
//! publishes as a JWKS, within ±300 s of now.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use kling_core::provider::CallbackVerifier;
use kling_http::ApiClient;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::Value;

/// How far a webhook's timestamp may be from now, either way.
pub const TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(300);
/// How long fetched keys are used before they are fetched again (fal:
/// "do not cache longer than 24 hours").
const KEYS_KEPT: Duration = Duration::from_secs(24 * 3600);
/// How soon keys are fetched again when no key verifies a signature (a
/// key fal rotated in): at most this often, so that forged calls cannot
/// make us fetch on every call.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// At most this many keys are kept from a JWKS.
const MAX_KEYS: usize = 32;

const REQUEST_ID: &str = "x-fal-webhook-request-id";
const USER_ID: &str = "x-fal-webhook-user-id";
const TIMESTAMP: &str = "x-fal-webhook-timestamp";
const SIGNATURE: &str = "x-fal-webhook-signature";

/// The keys last fetched, when, and when a fetch was last tried.
#[derive(Default)]
struct Keys {
    known: Vec<[u8; 32]>,
    fetched: Option<Instant>,
    tried: Option<Instant>,
}

/// Checks fal's webhook signatures against the keys published at a JWKS
/// URL (fal's, or a test's), fetched on first use and kept up to 24
/// hours. A call is taken when every `X-Fal-Webhook-*` header is there,
/// its timestamp is within [`TIMESTAMP_TOLERANCE`] of now, and one of the
/// keys verifies its signature over
/// `request_id\nuser_id\ntimestamp\nhex(sha256(body))`.
///
/// ```
/// use kling_http::ApiClient;
///
/// let api = ApiClient::new("fal", "https://queue.fal.run", None)?;
/// let verifier = kling_fal::WebhookVerifier::new(api, "https://rest.fal.ai/.well-known/jwks.json");
/// assert_eq!(verifier.jwks_url(), "https://rest.fal.ai/.well-known/jwks.json");
/// # Ok::<(), kling_core::Error>(())
/// ```
pub struct WebhookVerifier {
    api: ApiClient,
    jwks_url: String,
    keys: Mutex<Keys>,
    /// Held across a fetch: calls that need the keys at once wait for one
    /// fetch instead of each making their own.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl WebhookVerifier {
    /// Fetches keys from `jwks_url` with `api`'s HTTP settings (never with
    /// its key).
    pub fn new(api: ApiClient, jwks_url: impl Into<String>) -> Self {
        WebhookVerifier {
            api,
            jwks_url: jwks_url.into(),
            keys: Mutex::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Where the keys are fetched from.
    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The keys to check with: the kept ones while fetched less than
    /// `stale_after` ago, else fetched again, one fetch at a time and at
    /// most once per [`REFETCH_AT_MOST_EVERY`], whatever callers ask (a
    /// flood of forged calls makes one fetch a minute). A fetch that fails
    /// keeps the keys already known.
    async fn current(&self, stale_after: Duration) -> Result<Vec<[u8; 32]>, String> {
        let fresh = |kept: &Keys| {
            kept.fetched.is_some_and(|at| at.elapsed() < stale_after)
                || kept
                    .tried
                    .is_some_and(|at| at.elapsed() < REFETCH_AT_MOST_EVERY)
        };
        let kept = |kept: &Keys| {
            if kept.known.is_empty() {
                Err(
                    "fal's keys could not be fetched; they are tried again at most once a minute"
                        .to_owned(),
                )
            } else {
                Ok(kept.known.clone())
            }
        };
        {
            let keys = self.keys();
            if fresh(&keys) {
                return kept(&keys);
            }
        }
        let _one_fetch = self.fetching.lock().await;
        {
            // Another call may have fetched while this one waited.
            let keys = self.keys();
            if fresh(&keys) {
                return kept(&keys);
            }
        }
        let fetched = match self.api.get_public(&self.jwks_url).await {
            Ok(jwks) => parse_jwks(&jwks),
            Err(why) => Err(why),
        };
        let mut keys = self.keys();
        keys.tried = Some(Instant::now());
        match fetched {
            Ok(new) => {
                keys.known.clone_from(&new);
                keys.fetched = keys.tried;
                Ok(new)
            }
            Err(why) if keys.known.is_empty() => Err(why),
            Err(_) => Ok(keys.known.clone()),
        }
    }
}

/// The Ed25519 keys of a JWKS (`{"keys": [{"kty": "OKP", "crv":
/// "Ed25519", "x": base64url}]}`); other keys are passed over.
///
/// # Errors
///
/// When it holds no Ed25519 key.
pub(crate) fn parse_jwks(jwks: &Value) -> Result<Vec<[u8; 32]>, String> {
    let keys: Vec<[u8; 32]> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|key| {
            key.get("kty")
                .and_then(Value::as_str)
                .is_none_or(|k| k == "OKP")
                && key
                    .get("crv")
                    .and_then(Value::as_str)
                    .is_none_or(|c| c == "Ed25519")
        })
        .filter_map(|key| key.get("x").and_then(Value::as_str))
        .filter_map(|x| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(x.trim_end_matches('='))
                .ok()
        })
        .filter_map(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .take(MAX_KEYS)
        .collect();
    if keys.is_empty() {
        return Err("the JWKS holds no Ed25519 key".to_owned());
    }
    Ok(keys)
}

/// The bytes fal signs for a call: `request_id\nuser_id\ntimestamp\n`
/// and the body's SHA-256 in lowercase hex.
pub(crate) fn signed_message(
    request_id: &str,
    user_id: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "{request_id}\n{user_id}\n{timestamp}\n{}",
        kling_core::lower_hex(digest.as_ref())
    )
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// What a call's headers say, once each is there and readable.
struct Signed<'a> {
    request_id: &'a str,
    user_id: &'a str,
    timestamp: &'a str,
    signature: Vec<u8>,
}

fn read_headers(headers: &http::HeaderMap, now: SystemTime) -> Result<Signed<'_>, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("no {name} header"))
    };
    let (request_id, user_id, timestamp) =
        (header(REQUEST_ID)?, header(USER_ID)?, header(TIMESTAMP)?);
    let signature = unhex(header(SIGNATURE)?)
        .filter(|bytes| bytes.len() == 64)
        .ok_or_else(|| format!("{SIGNATURE} is not 64 bytes of hex"))?;
    let at: i64 = timestamp
        .parse()
        .map_err(|_| format!("{TIMESTAMP} {timestamp:?} is not Unix seconds"))?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let tolerance = i64::try_from(TIMESTAMP_TOLERANCE.as_secs()).unwrap_or(i64::MAX);
    if now.abs_diff(at) > tolerance.unsigned_abs() {
        return Err(format!(
            "{TIMESTAMP} is {} s from now; at most {tolerance} s is allowed",
            now.abs_diff(at)
        ));
    }
    Ok(Signed {
        request_id,
        user_id,
        timestamp,
        signature,
    })
}

fn verified_by(keys: &[[u8; 32]], message: &[u8], signature: &[u8]) -> bool {
    keys.iter().any(|key| {
        UnparsedPublicKey::new(&ED25519, key)
            .verify(message, signature)
            .is_ok()
    })
}

#[async_trait]
impl CallbackVerifier for WebhookVerifier {
    async fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<(), String> {
        let signed = read_headers(headers, SystemTime::now())?;
        let message = signed_message(signed.request_id, signed.user_id, signed.timestamp, body);
        let keys = self.current(KEYS_KEPT).await?;
        if verified_by(&keys, message.as_bytes(), &signed.signature) {
            return Ok(());
        }
        // Perhaps a key fal has rotated in since: fetch again, not too often.
        let keys = self.current(REFETCH_AT_MOST_EVERY).await?;
        if verified_by(&keys, message.as_bytes(), &signed.signature) {
            return Ok(());
        }
        Err("no published key verifies the signature".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;

    fn key_pair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn headers(pair: &Ed25519KeyPair, at: i64, body: &[u8]) -> http::HeaderMap {
        let timestamp = at.to_string();
        let message = signed_message("req-1", "user-1", &timestamp, body);
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, "req-1".parse().unwrap());
        headers.insert(USER_ID, "user-1".parse().unwrap());
        headers.insert(TIMESTAMP, timestamp.parse().unwrap());
        headers.insert(
            SIGNATURE,
            kling_core::lower_hex(pair.sign(message.as_bytes()).as_ref())
                .parse()
                .unwrap(),
        );
        headers
    }

    fn now() -> i64 {
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
    }

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let (pair, other) = (key_pair(), key_pair());
        let public = <[u8; 32]>::try_from(pair.public_key().as_ref()).unwrap();
        let stranger = <[u8; 32]>::try_from(other.public_key().as_ref()).unwrap();
        let body = br#"{"request_id":"req-1","status":"OK"}"#;
        let headers = headers(&pair, now(), body);
        let signed = read_headers(&headers, SystemTime::now()).unwrap();
        let message = signed_message("req-1", "user-1", signed.timestamp, body);
        assert!(verified_by(
            &[stranger, public],
            message.as_bytes(),
            &signed.signature
        ));
        assert!(!verified_by(
            &[stranger],
            message.as_bytes(),
            &signed.signature
        ));
        // Another body, the same headers: refused.
        let tampered = signed_message("req-1", "user-1", signed.timestamp, b"{}");
        assert!(!verified_by(
            &[public],
            tampered.as_bytes(),
            &signed.signature
        ));
    }

    #[test]
    fn headers_must_all_be_there_and_the_timestamp_recent() {
        let pair = key_pair();
        assert!(read_headers(&headers(&pair, now() - 299, b""), SystemTime::now()).is_ok());
        for at in [now() - 301, now() + 301] {
            let err = read_headers(&headers(&pair, at, b""), SystemTime::now())
                .err()
                .unwrap();
            assert!(err.contains("at most 300 s"), "{err}");
        }
        for name in [REQUEST_ID, USER_ID, TIMESTAMP, SIGNATURE] {
            let mut missing = headers(&pair, now(), b"");
            missing.remove(name);
            let err = read_headers(&missing, SystemTime::now()).err().unwrap();
            assert!(err.contains(name), "{err}");
        }
        let mut short = headers(&pair, now(), b"");
        short.insert(SIGNATURE, "abcd".parse().unwrap());
        assert!(read_headers(&short, SystemTime::now()).is_err());
    }

    #[test]
    fn jwks_keys_are_read_and_others_passed_over() {
        let pair = key_pair();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key());
        let jwks = serde_json::json!({"keys": [
            {"kty": "RSA", "n": "abc", "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "x": "too-short"},
        ]});
        let keys = parse_jwks(&jwks).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].as_slice(), pair.public_key().as_ref());
        assert!(parse_jwks(&serde_json::json!({"keys": []})).is_err());
        assert!(parse_jwks(&serde_json::json!("nothing")).is_err());
    }

    proptest::proptest! {
        /// Any headers and body a stranger sends: read without a panic,
        /// and never taken as signed by a key that did not sign them.
        #[test]
        fn hostile_calls_never_verify(
            request_id in ".{0,40}",
            user_id in ".{0,40}",
            skew in -400_i64..400,
            signature in "[0-9a-fA-F]{0,140}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let pair = key_pair();
            let public = <[u8; 32]>::try_from(pair.public_key().as_ref()).unwrap();
            let mut headers = http::HeaderMap::new();
            let at = (now() + skew).to_string();
            for (name, value) in [
                (REQUEST_ID, request_id.as_str()),
                (USER_ID, user_id.as_str()),
                (TIMESTAMP, at.as_str()),
                (SIGNATURE, signature.as_str()),
            ] {
                if let Ok(value) = value.parse() {
                    headers.insert(name, value);
                }
            }
            if let Ok(signed) = read_headers(&headers, SystemTime::now()) {
                let message = signed_message(signed.request_id, signed.user_id, signed.timestamp, &body);
                proptest::prop_assert!(!verified_by(&[public], message.as_bytes(), &signed.signature));
            }
        }

        /// Any key set: only Ed25519 keys of 32 bytes are kept, at most
        /// `MAX_KEYS`, or it is refused; never a panic.
        #[test]
        fn any_jwks_is_read_or_refused(
            keys in proptest::collection::vec(
                (
                    proptest::option::of("OKP|RSA|EC|.{0,5}"),
                    proptest::option::of("Ed25519|X25519|.{0,8}"),
                    proptest::option::of("[A-Za-z0-9_=+/-]{0,60}"),
                ),
                0..40,
            ),
        ) {
            let jwks = serde_json::json!({ "keys": keys
                .iter()
                .map(|(kty, crv, x)| serde_json::json!({ "kty": kty, "crv": crv, "x": x }))
                .collect::<Vec<_>>() });
            match parse_jwks(&jwks) {
                Ok(found) => proptest::prop_assert!(!found.is_empty() && found.len() <= MAX_KEYS),
                Err(why) => proptest::prop_assert_eq!(why, "the JWKS holds no Ed25519 key"),
            }
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            unhex(&kling_core::lower_hex(&[0, 15, 255])),
            Some(vec![0, 15, 255])
        );
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("é1"), None);
    }
}
