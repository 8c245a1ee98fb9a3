//! Oxen's event stream (`GET /api/events`), read in the background.
//!
//! Oxen does not replay events, so the stream is opened before a job is
//! enqueued and kept open; completions are kept until someone waits for
//! them. When the stream ends, errors or says nothing (not even its 15 s
//! keep-alive) for too long, waiters are told it is lost and go back to
//! polling; the next wait opens it again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use kling_core::JobStatus;
use kling_core::provider::Pushed;
use kling_http::ApiClient;
use kling_http::sse::SseParser;
use tokio::sync::Notify;

const PATH: &str = "/api/events";
const COMPLETED: &str = "media_generation_completed";
/// Completions kept for jobs nobody waits for yet: the stream reports
/// every job of the account, including other programs'.
const KEPT: usize = 4096;

#[derive(Debug, Default)]
struct Inner {
    connected: bool,
    ended: HashMap<String, JobStatus>,
    order: VecDeque<String>,
}

#[derive(Debug, Default)]
struct Shared {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, id: String, status: JobStatus) {
        let mut inner = self.lock();
        if inner.ended.insert(id.clone(), status).is_none() {
            inner.order.push_back(id);
        }
        while inner.order.len() > KEPT {
            if let Some(old) = inner.order.pop_front() {
                inner.ended.remove(&old);
            }
        }
        drop(inner);
        self.notify.notify_waiters();
    }
}

/// Marks the stream lost when its reader stops, however it stops (the end
/// of the stream, an error, or its runtime shutting down).
struct Disconnect(Arc<Shared>);

impl Drop for Disconnect {
    fn drop(&mut self) {
        self.0.lock().connected = false;
        self.0.notify.notify_waiters();
    }
}

/// The event stream of one account.
#[derive(Debug)]
pub(crate) struct Events {
    api: ApiClient,
    silence: Duration,
    shared: Arc<Shared>,
    opening: tokio::sync::Mutex<()>,
    reader: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Events {
    /// The reader stops with the adapter: nobody is left to wait.
    fn drop(&mut self) {
        if let Some(reader) = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            reader.abort();
        }
    }
}

impl Events {
    pub(crate) fn new(api: ApiClient, silence: Duration) -> Self {
        Events {
            api,
            silence,
            shared: Arc::default(),
            opening: tokio::sync::Mutex::new(()),
            reader: Mutex::new(None),
        }
    }

    fn connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Opens the stream unless it is open; returns whether it is. The
    /// stream counts as open once its answer's headers have arrived: from
    /// then on the server sends it every event.
    pub(crate) async fn subscribe(&self) -> bool {
        let _one_at_a_time = self.opening.lock().await;
        if self.connected() {
            return true;
        }
        let Ok(response) = self.api.open_stream(PATH).await else {
            return false;
        };
        self.shared.lock().connected = true;
        let disconnect = Disconnect(Arc::clone(&self.shared));
        let silence = self.silence;
        let reader = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut parser = SseParser::default();
            while let Ok(Some(Ok(chunk))) = tokio::time::timeout(silence, body.next()).await {
                for event in parser.push(&chunk) {
                    if event.event != COMPLETED {
                        continue;
                    }
                    // A malformed event is skipped: polling still sees the job.
                    if let Ok((id, status)) = crate::parse_event(&event.data) {
                        disconnect.0.keep(id, status);
                    }
                }
            }
            drop(disconnect);
        });
        *self.reader.lock().unwrap_or_else(PoisonError::into_inner) = Some(reader.abort_handle());
        true
    }

    /// Waits until the stream reports that `id` ended, or is lost.
    pub(crate) async fn wait_for(&self, id: &str) -> Pushed {
        if !self.subscribe().await {
            return Pushed::Lost;
        }
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.shared.lock();
                if let Some(status) = inner.ended.remove(id) {
                    inner.order.retain(|kept| kept != id);
                    return Pushed::Ended(status);
                }
                if !inner.connected {
                    return Pushed::Lost;
                }
            }
            notified.await;
        }
    }
}
