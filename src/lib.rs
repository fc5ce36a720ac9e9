//! stackshot: a backup sidecar for docker-compose stacks.
//!
//! The data flow (see `design.md`): environment → [`config::Config`];
//! engine → [`discovery`] → [`container::ContainerInfo`]s → [`plan::build`] →
//! [`plan::Plan`], a plain value that `stackshot plan` prints.
//!
//! Pure logic ([`config`], [`env`], [`schedule`], [`labels`], [`container`],
//! [`plan`], [`dumps::command`]) is separate from engine I/O ([`engine`],
//! [`discovery`]). A backup ([`backup`], a folder whose files are its phases) goes through the
//! stop window that always closes ([`window`]), [`dumps`] and
//! [`backup::snapshot`], and yields a [`report`].

#![warn(missing_docs)]

pub mod activity;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod container;
pub mod daemon;
pub mod discovery;
pub mod dumps;
pub mod engine;
pub mod env;
pub mod hooks;
pub mod journal;
pub mod labels;
pub mod layout;
pub mod logging;
pub mod notify;
pub mod plan;
pub mod report;
pub mod restic;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod window;
pub mod worker;
