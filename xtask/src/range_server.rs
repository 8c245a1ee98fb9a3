//! A file served over HTTP on loopback, honouring single `Range`s, counting
//! the requests and bytes it answers: what a CDN or a bucket does, for the
//! remote probe's figures.

use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A server of one file, on a thread per connection, until the process
/// ends.
pub(crate) struct RangeServer {
    pub(crate) url: String,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl RangeServer {
    pub(crate) fn start(file: &Path) -> Result<RangeServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let counts = Arc::new(Counts::default());
        let (path, shared) = (file.to_owned(), Arc::clone(&counts));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (path, counts) = (path.clone(), Arc::clone(&shared));
                std::thread::spawn(move || {
                    let _ = answer(stream, &path, &counts);
                });
            }
        });
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Ok(RangeServer {
            url: format!("http://{addr}/{name}"),
            counts,
        })
    }

    /// Requests and body bytes sent since the last call.
    pub(crate) fn take_counts(&self) -> (u64, u64) {
        (
            self.counts.requests.swap(0, Ordering::SeqCst),
            self.counts.bytes.swap(0, Ordering::SeqCst),
        )
    }
}

/// Answers the requests of one connection, which it closes after each.
fn answer(stream: TcpStream, path: &PathBuf, counts: &Counts) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut range = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = value.trim().strip_prefix("bytes=").and_then(|r| {
                let (start, end) = r.split_once('-')?;
                Some((start.parse::<u64>().ok()?, end.parse::<u64>().ok()))
            });
        }
    }
    counts.requests.fetch_add(1, Ordering::SeqCst);
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut out = stream;
    let last = len.checked_sub(1);
    let (start, end, head) = match (range, last) {
        (Some((start, end)), Some(last)) if start <= last && end.is_none_or(|end| end >= start) => {
            let end = end.map_or(last, |e| e.min(last));
            (
                start,
                end,
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{len}\r\n"
                ),
            )
        }
        (Some(_), _) | (None, None) => {
            write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        (None, Some(last)) => (0, last, "HTTP/1.1 200 OK\r\n".to_owned()),
    };
    write!(
        out,
        "{head}Content-Type: video/mp4\r\nAccept-Ranges: bytes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        end + 1 - start
    )?;
    file.seek(SeekFrom::Start(start))?;
    let mut left = end + 1 - start;
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        // A client that has what it needs closes the connection: what it
        // took is what was counted.
        out.write_all(&buf[..n])?;
        counts.bytes.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
    }
    Ok(())
}
