//! Request bodies read from disk as they are sent: memory stays at one
//! chunk whatever the file's size.

use futures_util::Stream;
use tokio::io::AsyncReadExt as _;

/// How much of a file is held at once while it is sent.
const CHUNK: usize = 64 * 1024;

/// `file`'s bytes as a request body, read a chunk at a time as it is sent.
/// The body fails (and the request with it) when the file does not hold
/// exactly `len` bytes: a file that grew or shrank meanwhile is not sent
/// half old, half new.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let file = tokio::fs::File::open("clip.mp4").await?;
/// let len = file.metadata().await?.len();
/// let request = reqwest::Client::new()
///     .post("http://127.0.0.1:8787/uploads")
///     .header(reqwest::header::CONTENT_LENGTH, len)
///     .body(kling_http::file_body(file, len));
/// # let _ = request;
/// # Ok(())
/// # }
/// ```
pub fn file_body(file: tokio::fs::File, len: u64) -> reqwest::Body {
    reqwest::Body::wrap_stream(chunks(file, len))
}

fn chunks(
    file: tokio::fs::File,
    len: u64,
) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold((file, 0u64), move |(mut file, sent)| async move {
        let mut chunk = vec![0; CHUNK];
        let read = file.read(&mut chunk).await?;
        let total = sent + read as u64;
        if read == 0 {
            if sent != len {
                return Err(changed(len, sent));
            }
            return Ok(None);
        }
        if total > len {
            return Err(changed(len, total));
        }
        chunk.truncate(read);
        Ok(Some((chunk, (file, total))))
    })
}

fn changed(expected: u64, found: u64) -> std::io::Error {
    std::io::Error::other(format!(
        "the file changed while it was sent: {expected} bytes expected, {found} read"
    ))
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt as _;

    use super::*;

    async fn send(bytes: &[u8], len: u64) -> Result<Vec<u8>, std::io::Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let parts: Vec<Vec<u8>> = chunks(file, len).try_collect().await?;
        assert!(parts.iter().all(|p| p.len() <= CHUNK));
        Ok(parts.concat())
    }

    #[tokio::test]
    async fn a_file_is_sent_whole_in_chunks_and_a_changed_one_fails() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(send(&bytes, 200_000).await.unwrap(), bytes);
        assert_eq!(send(b"", 0).await.unwrap(), b"");
        // Shorter or longer than announced: the body fails.
        let short = send(&bytes, 200_001).await.unwrap_err();
        assert!(short.to_string().contains("changed"), "{short}");
        assert!(send(&bytes, 199_999).await.is_err());
    }
}
