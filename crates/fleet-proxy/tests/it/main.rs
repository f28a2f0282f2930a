//! fleet-proxy against real sockets on 127.0.0.1: real hyper backends started by each
//! test, real clients, nothing of the HTTP layer mocked.

mod drain;
mod errors;
mod headers;
mod hosts;
mod idle;
mod limits;
mod pool;
mod shutdown;
mod streaming;
mod support;
mod switch;
mod upgrade;
