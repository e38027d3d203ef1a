//! Where a node running on this machine leaves its API token for the commands run here
//! (`officemesh ask`, `chat`, `invite`), by the address it serves HTTP on, so that they need
//! no `--token`. Every running node does this: a node whose data dir is not at the default
//! path where `ask` would otherwise look, and the demo's nodes, which get a fresh token on
//! every run, answer `officemesh ask` without flags.
//!
//! The files live in `$XDG_RUNTIME_DIR/officemesh`, else in `<temp dir>/officemesh-<uid>`,
//! in a directory only this user may enter. Each file names the process that wrote it, and
//! a file whose process is gone (killed before it could remove it) is ignored, so a stale
//! token never shadows the right one.

use std::{
    fs::{self, DirBuilder, OpenOptions},
    io::{self, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use reqwest::Url;
use thiserror::Error;

/// Why a token could not be left for the commands of this machine.
#[derive(Debug, Error)]
pub enum LocalTokenError {
    #[error(
        "{} is not a private directory of this user (owner uid {owner}, mode {mode:o}); not leaving the API token there",
        path.display()
    )]
    NotPrivate {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
    #[error("cannot write the API token under {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How the name of every token file starts.
const FILE_PREFIX: &str = "api-token-";

/// The directory of the token files: `$XDG_RUNTIME_DIR/officemesh` (per user, emptied at
/// logout), else `<temp dir>/officemesh-<uid>`.
pub fn dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() => runtime.join("officemesh"),
        _ => std::env::temp_dir().join(format!("officemesh-{}", current_uid())),
    }
}

/// The real user id of this process.
fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail (POSIX).
    unsafe { libc::getuid() }
}

/// A token left for the commands of this machine; its files go when it is dropped.
#[derive(Debug)]
pub struct Published {
    paths: Vec<PathBuf>,
}

impl Published {
    /// The files, one per address.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        for path in &self.paths {
            // A file already gone (a reboot emptied the runtime dir) is what we want anyway.
            let _ = fs::remove_file(path);
        }
    }
}

/// Leaves `token` in [`dir`] for the nodes this process serves on `addresses`.
pub fn publish(addresses: &[SocketAddr], token: &str) -> Result<Published, LocalTokenError> {
    publish_in(&dir(), addresses, token)
}

/// [`publish`] into `dir`.
pub fn publish_in(
    dir: &Path,
    addresses: &[SocketAddr],
    token: &str,
) -> Result<Published, LocalTokenError> {
    let io_error = |source| LocalTokenError::Io {
        path: dir.to_owned(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error)?;
    check_private(dir)?;
    forget_the_dead(dir);
    let contents = format!("{}\n{}\n", std::process::id(), token.trim());
    let mut published = Published { paths: Vec::new() };
    for address in addresses {
        let path = dir.join(file_name(*address));
        // Written aside and renamed, so a reader never sees half a token.
        let partial = dir.join(format!(".{}.partial", file_name(*address)));
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut file| file.write_all(contents.as_bytes()))
            .and_then(|()| fs::rename(&partial, &path));
        if let Err(source) = written {
            let _ = fs::remove_file(&partial);
            return Err(LocalTokenError::Io { path, source });
        }
        published.paths.push(path);
    }
    Ok(published)
}

/// Removes the files of processes that are gone (killed before they could): they are ignored
/// anyway, and would pile up.
fn forget_the_dead(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(FILE_PREFIX));
        if ours && fs::read_to_string(&path).is_ok_and(|text| live_token(&text).is_none()) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// A token found for a node of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub token: String,
    /// The file it was read from, for error messages.
    pub path: PathBuf,
}

/// The token a running process of this machine left for the node at `url`, if any.
pub fn find(url: &Url) -> Option<Found> {
    find_in(&dir(), url)
}

/// [`find`] in `dir`.
pub fn find_in(dir: &Path, url: &Url) -> Option<Found> {
    check_private(dir).ok()?;
    let port = url.port_or_known_default()?;
    let host = url.host_str()?;
    let ips: Vec<IpAddr> = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()],
        literal => vec![literal.parse().ok()?],
    };
    ips.into_iter().find_map(|ip| {
        let path = dir.join(file_name(SocketAddr::new(ip, port)));
        let text = fs::read_to_string(&path).ok()?;
        let token = live_token(&text)?;
        Some(Found { token, path })
    })
}

