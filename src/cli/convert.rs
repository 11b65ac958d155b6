//! `buildlog convert`: build logs to JSON events on stdout (or `-o FILE`).

use super::exit;
use super::input::InputArgs;
use super::output::{output_inside_input_dir, output_is_input, AtomicFile};
use crate::build::{parse_inputs_as_json, read_back, JsonOut};
use crate::source::{stdin_is_live, Input, Progress};
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Where `convert` writes the events: stdout or the `-o` file.
struct Output<'a> {
    to: To<'a>,
    /// Each write flushed at once (following a pipe).
    live: bool,
    /// Whether the kernel copies a file to this output for `std::io::copy` (see
    /// [`kernel_copies_to`]).
    kernel_copy: bool,
    /// What the first failed write failed with.
    error: Option<std::io::ErrorKind>,
}

enum To<'a> {
    Stdout(std::io::StdoutLock<'a>),
    File(&'a mut AtomicFile),
}

impl Output<'_> {
    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.to {
            To::Stdout(s) => s,
            To::File(f) => f,
        }
    }

    fn noted(&mut self, r: std::io::Result<()>) -> std::io::Result<()> {
        if let Err(e) = &r {
            self.error.get_or_insert(e.kind());
        }
        r
    }
}

impl JsonOut for Output<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let live = self.live;
        let w = self.writer();
        let r = w
            .write_all(bytes)
            .and_then(|_| if live { w.flush() } else { Ok(()) });
        self.noted(r)
    }

    /// A build read ahead (`--jobs`) from its temporary file: to a regular file or a device,
    /// `std::io::copy` between the two file descriptors (the concrete types, which it knows)
    /// lets the kernel copy it (`copy_file_range`, `sendfile`) instead of this process
    /// reading it back; to anything else it is read back in big blocks.
    fn write_file(&mut self, file: &mut std::fs::File, len: u64) -> std::io::Result<()> {
        use std::io::Read;
        if !self.kernel_copy {
            // A read of the file that fails is an output error too (the writes note theirs).
            let r = read_back(file, len, &mut |b| self.write(b));
            return self.noted(r);
        }
        let mut part = file.take(len);
        let r = self.writer().flush().and_then(|_| match &mut self.to {
            To::Stdout(s) => std::io::copy(&mut part, s),
            To::File(f) => std::io::copy(&mut part, f.file_mut()),
        });
        let r = r.and_then(|copied| match copied {
            n if n == len => Ok(()),
            n => Err(crate::build::lost(len, len - n)),
        });
        self.noted(r)
    }
}

