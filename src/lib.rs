//! imgstat: tells, for each container on a container engine, whether the registry has a
//! newer image for the reference the container was created from.

pub mod reference;
pub mod server;
