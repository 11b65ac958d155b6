//! buildlog as a Fluent Bit output plugin (`fluent-bit -e libbuildlog_fluent_bit.so -o buildlog`).
//!
//! Fluent Bit loads external output plugins through its Go plugin proxy, a plain C ABI:
//! `FLBPluginRegister` fills a definition, `FLBPluginInit` reads the output section's
//! properties, `FLBPluginFlushCtx` gets MessagePack record chunks, `FLBPluginExitCtx` ends.
//! Flushes run on a small coroutine stack (~64 KiB), so the exported functions only copy the
//! chunk and hand it to the plugin's own thread (see `engine`), and wait for its answer.
//! No panic crosses the boundary: every entry point catches them and reports an error code.

pub mod engine;
pub mod records;
pub mod settings;

use engine::{Engine, FLB_ERROR, FLB_OK, FLB_RETRY};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

/// `struct flb_plugin_proxy_def` (include/fluent-bit/flb_plugin_proxy.h).
#[repr(C)]
pub struct PluginDef {
    pub type_: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    pub name: *const c_char,
    pub description: *const c_char,
    pub event_type: c_int,
    pub config_map: *mut c_void,
}

/// `struct flb_api`: only its first member is used.
#[repr(C)]
pub struct FlbApi {
    pub output_get_property:
        Option<unsafe extern "C" fn(*const c_char, *mut c_void) -> *mut c_char>,
}

/// `struct flb_plugin_proxy_context`.
#[repr(C)]
pub struct ProxyContext {
    pub remote_context: *mut c_void,
    pub proxy: *mut c_void,
}

/// `struct flbgo_output_plugin` (src/proxy/go/go.h): what `FLBPluginInit` receives.
#[repr(C)]
pub struct OutputPlugin {
    pub name: *mut c_char,
    pub api: *mut FlbApi,
    pub o_ins: *mut c_void,
    pub context: *mut ProxyContext,
}

const FLB_PROXY_OUTPUT_PLUGIN: c_int = 2;
const FLB_PROXY_GOLANG: c_int = 11;

/// A flush handed to the worker thread.
struct Job {
    tag: String,
    chunk: Vec<u8>,
    reply: mpsc::SyncSender<i32>,
}

/// What `remote_context` points to.
struct Handle {
    jobs: mpsc::SyncSender<Job>,
    worker: Option<std::thread::JoinHandle<engine::Stats>>,
}

/// # Safety
/// `def` must point to a writable `struct flb_plugin_proxy_def`.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut PluginDef) -> c_int {
    if def.is_null() {
        return -1;
    }
    // SAFETY: checked non-null; Fluent Bit passes its definition structure.
    let def = unsafe { &mut *def };
    def.type_ = FLB_PROXY_OUTPUT_PLUGIN;
    def.proxy = FLB_PROXY_GOLANG;
    def.flags = 0;
    // Static strings: Fluent Bit copies them and must not free them.
    def.name = c"buildlog".as_ptr();
    def.description = c"Parses container-build logs with buildlog and ships the events".as_ptr();
    0
}

/// # Safety
/// `plugin` must point to the proxy's `struct flbgo_output_plugin` with a valid `api`.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut OutputPlugin) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller passes the proxy's plugin structure.
        unsafe { init(plugin) }
    }));
    match r {
        Ok(Ok(())) => FLB_OK,
        Ok(Err(e)) => {
            eprintln!("[buildlog] init failed: {e:#}");
            FLB_ERROR
        }
        Err(_) => {
            eprintln!("[buildlog] init failed: internal error");
            FLB_ERROR
        }
    }
}

unsafe fn init(plugin: *mut OutputPlugin) -> anyhow::Result<()> {
    anyhow::ensure!(!plugin.is_null(), "no plugin structure");
    // SAFETY: non-null, provided by Fluent Bit for the duration of the call.
    let p = unsafe { &mut *plugin };
    anyhow::ensure!(
        !p.api.is_null() && !p.context.is_null(),
        "no API or context"
    );
    // SAFETY: checked non-null above.
    let get = unsafe { (*p.api).output_get_property }
        .ok_or_else(|| anyhow::anyhow!("no property getter"))?;
    let o_ins = p.o_ins;
    let prop = |key: &str| -> Option<String> {
        let k = std::ffi::CString::new(key).ok()?;
        // SAFETY: Fluent Bit's getter takes a C string and its output instance; it returns
        // NULL or a string it owns.
        let v = unsafe { get(k.as_ptr(), o_ins) };
        if v.is_null() {
            return None;
        }
        // SAFETY: non-null, NUL-terminated, owned by Fluent Bit.
        Some(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    };
    let (settings, delivery) = settings::from_properties(&prop)?;
    let (tx, rx) = mpsc::sync_channel::<Job>(0);
    let worker = std::thread::Builder::new()
        .name("buildlog-flb".into())
        .spawn(move || {
            let mut engine = Engine::new(settings, delivery);
            for job in rx {
                let code = catch_unwind(AssertUnwindSafe(|| engine.flush(&job.tag, &job.chunk)))
                    .unwrap_or_else(|_| {
                        eprintln!("[buildlog] internal error in a flush; Fluent Bit will retry");
                        FLB_RETRY
                    });
                let _ = job.reply.send(code);
            }
            engine.finish();
            engine.stats
        })?;
    let handle = Box::new(Handle {
        jobs: tx,
        worker: Some(worker),
    });
    // SAFETY: context checked non-null above; Fluent Bit hands `remote_context` back to flush/exit.
    unsafe { (*p.context).remote_context = Box::into_raw(handle).cast() };
    Ok(())
}

/// # Safety
/// `ctx` must be the `remote_context` set by `FLBPluginInit`; `data` must hold `len` bytes;
/// `tag` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    ctx: *mut c_void,
    data: *const c_void,
    len: usize,
    tag: *const c_char,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        if ctx.is_null() {
            return FLB_ERROR;
        }
        // SAFETY: set by init, alive until exit.
        let handle = unsafe { &*(ctx as *const Handle) };
        let chunk = if data.is_null() || len == 0 {
            Vec::new()
        } else {
            // SAFETY: Fluent Bit passes a buffer of `len` bytes.
            unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec()
        };
        let tag = if tag.is_null() {
            String::new()
        } else {
            // SAFETY: NUL-terminated by the proxy.
            unsafe { CStr::from_ptr(tag) }
                .to_string_lossy()
                .into_owned()
        };
        let (reply, answer) = mpsc::sync_channel(1);
        if handle.jobs.send(Job { tag, chunk, reply }).is_err() {
            return FLB_RETRY;
        }
        answer.recv().unwrap_or(FLB_RETRY)
    }))
    .unwrap_or(FLB_RETRY)
}

/// # Safety
/// `ctx` must be the `remote_context` set by `FLBPluginInit`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginExitCtx(ctx: *mut c_void) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        if ctx.is_null() {
            return FLB_OK;
        }
        // SAFETY: created by Box::into_raw in init; exit is called once.
        let mut handle = unsafe { Box::from_raw(ctx as *mut Handle) };
        let worker = handle.worker.take();
        drop(handle);
        if let Some(w) = worker {
            if let Ok(s) = w.join() {
                eprintln!(
                    "[buildlog] exit: {} flushes, {} records ({} bad), {} events, {} delivered, {} flushes retried",
                    s.flushes, s.records, s.bad_records, s.events, s.delivered, s.retried_flushes
                );
            }
        }
        FLB_OK
    }))
    .unwrap_or(FLB_ERROR)
}
