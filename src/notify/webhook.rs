//! A generic JSON webhook (`https://…`, `http://…`): the run report, POSTed.

use reqwest::{Client, RequestBuilder};
use url::Url;

use super::message::webhook_body;
use crate::report::RunReport;

/// `POST url` with the report (and `title`, `text`) as JSON.
pub fn request(http: &Client, url: &Url, report: &RunReport) -> RequestBuilder {
    http.post(url.clone()).json(&webhook_body(report))
}
