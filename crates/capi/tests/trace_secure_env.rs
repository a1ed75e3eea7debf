//! `FREESPACE_TRACE` is ignored in a program that runs with privileges its user does not have
//! (secure execution: setuid, setgid, or file capabilities), so no user can make such a program
//! write a trace with its rights to a path of the user's choice.
//!
//! End to end: this test binary links the library (its exports are this process's allocator,
//! so its first allocation reads `FREESPACE_TRACE`). The test copies the binary twice, makes one
//! copy setgid to a group the caller is not running as, and runs both copies as the ignored
//! test `child_program` with `FREESPACE_TRACE` set. The plain copy must record (this is what
//! makes the test able to fail); the setgid copy, which the kernel runs with `AT_SECURE` set,
//! must not create the file.
//!
//! Making a file setgid to another group needs root or a second group, a file system mounted
//! without `nosuid` and no `no_new_privs`. Where that is not possible the test says so on
//! stderr and checks only the plain run.

use freespace_capi::extensions::{freespace_stats, FreespaceStats};
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The child side: runs only when the test below spawns a copy of this binary with
/// `CAPI_SECURE_CHILD` set. Prints `at_secure=N tracing=N`.
#[test]
#[ignore = "the traced program of the other test; it runs a copy in a child process"]
fn child_program() {
    if std::env::var_os("CAPI_SECURE_CHILD").is_none() {
        return;
    }
    let blocks: Vec<Vec<u8>> = (0..100).map(|i| vec![0u8; 16 + i]).collect();
    drop(blocks);
    let mut stats = FreespaceStats::default();
    // SAFETY: `stats` is a valid out-pointer.
    assert_eq!(unsafe { freespace_stats(&mut stats) }, 0);
    // SAFETY: getauxval has no preconditions.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) };
    println!("at_secure={secure} tracing={}", stats.tracing);
}

/// Runs `exe` as the child with `FREESPACE_TRACE=trace`; returns what it printed.
fn run_child(exe: &Path, trace: &Path) -> String {
    let out = Command::new(exe)
        .args(["child_program", "--exact", "--ignored", "--nocapture", "-q"])
        .args(["--test-threads", "1"])
        .env("CAPI_SECURE_CHILD", "1")
        .env("FREESPACE_TRACE", trace)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}: status {}; stdout: {stdout}; stderr: {}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with("at_secure="))
        .unwrap_or_else(|| panic!("{}: no report in {stdout}", exe.display()))
        .to_owned()
}

/// A group this process may give a file it owns, other than its real group: any group for
/// root, otherwise a supplementary group.
fn other_group() -> Option<libc::gid_t> {
    // SAFETY: getgid and geteuid have no preconditions.
    let (gid, euid) = unsafe { (libc::getgid(), libc::geteuid()) };
    if euid == 0 {
        return Some(if gid == 65534 { 65533 } else { 65534 });
    }
    let mut groups = [0 as libc::gid_t; 256];
    // SAFETY: `groups` has room for 256 entries.
    let n = unsafe { libc::getgroups(groups.len() as i32, groups.as_mut_ptr()) };
    groups[..n.max(0) as usize]
        .iter()
        .copied()
        .find(|&g| g != gid)
}

/// Copies this binary to `to`, executable by everyone.
fn copy_self(to: &Path) {
    std::fs::copy(std::env::current_exe().unwrap(), to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn freespace_trace_is_ignored_in_a_setgid_program() {
    let dir: PathBuf = std::env::temp_dir().join(format!("capi-secure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();

    // The control: an ordinary copy records.
    let plain = dir.join("plain");
    copy_self(&plain);
    let plain_trace = dir.join("plain.fstrace");
    let report = run_child(&plain, &plain_trace);
    assert_eq!(report, "at_secure=0 tracing=1", "the plain copy records");
    assert!(
        std::fs::metadata(&plain_trace).unwrap().len() > 0,
        "the plain copy wrote a trace"
    );

    let Some(group) = other_group() else {
        eprintln!(
            "trace_secure_env: no second group to make a setgid copy; checked only the plain run"
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let setgid = dir.join("setgid");
    copy_self(&setgid);
    let c = CString::new(setgid.to_str().unwrap()).unwrap();
    // SAFETY: `c` is NUL-terminated; -1 leaves the owner alone.
    assert_eq!(
        unsafe { libc::chown(c.as_ptr(), u32::MAX, group) },
        0,
        "chgrp"
    );
    std::fs::set_permissions(&setgid, std::fs::Permissions::from_mode(0o2755)).unwrap();
    let secure_trace = dir.join("secure.fstrace");
    let report = run_child(&setgid, &secure_trace);
    let exists = secure_trace.exists();
    let _ = std::fs::remove_dir_all(&dir);
    if report.starts_with("at_secure=0 ") {
        eprintln!(
            "trace_secure_env: the setgid copy did not run in secure mode here (nosuid or \
             no_new_privs); checked only the plain run"
        );
        return;
    }
    assert_eq!(
        report, "at_secure=1 tracing=0",
        "a setgid program ignores FREESPACE_TRACE"
    );
    assert!(!exists, "a setgid program created the trace file");
}
