//! A generic JSON webhook (`https://…`, `http://…`): the run report, POSTed.

use reqwest::{Client, RequestBuilder};
use url::Url;

use super::message::{Told, webhook_body};
use crate::report::RunReport;

/// The request that POSTs the run report to `url` as JSON, with the message's
/// `title` and `text` added.
pub fn request(http: &Client, url: &Url, report: &RunReport, told: &Told) -> RequestBuilder {
    http.post(url.clone()).json(&webhook_body(report, told))
}
