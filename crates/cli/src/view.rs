//! What a running job shows on stderr: its submission, then a progress
//! line (a bar on a terminal). Every text from outside is escaped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kling_ledger::Event;

use crate::progress::Progress;
use crate::text::escaped;

/// What a running job shows on stderr: its submission, then a progress
/// line (a bar on a terminal).
#[derive(Default)]
pub(crate) struct View {
    progress: Mutex<Option<Progress>>,
    /// A label before each line (a batch's line number).
    label: Label,
}

/// What each line of a view starts with.
#[derive(Default)]
enum Label {
    /// Nothing: one job, with a bar on a terminal.
    #[default]
    None,
    /// The same label for every event.
    Fixed(String),
    /// A batch's line number, by row.
    Lines(HashMap<i64, i64>),
}

impl View {
    pub(crate) fn labelled(label: String) -> Self {
        View {
            progress: Mutex::new(None),
            label: Label::Fixed(label),
        }
    }

    /// A view of many rows at once, each labelled with its batch line
    /// (`lines`: row to line number).
    pub(crate) fn lines(lines: HashMap<i64, i64>) -> Self {
        View {
            progress: Mutex::new(None),
            label: Label::Lines(lines),
        }
    }

    pub(crate) fn observer(self: &Arc<Self>) -> kling_ledger::Observer {
        let view = Arc::clone(self);
        Arc::new(move |event: &Event| view.show(event))
    }

    fn start(&self, name: &str) {
        // A labelled view shows many jobs at once: lines, no bar.
        if !matches!(self.label, Label::None) {
            return;
        }
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.is_none() {
            *progress = Some(Progress::new(&escaped(name)));
        }
    }

    fn show(&self, event: &Event) {
        let label = match &self.label {
            Label::None => String::new(),
            Label::Fixed(label) => format!("{label}: "),
            Label::Lines(lines) => match event_intent(event).and_then(|i| lines.get(&i)) {
                Some(line) => format!("line {line}: "),
                None => event_intent(event).map_or_else(String::new, |i| format!("intent #{i}: ")),
            },
        };
        match event {
            Event::Submitted { job, .. } => {
                eprintln!("{label}job {} submitted", escaped(&job.to_string()));
                self.start(&job.to_string());
            }
            Event::Reconciled { job, .. } => {
                eprintln!(
                    "{label}found {} at the provider (its create's answer was lost)",
                    escaped(&job.to_string())
                );
                self.start(&job.to_string());
            }
            Event::WaitingForOther { intent, owner } => {
                eprintln!(
                    "{label}intent #{intent} is being worked by another process ({}); waiting",
                    escaped(owner)
                );
            }
            Event::Status { status, .. } => {
                if let Some(progress) =
                    &*self.progress.lock().unwrap_or_else(PoisonError::into_inner)
                {
                    progress.state(&escaped(status.state.name()));
                }
            }
            Event::Downloading { written, total, .. } => {
                if let Some(progress) =
                    &*self.progress.lock().unwrap_or_else(PoisonError::into_inner)
                {
                    progress.bytes(*written, *total);
                }
            }
            Event::Started { state, intent } if state.has_job() => {
                self.start(&format!("intent #{intent}"));
            }
            _ => {}
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(progress) = &*self.progress.lock().unwrap_or_else(PoisonError::into_inner) {
            progress.finish();
        }
    }
}

/// The row an event is about.
fn event_intent(event: &Event) -> Option<i64> {
    match event {
        Event::Started { intent, .. }
        | Event::WaitingForOther { intent, .. }
        | Event::Submitted { intent, .. }
        | Event::Reconciled { intent, .. }
        | Event::Status { intent, .. }
        | Event::Downloading { intent, .. } => Some(*intent),
        _ => None,
    }
}
