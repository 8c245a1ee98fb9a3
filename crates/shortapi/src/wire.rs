//! ShortAPI's wire format: the create envelope, each model's `args`, and
//! the query answer. `schemars` derives their schemas, which `cargo xtask`
//! compares with the published ones.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /api/v1/job/create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CreateBody<A> {
    /// The model id.
    pub model: String,
    /// The model's arguments.
    pub args: A,
    /// Receives a POST when the job ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// `std` or `pro`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Standard.
    Std,
    /// Professional.
    Pro,
}

/// The video-to-video actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoAction {
    /// A new shot guided by the video.
    Refer,
    /// The video, edited.
    Edit,
}

/// The image-to-video actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageAction {
    /// Animate a first (and last) frame.
    Frame,
    /// Compose from reference images.
    Refer,
}

/// Output aspect ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AspectRatio {
    /// 16:9.
    #[serde(rename = "16:9")]
    Landscape,
    /// 9:16.
    #[serde(rename = "9:16")]
    Portrait,
    /// 1:1.
    #[serde(rename = "1:1")]
    Square,
}

/// An element: a frontal view and other angles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Element {
    /// The frontal image.
    pub frontal_image_url: String,
    /// Other angles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_image_urls: Vec<String>,
}

impl From<kling_core::WireElement> for Element {
    fn from(element: kling_core::WireElement) -> Self {
        Element {
            frontal_image_url: element.frontal_image,
            reference_image_urls: element.reference_images,
        }
    }
}

/// `args` of `kwaivgi/kling-o1/video-to-video`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct O1VideoArgs {
    /// Mode.
    pub mode: Mode,
    /// Action.
    pub action: VideoAction,
    /// Prompt, references written `[@Image1]`.
    pub prompt: String,
    /// The video URL.
    pub video: String,
    /// Reference image URLs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Keep the input's audio; always sent.
    pub keep_audio: bool,
    /// Seconds, as a string ("3" to "10"); not sent for an edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["3", "4", "5", "6", "7", "8", "9", "10"]))]
    pub duration: Option<String>,
    /// Not sent for an edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<AspectRatio>,
}

/// `args` of `kwaivgi/kling-o3/video-to-video`: no `keep_audio`, an integer
/// duration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct O3VideoArgs {
    /// Mode.
    pub mode: Mode,
    /// Action.
    pub action: VideoAction,
    /// Prompt.
    pub prompt: String,
    /// The video URL.
    pub video: String,
    /// Reference image URLs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Seconds, as an integer; not sent for an edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 10))]
    pub duration: Option<u32>,
    /// Not sent for an edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<AspectRatio>,
}

/// `args` of `kwaivgi/kling-o1/image-to-video`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct O1ImageArgs {
    /// Mode.
    pub mode: Mode,
    /// Action.
    pub action: ImageAction,
    /// Prompt.
    pub prompt: String,
    /// Seconds, as a string.
    #[schemars(extend("enum" = ["3", "4", "5", "6", "7", "8", "9", "10"]))]
    pub duration: String,
    /// Frames (first, last) or reference images.
    pub images: Vec<String>,
    /// Elements (refer only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Refer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<AspectRatio>,
}

/// The schema of the body sent to each model, for `cargo xtask schemas`.
pub fn body_schemas() -> Vec<(&'static str, schemars::Schema)> {
    use kling_core::provider::body_schema;
    vec![
        (crate::O1_V2V, body_schema::<CreateBody<O1VideoArgs>>()),
        (crate::O3_V2V, body_schema::<CreateBody<O3VideoArgs>>()),
        (crate::O1_I2V, body_schema::<CreateBody<O1ImageArgs>>()),
    ]
}

/// The create answer.
#[derive(Clone, Debug, Deserialize)]
pub struct CreateAnswer {
    /// 0 on success.
    pub code: i64,
    /// Set on errors (not documented).
    #[serde(default)]
    pub message: Option<String>,
    /// The job.
    #[serde(default)]
    pub data: Option<CreateData>,
}

/// The job a create made.
#[derive(Clone, Debug, Deserialize)]
pub struct CreateData {
    /// The charge, in dollars: a decimal string as documented (`"0.02"`),
    /// kept as it came so that a number instead cannot make the answer,
    /// and the job id it carries, unreadable.
    #[serde(default)]
    pub amount: Option<serde_json::Value>,
    /// The job id.
    pub job_id: String,
}

/// The query answer, also the callback's body.
#[derive(Clone, Debug, Deserialize)]
pub struct QueryAnswer {
    /// 0 on success.
    pub code: i64,
    /// Set on errors.
    #[serde(default)]
    pub message: Option<String>,
    /// The job's state.
    #[serde(default)]
    pub data: Option<QueryData>,
}

/// A job's state.
#[derive(Clone, Debug, Deserialize)]
pub struct QueryData {
    /// 0 pending, 1 running, 2 succeeded, other failed.
    pub status: i64,
    /// The result, once succeeded.
    #[serde(default)]
    pub result: Option<QueryResult>,
    /// Whether a failed job was refunded (seen in clients, not documented).
    #[serde(default)]
    pub refunded: Option<bool>,
    /// A failure's reason, when given.
    #[serde(default)]
    pub message: Option<String>,
}

/// Result files.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct QueryResult {
    /// Videos.
    #[serde(default)]
    pub videos: Vec<UrlItem>,
    /// The image-to-video page shows results here.
    #[serde(default)]
    pub images: Vec<UrlItem>,
}

/// `{url}`.
#[derive(Clone, Debug, Deserialize)]
pub struct UrlItem {
    /// The file's URL.
    pub url: String,
}
