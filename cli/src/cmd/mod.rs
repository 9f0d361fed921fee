//! Subcommands of the `sluice` CLI, one module per command group.

pub mod helm;
pub mod install;
pub mod kustomize;
pub mod objects;
