//! Integration tests: the real `caravan` binary, started on a free loopback port with a
//! temporary data directory, driven over HTTP and through its own CLI.

mod access;
mod agent;
mod agent_logs;
mod agent_ramp;
mod agent_token;
mod cli;
mod fleet;
mod harness;
mod lb;
mod lifecycle;
mod logs;
mod logs_clients;
mod schema;
mod search;
mod shippers;
mod ui_browser;
mod validation;
