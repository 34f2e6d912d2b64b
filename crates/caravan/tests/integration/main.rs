//! Integration tests: the real `caravan` binary, started on a free loopback port with a
//! temporary data directory, driven over HTTP and through its own CLI.

mod access;
mod cli;
mod harness;
mod lifecycle;
mod schema;
mod validation;
