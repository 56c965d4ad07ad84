//! `centossrv`: the control plane's command line. Everything lives in the library.

fn main() -> std::process::ExitCode {
    reconciler::cli::run()
}
