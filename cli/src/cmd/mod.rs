//! Subcommands of the `sluice` CLI, one module per command group.

pub mod bootstrap;
pub mod build;
pub mod check;
pub mod create;
pub mod helm;
pub mod inspect;
pub mod install;
pub mod kustomize;
pub mod objects;
