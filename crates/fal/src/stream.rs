//! fal's status stream (`…/requests/{id}/status/stream`): server-sent
//! events, each the request's status as the status endpoint gives it,
//! until it is `COMPLETED`.

use std::time::Duration;

use futures_util::StreamExt as _;
use kling_http::ApiClient;
use kling_http::sse::SseParser;
use serde_json::Value;

/// How long the stream may say nothing (fal sends `: ping` comments
/// while a request runs) before it counts as lost.
pub const DEFAULT_SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// Follows the stream at `path` until it reports `COMPLETED`; that status
/// as fal sent it, or `None` when the stream could not open, ended, broke
/// or went quiet for `silence` first.
pub(crate) async fn until_completed(
    api: &ApiClient,
    path: &str,
    silence: Duration,
) -> Option<Value> {
    // A stream that cannot open is not an error: the wait polls instead.
    let response = api.open_stream(path).await.ok()?;
    let mut bytes = response.bytes_stream();
    let mut parser = SseParser::default();
    loop {
        let chunk = tokio::time::timeout(silence, bytes.next())
            .await
            .ok()??
            .ok()?;
        for event in parser.push(&chunk) {
            let Ok(status) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if status.get("status").and_then(Value::as_str) == Some("COMPLETED") {
                return Some(status);
            }
        }
    }
}
