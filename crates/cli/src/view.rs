//! What a running job shows on stderr: its submission, then a progress
//! line (a bar on a terminal). Every text from outside is escaped.

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
    label: Option<String>,
}

impl View {
    pub(crate) fn labelled(label: String) -> Self {
        View {
            progress: Mutex::new(None),
            label: Some(label),
        }
    }

    pub(crate) fn observer(self: &Arc<Self>) -> kling_ledger::Observer {
        let view = Arc::clone(self);
        Arc::new(move |event: &Event| view.show(event))
    }

    fn start(&self, name: &str) {
        // A labelled view shows many jobs at once: lines, no bar.
        if self.label.is_some() {
            return;
        }
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.is_none() {
            *progress = Some(Progress::new(&escaped(name)));
        }
    }

    fn show(&self, event: &Event) {
        let label = self
            .label
            .as_deref()
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
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
