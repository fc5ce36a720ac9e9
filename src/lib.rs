//! stackshot: a backup sidecar for docker-compose stacks.
//!
//! The data flow: environment → [`config::Config`]; engine → [`discovery`] →
//! [`container::ContainerInfo`]s → [`plan::build`] → [`plan::Plan`], a plain
//! value that `stackshot plan` prints. A backup ([`backup`], a folder whose
//! files are its phases) goes through the stop window that always closes
//! ([`window`]), [`dumps`] and [`backup::snapshot`], and yields a
//! [`report::RunReport`].
//!
//! # The map of the parts
//!
//! - [`env`](mod@env), [`schedule`]: reading variables, cron schedules (pure).
//! - [`container`]: stackshot's view of one container, and the names of stop
//!   targets.
//! - [`activity`]: what a run is doing now. [`shutdown`]: a request to stop,
//!   from a signal.
//! - [`layout`]: the snapshot contract — where a snapshot's files sit, what
//!   the dump files are called, the tag of a run's parts.
//! - [`labels`]: the labels a stack's services carry.
//! - [`config`]: every setting, parsed, with its defaults — notification
//!   targets ([`config::notify`]) and restic's settings included.
//! - [`engine`]: the Docker engine: connection, exec, the worker container,
//!   stop and swarm scaling.
//! - [`report`]: the plain data of a run — its phases, window, dumps,
//!   snapshots, retention and notification outcomes.
//! - [`plan`]: what a backup will stop, dump and snapshot (pure).
//! - [`restic`]: running restic. [`discovery`]: finding our stack.
//!   [`logging`]: log set-up.
//! - [`notify`]: telling people how a run went. [`retention`]: forget and
//!   prune. [`copy`]: the runs copied to the copy repository. [`hooks`]:
//!   the label hooks. [`worker`]: what runs inside the
//!   worker container. [`catalog`]: the runs in the repository.
//! - [`window`]: the stop window — open, close, recover, its
//!   [`window::journal`], the engine's [`window::ContainerControl`], with
//!   [`shutdown`] beside it — shared by backup, restore and the daemon.
//!   [`dumps`]: database dumps. [`context`]: what every run against the
//!   stack needs (configuration, engine, restic, journal) and the plan
//!   options the configuration gives — shared by backup, restore and the
//!   daemon.
//! - [`backup`]: one backup run, as a list of phases.
//! - [`restore`]: restores, the restore drill and verify.
//! - [`daemon`]: the scheduler, the control socket and the HTTP endpoints.
//! - [`cli`]: the command line.
//!
//! # The layers, bottom to top
//!
//! A part names only parts on layers below its own; none names one above it,
//! and the module graph has no cycle:
//!
//! 1. [`env`](mod@env), [`schedule`], [`container`], [`activity`],
//!    [`shutdown`], [`layout`]
//! 2. [`labels`], [`config`], [`engine`]
//! 3. [`report`], [`plan`], [`restic`], [`discovery`], [`logging`]
//! 4. [`notify`], [`retention`], [`hooks`], [`worker`], [`catalog`]
//! 5. [`window`], [`dumps`], [`copy`]
//! 6. [`context`]
//! 7. [`backup`]
//! 8. [`restore`]
//! 9. [`daemon`]
//! 10. [`cli`], and the binary's `main`
//!
//! A higher part may re-export a lower one's item under its old path (say
//! `notify::NotifyOn`, from [`config::notify`]); the reverse never happens.

#![warn(missing_docs)]

pub mod activity;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod container;
pub mod context;
pub mod copy;
pub mod daemon;
pub mod discovery;
pub mod dumps;
pub mod engine;
pub mod env;
pub mod hooks;
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
pub mod shutdown;
pub mod window;
pub mod worker;
