//! imgstat: tells, for each container on a container engine, whether the registry has a
//! newer image for the reference the container was created from.

pub mod cli;
pub mod credentials;
pub mod engine;
pub mod output;
pub mod reference;
pub mod registry;
pub mod rules;
pub mod server;
pub mod status;
