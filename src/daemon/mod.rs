//! `stackshot daemon`: the scheduler, the control socket and the HTTP endpoints.

pub mod state;
