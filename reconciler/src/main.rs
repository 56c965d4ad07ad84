//! `centossrv`: the control plane's command line. Everything lives in the library.

// mimalloc instead of the system allocator: compiling and planning a fleet makes millions of
// small allocations, and with glibc's allocator about a quarter of the instructions of
// `centossrv plan` were malloc and free (docs/benchmarks.md, plan pipeline).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    reconciler::cli::run()
}
