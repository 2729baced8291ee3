//! Tests of the HTTP service through real HTTP requests on loopback, each server with its
//! own temporary data directory.

mod common;

mod auth;
mod containers;
mod dashboard;
mod endpoints;
mod image_status;
mod registries;
mod restart;
mod service;
mod status_detail;
