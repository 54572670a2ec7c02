//! The update agent (`oxtree agent`): keeps a machine on its stream by itself — finds the
//! right update in an update graph, downloads and stages it at once, and reboots into it
//! only when every reboot gate allows, without taking the whole fleet down at once and
//! without ever looping on a release it already rolled back from.
//!
//! Modelled on Zincati (Fedora CoreOS), with what its users asked for:
//! - [`graph`], [`source`]: a signed static graph (freeze and replay attacks refused) as
//!   well as a Cincinnati server; [`decide`]: the same choice either way, with phased
//!   rollouts from [`rollout`] (a stable SHA-256 wariness, so no server is needed);
//! - [`gates`], [`windows`]: reboot gates that combine (windows, DST-correct; hold; consent;
//!   inhibitors; users warned with a grace delay; hooks from [`hooks`]; the fleet lock
//!   from `crate::fleetlock`);
//! - [`machine`], [`state`]: a persisted state machine that resumes after a kill in any
//!   state, never stages twice, never leaks the fleet lock, and never loops on a release it
//!   rolled back from; [`config`]: TOML drop-ins that say loudly what they ignore;
//!   [`metrics`]: Prometheus text on a unix socket.
//!
//! It sits above `pull` and `sysroot`: staging is `Repo::pull` + `Sysroot::deploy` with
//! `stage`, never a write of deployment files of its own.

pub mod config;
pub mod decide;
pub mod gates;
pub mod graph;
pub mod hooks;
pub mod machine;
pub mod metrics;
pub mod rollout;
pub mod source;
pub mod state;
pub mod windows;