/// The token of a file's text (`<pid>\n<token>\n`) if the process that wrote it still runs.
fn live_token(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let token = lines.next()?.trim();
    let alive = Path::new("/proc").join(pid.to_string()).exists();
    (alive && !token.is_empty()).then(|| token.to_owned())
}

fn file_name(address: SocketAddr) -> String {
    format!("{FILE_PREFIX}{}-{}", address.ip(), address.port())
}

/// Refuses a directory that another user owns or may enter: in a shared temp dir, someone
/// else could have made it first to read tokens or plant one.
fn check_private(dir: &Path) -> Result<(), LocalTokenError> {
    let metadata = fs::symlink_metadata(dir).map_err(|source| LocalTokenError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mode = metadata.mode() & 0o7777;
    if !metadata.is_dir() || metadata.uid() != current_uid() || mode & 0o077 != 0 {
        return Err(LocalTokenError::NotPrivate {
            path: dir.to_owned(),
            owner: metadata.uid(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    #[test]
    fn a_published_token_is_found_by_its_address_until_dropped() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("officemesh");
        let published =
            publish_in(&dir, &[loopback(7878), loopback(7879)], "demo-token\n").unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the directory is private");
        for path in published.paths() {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is private", path.display());
        }
        for (text, port) in [
            ("http://127.0.0.1:7878", 7878),
            ("http://localhost:7879/", 7879),
        ] {
            let found = find_in(&dir, &url(text)).expect(text);
            assert_eq!(found.token, "demo-token");
            assert_eq!(found.path, dir.join(format!("api-token-127.0.0.1-{port}")));
        }
        assert_eq!(find_in(&dir, &url("http://127.0.0.1:7880")), None);
        assert_eq!(find_in(&dir, &url("http://10.0.0.2:7878")), None);
        assert_eq!(find_in(&dir, &url("http://[::1]:7878")), None);
        drop(published);
        assert_eq!(find_in(&dir, &url("http://127.0.0.1:7878")), None);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "no file is left");
    }

    #[test]
    fn publishing_removes_the_files_of_processes_that_are_gone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("officemesh");
        let first = publish_in(&dir, &[loopback(7878)], "live").unwrap();
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let stale = dir.join("api-token-127.0.0.1-7000");
        fs::write(&stale, format!("{}\nstale-token\n", exited.id())).unwrap();
        let unrelated = dir.join("notes.txt");
        fs::write(&unrelated, "not ours").unwrap();
        let second = publish_in(&dir, &[loopback(7879)], "live").unwrap();
        assert!(!stale.exists(), "the dead process's file is gone");
        assert!(unrelated.exists(), "files not ours stay");
        for published in [&first, &second] {
            assert!(published.paths()[0].exists(), "a live process's file stays");
        }
    }

    #[test]
    fn the_token_of_a_process_that_is_gone_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let path = dir.path().join("api-token-127.0.0.1-7878");
        fs::write(&path, format!("{}\nstale-token\n", exited.id())).unwrap();
        assert_eq!(find_in(dir.path(), &url("http://127.0.0.1:7878")), None);
        fs::write(&path, format!("{}\nlive-token\n", std::process::id())).unwrap();
        assert_eq!(
            find_in(dir.path(), &url("http://127.0.0.1:7878")).map(|found| found.token),
            Some("live-token".to_owned())
        );
        for garbage in [
            "",
            "not-a-pid\ntoken\n",
            &format!("{}\n\n", std::process::id()),
        ] {
            fs::write(&path, garbage).unwrap();
            assert_eq!(
                find_in(dir.path(), &url("http://127.0.0.1:7878")),
                None,
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn a_directory_others_may_enter_is_neither_written_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("api-token-127.0.0.1-7878"),
            format!("{}\nplanted\n", std::process::id()),
        )
        .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_in(dir.path(), &url("http://127.0.0.1:7878")), None);
        let error = publish_in(dir.path(), &[loopback(7878)], "secret").unwrap_err();
        assert!(
            matches!(error, LocalTokenError::NotPrivate { mode: 0o755, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("mode 755"), "{error}");
    }
}
