//! The agent's one integration-test binary: real filesystems in temporary directories, the
//! real `centossrv-agent` binary for the command line and the crash test. No mocks.

mod accounts;
mod cli;
mod converge;
mod crash;
mod packages;
mod rollback;
mod run;
mod services;
mod unsupported;
mod util;
mod watch;
