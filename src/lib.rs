//! stackshot: a backup sidecar for docker-compose stacks.
//!
//! The data flow (see `design.md`): environment → [`config::Config`];
//! engine → [`discovery`] → [`container::ContainerInfo`]s → [`plan::build`] →
//! [`plan::Plan`], a plain value that `stackshot plan` prints.
//!
//! Pure logic ([`config`], [`env`], [`schedule`], [`labels`], [`container`],
//! [`plan`]) is separate from engine I/O ([`docker`], [`discovery`]).

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod container;
pub mod discovery;
pub mod docker;
pub mod env;
pub mod labels;
pub mod logging;
pub mod plan;
pub mod schedule;
