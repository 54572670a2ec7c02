//! The update agent (`oxtree agent`): keeps a machine on its stream by itself — finds the
//! right update in an update graph, downloads and stages it at once, and reboots into it
//! only when every reboot gate allows, without taking the whole fleet down at once and
//! without ever looping on a release it already rolled back from.
//!
//! Modelled on Zincati (Fedora CoreOS), with what its users asked for: a signed static
//! graph as well as a Cincinnati server ([`graph`], [`source`]), the same choice either way
//! ([`decide`], with phased rollouts from [`rollout`]).
//!
//! It sits above `pull` and `sysroot`: staging is `Repo::pull` + `Sysroot::deploy` with
//! `stage`, never a write of deployment files of its own.

pub mod decide;
pub mod gates;
pub mod graph;
pub mod rollout;
pub mod source;
pub mod windows;