/// Whether `std::io::copy` from a file to `fd` is a copy in the kernel: to a regular file
/// (`copy_file_range`) or a device such as `/dev/null` (`sendfile`). Not to a pipe or a
/// socket: std will not splice a file's pages into a pipe (later writes to the file would
/// show through) and copies through an 8 KiB buffer, 30 times the system calls of reading
/// back in 256 KiB blocks.
fn kernel_copies_to(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(dup) = fd.try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(dup).metadata().is_ok_and(|m| {
        let t = m.file_type();
        t.is_file() || t.is_char_device()
    })
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog convert /var/log/container-build > events.jsonl
  buildlog convert old-builds/ -o all.jsonl   # a directory of builds
  tail -F /var/log/container-build/python-install.log | buildlog convert -
  buildlog convert --timezone America/Chicago python-install.log.gz

Exit codes: 0 ok, 1 some input unreadable (the rest converted), 2 usage, 4 output failed.")]
pub struct ConvertArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Write the events here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Keep following the build log directory (like `tail -F`): new feature logs are picked
    /// up as they appear, every event is written as soon as its line is complete. Stops on
    /// SIGINT or SIGTERM.
    #[arg(long)]
    pub follow: bool,

    /// How often to look for new lines and files when following (`250ms`; a bare number is
    /// milliseconds).
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = crate::duration::millis)]
    pub poll_interval: std::time::Duration,

    /// When following: how long an event the JSON logger also writes waits for that line
    /// (its exact time and id) before it goes out without (`5s`; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::duration::secs)]
    pub twin_wait: std::time::Duration,

    /// When following: the build is over once no file grew for this long; open features are
    /// then closed as aborted and following ends (`0`: never). A sentinel in
    /// `build-failure.log` ends it at once.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::duration::secs)]
    pub idle_end: std::time::Duration,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<i32> {
    let opts = args.input.parse_options()?;
    let inputs = args.input.inputs();
    if let Some(o) = &args.output {
        if let Some(i) = output_is_input(o, &inputs) {
            return Err(super::UsageError(format!(
                "-o {} is the input {}: refusing to overwrite what is being read",
                o.display(),
                i.display()
            ))
            .into());
        }
    }
    if args.follow {
        return follow(args, opts, inputs);
    }
    // Following a pipe: every event goes out as soon as its line is complete.
    let live = inputs.contains(&Input::Stdin) && stdin_is_live();
    // `-o` is written under a temporary name and renamed when all went well.
    let mut file = match &args.output {
        Some(p) => {
            Some(AtomicFile::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => None,
    };
    let kernel_copy = match &file {
        Some(_) => true,
        None => kernel_copies_to(std::os::fd::AsFd::as_fd(&std::io::stdout())),
    };
    let mut out = Output {
        to: match file.as_mut() {
            Some(f) => To::File(f),
            None => To::Stdout(std::io::stdout().lock()),
        },
        live,
        kernel_copy,
        error: None,
    };
    let mut progress = Progress::new(args.input.quiet);
    let report = parse_inputs_as_json(&inputs, &opts, &mut progress, live, &mut out);
    let write_error = out.error;
    let flushed = if write_error.is_none() {
        out.writer().flush()
    } else {
        Ok(())
    };
    drop(out);
    for w in &report.warnings {
        eprintln!("buildlog: warning: {w}");
    }
    for e in &report.errors {
        eprintln!("buildlog: {e}");
    }
    for s in &report.skipped {
        tracing::info!("skipped {s}: not a file the build logger writes (name it to convert it)");
    }
    match (write_error, flushed) {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        (Some(std::io::ErrorKind::BrokenPipe), _) if file.is_none() => return Ok(exit::OK),
        // A failed `-o` leaves what was there (the temporary file is removed on drop).
        (Some(k), _) => anyhow::bail!("writing events: {k}"),
        (None, Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe && file.is_none() => {
            return Ok(exit::OK)
        }
        (None, Err(e)) => return Err(e).context("writing events"),
        _ => {}
    }
    if let (Some(f), Some(p)) = (file, &args.output) {
        f.commit()
            .with_context(|| format!("writing events to {}", p.display()))?;
    }
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::INPUT_ERROR
    })
}

/// `convert --follow DIR`: a pipeline stage that runs as long as the build does.
fn follow(
    args: ConvertArgs,
    opts: crate::parse::ParseOptions,
    inputs: Vec<Input>,
) -> anyhow::Result<i32> {
    let dir = match inputs.as_slice() {
        [Input::Path(p)] if !p.is_file() => p.clone(),
        _ => {
            return Err(crate::error::UsageError(
                "--follow takes one build log directory (for one file: tail -F FILE | buildlog convert -)".into(),
            )
            .into())
        }
    };
    if let Some(i) = args
        .output
        .as_ref()
        .and_then(|o| output_inside_input_dir(o, &inputs))
    {
        return Err(super::UsageError(format!(
            "--follow would read its own output: -o is inside the followed directory {}",
            i.display()
        ))
        .into());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let out: Box<dyn Write> = match &args.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    // The events of one look at the files go out in one write, at the end of the look (or
    // sooner when they fill the buffer): a write and a flush per event cost more CPU than
    // reading the lines.
    let buf = std::cell::RefCell::new(Vec::with_capacity(256 * 1024));
    let out = std::cell::RefCell::new(out);
    let write_out = || -> std::io::Result<()> {
        let mut buf = buf.borrow_mut();
        let mut out = out.borrow_mut();
        out.write_all(&buf)?;
        buf.clear();
        out.flush()
    };
    let timing = follow_timing(args.twin_wait, args.idle_end);
    let report = crate::build::follow::follow_dir(
        &dir,
        &opts,
        timing,
        args.poll_interval.max(std::time::Duration::from_millis(10)),
        &stop,
        &mut |event| {
            let full = {
                let mut buf = buf.borrow_mut();
                event.write_json_line(&mut buf);
                buf.len() >= 256 * 1024
            };
            if full {
                write_out()
            } else {
                Ok(())
            }
        },
        &mut || write_out(),
    );
    for w in &report.warnings {
        eprintln!("buildlog: warning: {w}");
    }
    for e in &report.errors {
        eprintln!("buildlog: {e}");
    }
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::INPUT_ERROR
    })
}

