//! The `buildlog` command: argument parsing only; the work is in the library.

/// jemalloc instead of glibc's allocator: events are made on the parsing thread and freed on
/// a sink's, which keeps glibc's allocator off its per-thread fast path; jemalloc frees them
/// cheaply and keeps peak memory where glibc's is (figures in docs/performance.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(buildlog::cli::main());
}
