//! Oxen.ai's wire format: the queue's create body per model (the model's
//! parameters merged into the queue envelope), the generation it reports,
//! and the completion event. `schemars` derives their schemas, which
//! `cargo xtask` compares with the published ones.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A character or object seen from several angles. Oxen publishes the
/// field as objects without naming their keys; these are Kling's (fal's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Element {
    /// The main view.
    pub frontal_image_url: String,
    /// Other angles, 1 to 4.
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

/// `kling-video-o1-video-to-video-edit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EditBody {
    /// The model id.
    pub model: String,
    /// The instruction, with `@Video1`-style references.
    pub prompt: String,
    /// The video's URL.
    pub input_video: String,
    /// Reference images (`@Image1`…), sent even when empty, as Oxen's
    /// examples do.
    pub input_image: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Keep the input's audio; always sent, as Oxen's pages disagree on
    /// its default.
    pub keep_audio: bool,
}

/// `kling-video-o1-image-to-video`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FramesBody {
    /// The model id.
    pub model: String,
    /// The instruction.
    pub prompt: String,
    /// The first frame's URL.
    pub input_image: String,
    /// The last frame's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_image_url: Option<String>,
    /// Output length in seconds: 5 or 10.
    #[schemars(extend("enum" = [5, 10]))]
    pub duration: u32,
}

/// `kling-video-o1-reference-to-video`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReferenceBody {
    /// The model id.
    pub model: String,
    /// The instruction.
    pub prompt: String,
    /// Reference images.
    pub input_image: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Output aspect ratio (`16:9`, `9:16`, `1:1`).
    pub aspect_ratio: String,
    /// Output length in seconds: 5 or 10.
    #[schemars(extend("enum" = [5, 10]))]
    pub duration: u32,
}

/// What `kling-video-o3-omni` does with its video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoMode {
    /// The video, edited.
    Edit,
    /// A new shot guided by the video.
    Reference,
}

/// `kling-video-o3-omni`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OmniBody {
    /// The model id.
    pub model: String,
    /// The instruction.
    pub prompt: String,
    /// Edit or reference.
    pub video_mode: VideoMode,
    /// The video's URL.
    pub input_video: String,
    /// Reference images.
    pub input_image: Vec<String>,
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Output aspect ratio, for reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<String>,
    /// Output length in seconds, for reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 10))]
    pub duration: Option<u32>,
}

/// The schema of the body sent to each model, for `cargo xtask schemas`.
pub fn body_schemas() -> Vec<(&'static str, schemars::Schema)> {
    use kling_core::provider::body_schema;
    vec![
        (crate::O1_EDIT, body_schema::<EditBody>()),
        (crate::O1_FRAMES, body_schema::<FramesBody>()),
        (crate::O1_REFERENCE, body_schema::<ReferenceBody>()),
        (crate::O3_OMNI, body_schema::<OmniBody>()),
    ]
}

/// The answer to `POST /api/ai/queue`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct Enqueued {
    /// One entry per generation requested (one here).
    pub generations: Vec<Queued>,
}

/// A generation just enqueued.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct Queued {
    /// Its id.
    pub generation_id: String,
}

/// `GET /api/ai/queue/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct Generation {
    /// Its id.
    pub generation_id: String,
    /// `queued`, `processing`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The result, once succeeded.
    #[serde(default)]
    pub result_url: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// The data of a `media_generation_completed` event.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct Completed {
    /// The generation.
    pub generation_id: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The result, when it succeeded.
    #[serde(default)]
    pub url: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// One generation as the hub's browse view shows it: a row of
/// `GET /api/ai/generations` and the record under `generation` of
/// `GET /api/ai/generations/{id}` (the published `GenerationsListResponse`
/// row and `GenerationsShowResponse.generation`, one shape). The request's
/// own parameters (`prompt`, `duration`, `input_video`…) are merged in at
/// the top level; they land in [`GenerationRow::params`].
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
pub struct GenerationRow {
    /// Its id.
    pub generation_id: String,
    /// The model that ran it.
    pub model_name: String,
    /// `queued`, `processing`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// When it was enqueued, in seconds since the Unix epoch.
    pub enqueued_at: i64,
    /// `image` or `video` (published as required; not relied on).
    #[serde(default)]
    pub media_type: Option<String>,
    /// When it started, in seconds since the Unix epoch.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// When it ended, in seconds since the Unix epoch.
    #[serde(default)]
    pub completed_at: Option<i64>,
    /// The result, once succeeded.
    #[serde(default)]
    pub result_url: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error_message: Option<String>,
    /// The charged amount in dollars, a decimal string as published (`null`
    /// until charged). Kept as it came: one odd row must not make a whole
    /// page unreadable.
    #[serde(default)]
    pub cost: Option<serde_json::Value>,
    /// Every other field: the request's parameters, and the row's fields
    /// not named above (`target_repo`, `user_id`…).
    #[serde(flatten)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// The answer to `GET /api/ai/generations` (`GenerationsListResponse`):
/// one page, newest first.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
pub struct GenerationList {
    /// The rows of this page.
    pub generations: Vec<GenerationRow>,
    /// Rows in this page (at most `page_size`).
    #[serde(default)]
    pub count: Option<u64>,
    /// This page's number, from 1.
    #[serde(default)]
    pub page_number: Option<u64>,
    /// Rows per page.
    #[serde(default)]
    pub page_size: Option<u64>,
    /// Pages in the filtered set.
    #[serde(default)]
    pub total_pages: Option<u64>,
    /// Rows in the filtered set.
    #[serde(default)]
    pub total_entries: Option<u64>,
    /// The charged amounts of the filtered set summed, a decimal string;
    /// `null` when nothing in it has been charged.
    #[serde(default)]
    pub total_cost: Option<serde_json::Value>,
}

/// The answer to `GET /api/ai/generations/{id}` (`GenerationsShowResponse`).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
pub struct GenerationShow {
    /// The generation.
    pub generation: GenerationRow,
    /// `success`.
    #[serde(default)]
    pub status: Option<String>,
    /// `resource_found`.
    #[serde(default)]
    pub status_message: Option<String>,
}
