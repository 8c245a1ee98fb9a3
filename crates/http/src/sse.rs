//! Server-sent events: a parser for the `text/event-stream` format.

/// One event: its type (`message` when none was given) and its data lines
/// joined with `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: String,
    /// The `data:` lines.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// Turns chunks of a stream, split anywhere, into events. Comments (`:
/// keep-alive`) produce nothing.
///
/// ```
/// use kling_http::sse::SseParser;
///
/// let mut parser = SseParser::default();
/// assert!(parser.push(b"event: done\ndata: {\"a\"").is_empty());
/// let events = parser.push(b":1}\n\n: keep-alive\n\n");
/// assert_eq!(events[0].event, "done");
/// assert_eq!(events[0].data, "{\"a\":1}");
/// ```
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    /// Bytes held in `data`.
    data_len: usize,
    /// Set when the event being read grew past [`MAX_LINE`]: it is
    /// dropped whole at its end.
    oversized: bool,
    id: Option<String>,
}

/// The most a single line may hold before the stream is treated as broken
/// (guards memory against a stream that never sends a newline).
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(event) = self.line(line) {
                events.push(event);
            }
        }
        if self.pending.len() > MAX_LINE {
            self.pending.clear();
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let oversized = std::mem::take(&mut self.oversized);
            self.data_len = 0;
            if oversized {
                self.data.clear();
                self.event = None;
                self.id = None;
                return None;
            }
            if self.data.is_empty() && self.event.is_none() {
                return None;
            }
            return Some(SseEvent {
                event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                data: std::mem::take(&mut self.data).join("\n"),
                id: self.id.take(),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            // An event's data is bounded as a line is: a stream that never
            // ends its event is not held in memory.
            "data" if self.oversized => {}
            "data" if self.data_len + value.len() > MAX_LINE => {
                self.oversized = true;
                self.data.clear();
            }
            "data" => {
                self.data_len += value.len() + 1;
                self.data.push(value.to_owned());
            }
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_without_end_is_bounded_and_dropped() {
        let mut parser = SseParser::default();
        let line = format!("data: {}\n", "x".repeat(1000));
        for _ in 0..2000 {
            assert!(parser.push(line.as_bytes()).is_empty());
        }
        assert!(parser.data_len <= MAX_LINE, "{}", parser.data_len);
        // The oversized event is dropped at its end; the next one comes.
        assert!(parser.push(b"\n").is_empty());
        let events = parser.push(b"data: ok\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "ok");
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b"event: media_generation_completed\r\ndata: {\"generation_id\":\"g1\"}\r\n\r\n: keep-alive\n\nevent: other\ndata: x\ndata: y\nid: 7\n\n";
        for split in 0..stream.len() {
            let mut parser = SseParser::default();
            let mut events = parser.push(&stream[..split]);
            events.extend(parser.push(&stream[split..]));
            assert_eq!(
                events,
                [
                    SseEvent {
                        event: "media_generation_completed".into(),
                        data: "{\"generation_id\":\"g1\"}".into(),
                        id: None
                    },
                    SseEvent {
                        event: "other".into(),
                        data: "x\ny".into(),
                        id: Some("7".into())
                    },
                ],
                "split at {split}"
            );
        }
    }
}
