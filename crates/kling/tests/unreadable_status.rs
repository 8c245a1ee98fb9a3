//! A status answer that cannot be read says nothing of the job: the wait
//! asks again, and gives up only when several in a row are unreadable.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use kling::provider::{Capabilities, Offering, PreparedCall, Provider};
use kling::{
    Checked, Client, Error, JobHandle, JobState, JobStatus, Model, Task, WaitOptions, WaitPolicy,
};

const CAPS: Capabilities =
    Capabilities::new("scripted", &[Offering::new(Task::Edit, Model::O1, "e")]);

/// A provider whose status answers follow a script: `None` is an answer
/// that cannot be read, `Some` a readable one.
#[derive(Debug)]
struct Scripted {
    answers: Mutex<Vec<Option<JobState>>>,
    asked: Mutex<u32>,
}

impl Scripted {
    fn new(mut answers: Vec<Option<JobState>>) -> Self {
        answers.reverse();
        Scripted {
            answers: Mutex::new(answers),
            asked: Mutex::new(0),
        }
    }
}

#[async_trait]
impl Provider for Scripted {
    fn capabilities(&self) -> &Capabilities {
        &CAPS
    }
    fn prepare(&self, _: &Checked) -> Result<PreparedCall, Error> {
        Err(Error::unsupported("scripted", "creating jobs"))
    }
    async fn submit(&self, _: &Checked) -> Result<JobHandle, Error> {
        Err(Error::unsupported("scripted", "creating jobs"))
    }
    async fn status(&self, _: &JobHandle) -> Result<JobStatus, Error> {
        *self.asked.lock().unwrap() += 1;
        match self.answers.lock().unwrap().pop().flatten() {
            Some(state) => Ok(JobStatus::new(state, serde_json::Value::Null)),
            None => Err(Error::protocol("scripted", "not a status", "<html>")),
        }
    }
}

fn quick() -> WaitOptions {
    WaitOptions::default()
        .policy(WaitPolicy {
            first_check: Duration::from_millis(1),
            growth: 1.0,
            max_interval: Duration::from_millis(1),
            jitter: 0.0,
            while_pushing: Duration::from_millis(1),
        })
        .deadline(Duration::from_secs(10))
}

fn done() -> JobState {
    JobState::Succeeded {
        outputs: vec!["https://cdn.example/out.mp4".to_owned()],
    }
}

#[tokio::test]
async fn unreadable_answers_are_asked_again() {
    let provider = std::sync::Arc::new(Scripted::new(vec![
        Some(JobState::Running),
        None,
        None,
        Some(JobState::Running),
        None,
        Some(done()),
    ]));
    let client = Client::from_arc(provider.clone());
    let status = client
        .wait(&JobHandle::new("scripted", "1"), &quick())
        .await
        .unwrap();
    assert_eq!(status.state, done());
    assert_eq!(*provider.asked.lock().unwrap(), 6);
}

#[tokio::test]
async fn a_run_of_unreadable_answers_ends_the_wait_with_the_last() {
    let provider = std::sync::Arc::new(Scripted::new(vec![None, None, None, None, Some(done())]));
    let client = Client::from_arc(provider.clone());
    let err = client
        .wait(&JobHandle::new("scripted", "1"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert_eq!(
        *provider.asked.lock().unwrap(),
        4,
        "three tolerated, the fourth ends it"
    );
}
