//! fal's wire format: the input of each Kling endpoint, the queue's
//! answers (submit, status, result), its storage's upload answer and the
//! webhook's body. `schemars` derives the inputs' schemas, which `cargo
//! xtask` compares with the ones transcribed from fal's pages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A character or object seen from several angles (fal's
/// `OmniVideoElementInput`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Element {
    /// The main view.
    pub frontal_image_url: String,
    /// Other angles, 1 to 3.
    #[schemars(length(min = 1, max = 3))]
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

/// The input of `…/video-to-video/edit`, O1 and O3, std and pro.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EditInput {
    /// The instruction, with `@Video1`, `@Image1`, `@Element1`.
    pub prompt: String,
    /// The video's URL.
    pub video_url: String,
    /// Reference images (`@Image1`…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_urls: Vec<String>,
    /// Elements (`@Element1`…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Keep the input's audio: always sent, since fal's default differs
    /// between O1 (false) and O3 (true).
    pub keep_audio: bool,
}

/// The input of `…/video-to-video/reference`: a new shot guided by a
/// video.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReferInput {
    /// The instruction.
    pub prompt: String,
    /// The guiding video's URL (`@Video1`).
    pub video_url: String,
    /// Reference images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_urls: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Keep the guiding video's audio: always sent.
    pub keep_audio: bool,
    /// `16:9`, `9:16` or `1:1`.
    #[schemars(extend("enum" = ["16:9", "9:16", "1:1"]))]
    pub aspect_ratio: String,
    /// Output length in seconds, as text: `"3"` to `"10"`.
    #[schemars(extend("enum" = DURATIONS))]
    pub duration: String,
}

/// The input of `o1/image-to-video`: first and last frames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FramesInput {
    /// The instruction (`@Image1` is the first frame, `@Image2` the last).
    pub prompt: String,
    /// The first frame.
    pub start_image_url: String,
    /// The last frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_image_url: Option<String>,
    /// Output length in seconds, as text: `"3"` to `"10"`.
    #[schemars(extend("enum" = DURATIONS))]
    pub duration: String,
}

/// The input of `o1/reference-to-video`: a clip composed from images and
/// elements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ComposeInput {
    /// The instruction.
    pub prompt: String,
    /// Reference images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_urls: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// `16:9`, `9:16` or `1:1`.
    #[schemars(extend("enum" = ["16:9", "9:16", "1:1"]))]
    pub aspect_ratio: String,
    /// Output length in seconds, as text: `"3"` to `"10"`.
    #[schemars(extend("enum" = DURATIONS))]
    pub duration: String,
}

/// The durations fal's O1 endpoints publish, as the text they take.
const DURATIONS: [&str; 8] = ["3", "4", "5", "6", "7", "8", "9", "10"];

/// Each endpoint's input schema, for `cargo xtask schemas` and `check`:
/// one per pro endpoint, whose std twin takes the same input.
pub fn body_schemas() -> Vec<(&'static str, schemars::Schema)> {
    use kling_core::provider::body_schema;
    vec![
        (crate::O1_EDIT, body_schema::<EditInput>()),
        (crate::O1_REFER, body_schema::<ReferInput>()),
        (crate::O1_FRAMES, body_schema::<FramesInput>()),
        (crate::O1_COMPOSE, body_schema::<ComposeInput>()),
        (crate::O3_EDIT, body_schema::<EditInput>()),
        (crate::O3_REFER, body_schema::<ReferInput>()),
    ]
}

/// The answer to a submit.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Submitted {
    /// The request's id in the queue.
    pub(crate) request_id: String,
}

/// A status answer (`…/requests/{id}/status`), also each event of the
/// status stream. Only `status` must have its published type: the rest is
/// read as it comes, so that an unexpected shape of a detail never makes a
/// status unreadable.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct QueueStatus {
    /// `IN_QUEUE`, `IN_PROGRESS` or `COMPLETED`.
    pub(crate) status: String,
    /// Why a `COMPLETED` request failed: text, or details.
    #[serde(default)]
    pub(crate) error: Option<Value>,
    /// The kind of failure (`client_cancelled`, `request_timeout`…).
    #[serde(default)]
    pub(crate) error_type: Option<Value>,
}

/// A result (`…/requests/{id}`): the endpoint's output.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Output {
    /// The made video.
    pub(crate) video: File,
}

/// A file fal serves.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct File {
    /// Where it is.
    pub(crate) url: String,
}

/// The answer to `storage/upload/initiate`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct UploadSlot {
    /// Where to PUT the bytes (presigned).
    pub(crate) upload_url: String,
    /// Where the file is read from once put.
    pub(crate) file_url: String,
}