/// `--twin-wait` and `--idle-end` as the follower's timing.
pub fn follow_timing(
    twin_wait: std::time::Duration,
    idle_end: std::time::Duration,
) -> crate::build::follow::FollowTiming {
    crate::build::follow::FollowTiming {
        twin_wait,
        idle_end: (!idle_end.is_zero()).then_some(idle_end),
    }
}

#[cfg(test)]
mod tests {
    use super::{kernel_copies_to, AtomicFile, JsonOut, Output, To};
    use std::io::{Seek, SeekFrom, Write};
    use std::os::fd::AsFd;

    /// The kernel's copy to `-o`, and the read-back for outputs it does not copy to (such as
    /// a pipe), take the bytes asked for of a spill file used again, not what an earlier
    /// build left after them; a file that holds fewer is an output error.
    #[test]
    fn a_spill_file_is_copied_to_the_output_up_to_its_build_s_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = tempfile::tempfile().unwrap();
        spill
            .write_all(b"{\"seq\":1}\n{\"seq\":2}\n{\"left\":\"over\"}\n")
            .unwrap();
        for kernel_copy in [true, false] {
            let path = dir.path().join(format!("kernel-copy-{kernel_copy}.jsonl"));
            let mut target = AtomicFile::create(&path).unwrap();
            let mut out = Output {
                to: To::File(&mut target),
                live: false,
                kernel_copy,
                error: None,
            };
            out.write(b"{\"seq\":0}\n").unwrap();
            spill.seek(SeekFrom::Start(0)).unwrap();
            out.write_file(&mut spill, 20).unwrap();
            assert_eq!(out.error, None, "kernel copy: {kernel_copy}");
            spill.seek(SeekFrom::Start(0)).unwrap();
            let e = out.write_file(&mut spill, 1_000).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
            assert_eq!(
                out.error,
                Some(std::io::ErrorKind::UnexpectedEof),
                "kernel copy: {kernel_copy}"
            );
            drop(out);
            target.commit().unwrap();
            let written = std::fs::read_to_string(&path).unwrap();
            // What the failed copy wrote before it failed follows; convert then exits 4.
            assert!(
                written.starts_with("{\"seq\":0}\n{\"seq\":1}\n{\"seq\":2}\n{\"seq\":1}"),
                "kernel copy: {kernel_copy}: {written}"
            );
        }
    }

    /// A regular file and a device take the kernel's copy; a pipe is read back into.
    #[test]
    fn the_kernel_copies_to_files_and_devices_not_to_pipes() {
        let file = tempfile::tempfile().unwrap();
        assert!(kernel_copies_to(file.as_fd()));
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert!(kernel_copies_to(null.as_fd()));
        let (_reader, writer) = std::io::pipe().unwrap();
        assert!(!kernel_copies_to(writer.as_fd()));
    }
}
