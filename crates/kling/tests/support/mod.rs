//! What the facade's tests share: the validate-then-act path every job
//! takes, for tests that start from a plain request.

#![allow(dead_code)]

use kling::{Checked, Client, Error, Estimate, JobHandle, Request};

/// `request`, checked by `client`; panics when a rule is broken.
pub(crate) fn checked(client: &Client, request: &Request) -> Checked {
    client.validate(request).unwrap()
}

/// Validates `request`, then submits it.
pub(crate) async fn submit(client: &Client, request: &Request) -> Result<JobHandle, Error> {
    client.submit(&client.validate(request)?).await
}

/// Validates `request`, then prices it.
pub(crate) fn estimate(client: &Client, request: &Request) -> Result<Estimate, Error> {
    Ok(client.estimate(&client.validate(request)?))
}
