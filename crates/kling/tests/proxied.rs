//! The caller's HTTP settings: a job created, waited for and downloaded
//! through an HTTP proxy that wants credentials, set once as a
//! `ClientSettings` on the adapter's API client and on the facade's
//! downloads.

#![cfg(feature = "shortapi")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kling::{ApiClient, Client, ClientSettings, EditRequest, Media, Request, WaitOptions};
use kling_sandbox::{Config, Provider as Emulated, Sandbox};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// `user:secret`, as a `Proxy-Authorization: Basic` value.
const CREDENTIALS: &str = "Basic dXNlcjpzZWNyZXQ=";

/// What the proxy saw.
#[derive(Default)]
struct Seen {
    /// Request lines forwarded (method and absolute URL).
    forwarded: Mutex<Vec<String>>,
    /// Requests refused for want of the right credentials.
    refused: AtomicU32,
}

/// A plain-HTTP forward proxy on loopback that asks for credentials, one
/// request per connection.
async fn proxy() -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let shared = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let seen = Arc::clone(&shared);
            tokio::spawn(async move {
                let _ = forward(client, &seen).await;
            });
        }
    });
    (format!("http://{address}"), seen)
}

async fn forward(client: TcpStream, seen: &Seen) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let mut line = String::new();
    client.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut headers = Vec::new();
    let (mut authorized, mut length) = (false, 0_usize);
    loop {
        let mut header = String::new();
        client.read_line(&mut header).await?;
        if header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.to_ascii_lowercase().as_str() {
            "proxy-authorization" => authorized = value.trim() == CREDENTIALS,
            "connection" | "proxy-connection" => {}
            lower => {
                if lower == "content-length" {
                    length = value.trim().parse().unwrap_or(0);
                }
                headers.push(header);
            }
        }
    }
    let mut body = vec![0; length];
    client.read_exact(&mut body).await?;
    if !authorized {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        let refusal = "HTTP/1.1 407 Proxy Authentication Required\r\n\
                       Proxy-Authenticate: Basic realm=\"test\"\r\n\
                       Content-Length: 0\r\nConnection: close\r\n\r\n";
        return client.get_mut().write_all(refusal.as_bytes()).await;
    }
    let url = reqwest::Url::parse(target).map_err(std::io::Error::other)?;
    seen.forwarded
        .lock()
        .unwrap()
        .push(format!("{method} {target}"));
    let mut upstream = TcpStream::connect((
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80),
    ))
    .await?;
    let path = &url[url::Position::BeforePath..];
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for header in headers {
        head.push_str(&header);
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).await?;
    upstream.write_all(&body).await?;
    tokio::io::copy(&mut upstream, client.get_mut()).await?;
    Ok(())
}

fn through(proxy: &str, password: &str) -> ClientSettings {
    let proxy = reqwest::Proxy::http(proxy)
        .unwrap()
        .basic_auth("user", password);
    ClientSettings::from_builder(move || kling_http::client_builder().proxy(proxy.clone()))
}

/// A client for the sandbox's ShortAPI whose API calls go through `settings`.
fn client_through(sandbox: &Sandbox, settings: &ClientSettings) -> Client {
    let api = ApiClient::new(
        "shortapi",
        &sandbox.url(Emulated::ShortApi),
        Some("k".into()),
    )
    .unwrap()
    .with_settings(settings)
    .unwrap();
    Client::from_arc((kling::shortapi::DESCRIPTOR.build)(api))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_goes_through_the_callers_authenticated_proxy() {
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::ZERO))
        .await
        .unwrap();
    let (proxy, seen) = proxy().await;
    let settings = through(&proxy, "secret");
    let client = client_through(&sandbox, &settings).with_http(settings.clone());
    let request = Request::from(EditRequest::new(
        Media::url("https://media.example/in.mp4"),
        "Make it snow on @Video1",
    ));
    let job = client
        .submit(&client.validate(&request).unwrap())
        .await
        .unwrap();
    let wait = WaitOptions::default().policy(kling::WaitPolicy {
        first_check: Duration::ZERO,
        ..kling::WaitPolicy::default()
    });
    let done = client.wait(&job, &wait).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bytes = client
        .download(&job, &done, &dir.path().join("out.mp4"))
        .await
        .unwrap();
    assert!(bytes > 0);

    let forwarded = seen.forwarded.lock().unwrap().clone();
    let went = |what: &str| forwarded.iter().any(|line| line.contains(what));
    assert!(went("POST ") && went("/job/create"), "{forwarded:?}");
    assert!(went("/job/query"), "{forwarded:?}");
    assert!(
        went("GET ") && went("/files/"),
        "the download too: {forwarded:?}"
    );
    assert_eq!(seen.refused.load(Ordering::SeqCst), 0);
    let stats = sandbox.stats().of(Emulated::ShortApi);
    assert_eq!((stats.creates, stats.downloads), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_proxy_credentials_fail_the_create_before_it_reaches_the_provider() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let (proxy, seen) = proxy().await;
    let client = client_through(&sandbox, &through(&proxy, "wrong"));
    let request = Request::from(EditRequest::new(
        Media::url("https://media.example/in.mp4"),
        "Make it snow on @Video1",
    ));
    let err = client
        .submit(&client.validate(&request).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("407"), "{err}");
    assert!(!err.may_have_been_sent(), "the proxy refused it: {err}");
    assert_eq!(seen.refused.load(Ordering::SeqCst), 1);
    assert_eq!(sandbox.stats().of(Emulated::ShortApi).creates, 0);
}
