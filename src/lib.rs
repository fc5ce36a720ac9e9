//! stackshot: a backup sidecar for docker-compose stacks.
//!
//! The data flow (see `design.md`): environment → [`config::Config`];
//! engine → [`discovery`] → [`container::ContainerInfo`]s → [`plan::build`] →
//! [`plan::Plan`], a plain value that `stackshot plan` prints.
//!
//! Pure logic ([`config`], [`env`], [`schedule`], [`labels`], [`container`],
//! [`plan`], [`dumps::command`]) is separate from engine I/O ([`engine`],
//! [`discovery`]). A backup ([`run`]) goes through [`window`] (the stop window
//! that always closes), [`dumps`] and [`snapshot`], and yields a [`report`].

#![warn(missing_docs)]

pub mod catalog;
pub mod cli;
pub mod config;
pub mod container;
pub mod daemon;
pub mod discovery;
pub mod dumps;
pub mod engine;
pub mod env;
pub mod journal;
pub mod labels;
pub mod logging;
pub mod plan;
pub mod report;
pub mod restic;
pub mod restore;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod snapshot;
pub mod window;
pub mod worker;
