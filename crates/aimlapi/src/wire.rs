//! AI/ML API's wire format: one create body per model on
//! `POST /v2/video/generations`, and the generation it answers with.
//! `schemars` derives their schemas, which `cargo xtask` compares with the
//! published ones.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which backend runs the job: AI/ML API's `provider` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Route {
    /// Kling's own API, with no fallback.
    Kling,
    /// The fal.ai mirror.
    Fal,
    /// Kling, falling back to fal.ai (AI/ML API's default).
    Auto,
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

/// A character or object seen from several angles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Element {
    /// The main view.
    pub frontal_image_url: String,
    /// Other angles, 1 to 4.
    #[schemars(length(min = 1, max = 4))]
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

/// `klingai/video-o1-video-to-video-edit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EditBody {
    /// The model id.
    pub model: String,
    /// The instruction, with `@Video1`-style references.
    #[schemars(length(max = 2500))]
    pub prompt: String,
    /// The video, by URL or as a `data:` URI.
    pub video_url: String,
    /// Reference images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 7))]
    pub image_list: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub elements: Vec<Element>,
    /// Keep the input's audio; always sent.
    pub keep_audio: bool,
    /// The backend, when chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Route>,
}

/// `klingai/video-o1-video-to-video-reference`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct VideoReferenceBody {
    /// The model id.
    pub model: String,
    /// The instruction.
    #[schemars(length(max = 2500))]
    pub prompt: String,
    /// The reference video.
    pub video_url: String,
    /// Reference images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 4))]
    pub image_list: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub elements: Vec<Element>,
    /// Keep the input's audio; always sent.
    pub keep_audio: bool,
    /// Output aspect ratio; always sent.
    pub aspect_ratio: AspectRatio,
    /// Output length in seconds: 5 or 10.
    #[schemars(extend("enum" = [5, 10]))]
    pub duration: u32,
    /// The backend, when chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Route>,
}

/// `klingai/video-o1-reference-to-video`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ImageReferenceBody {
    /// The model id.
    pub model: String,
    /// The instruction.
    #[schemars(length(max = 2500))]
    pub prompt: String,
    /// Reference images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 7))]
    pub image_list: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub elements: Vec<Element>,
    /// Output aspect ratio; always sent.
    pub aspect_ratio: AspectRatio,
    /// Output length in seconds: 5 or 10.
    #[schemars(extend("enum" = [5, 10]))]
    pub duration: u32,
    /// The backend, when chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Route>,
}

/// `klingai/video-o1-image-to-video`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FramesBody {
    /// The model id.
    pub model: String,
    /// The instruction.
    #[schemars(length(max = 2500))]
    pub prompt: String,
    /// The first frame.
    pub image_url: String,
    /// The last frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_image_url: Option<String>,
    /// Output length in seconds: 5 or 10.
    #[schemars(extend("enum" = [5, 10]))]
    pub duration: u32,
    /// The backend, when chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Route>,
}

/// The schema of the body sent to each model, for `cargo xtask schemas`.
pub fn body_schemas() -> Vec<(&'static str, schemars::Schema)> {
    use kling_core::provider::body_schema;
    vec![
        (crate::EDIT, body_schema::<EditBody>()),
        (crate::VIDEO_REFERENCE, body_schema::<VideoReferenceBody>()),
        (crate::IMAGE_REFERENCE, body_schema::<ImageReferenceBody>()),
        (crate::FRAMES, body_schema::<FramesBody>()),
    ]
}

/// A generation, as create and status answer it.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
pub struct Generation {
    /// The id, with `:model` appended.
    pub id: String,
    /// `queued`, `generating`, `completed` or `error`.
    pub status: String,
    /// The result, once completed.
    #[serde(default)]
    pub video: Option<Video>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<Failure>,
}

/// A generated video.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct Video {
    /// Where to download it.
    pub url: String,
}

/// A failed generation's reason.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct Failure {
    /// The error's kind.
    pub name: String,
    /// What happened.
    pub message: String,
}
