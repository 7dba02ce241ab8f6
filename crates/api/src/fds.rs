//! Handing a client's output file to a daemon on the same machine. Beside its unix socket
//! `PATH`, a daemon listens on `PATH.fds` ([`socket_of`]). A client connects there and sends, in
//! one message, the token it put in an output of its request (`Output.fd_token`: 32 hex
//! digits) with the file descriptor of that output's destination attached (`SCM_RIGHTS`); the
//! daemon answers `ok` or what is wrong, in one line. The daemon then writes the output into
//! that descriptor instead of streaming its bytes. A descriptor carries the access its owner
//! opened it with: the daemon can write nothing through it that the client could not.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The socket beside the daemon's socket `path` that takes descriptors.
pub fn socket_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".fds");
    PathBuf::from(name)
}

/// Whether `token` is one a client may use: 32 lowercase hex digits.
pub fn valid_token(token: &str) -> bool {
    token.len() == 32 && token.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The client's side: sends `fd` for the output with `token` to the daemon at `socket` (a
/// [`socket_of`] path) and waits for its answer.
pub fn hand_over(socket: &Path, token: &str, fd: BorrowedFd<'_>) -> io::Result<()> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptor"));
    }
    let sent = rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(token.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent != token.len() {
        return Err(io::Error::other("the token was cut short"));
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.take(1024).read_to_string(&mut answer)?;
    match answer.trim_end() {
        "ok" => Ok(()),
        other => Err(io::Error::other(format!(
            "the daemon refused the output file: {other}"
        ))),
    }
}

/// The daemon's side: reads one token and its descriptor from a connection.
pub fn receive(stream: &UnixStream) -> io::Result<(String, OwnedFd)> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut token = [0u8; 64];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut token)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let token = std::str::from_utf8(&token[..received.bytes])
        .ok()
        .filter(|t| valid_token(t))
        .ok_or_else(|| io::Error::other("invalid token"))?
        .to_string();
    match (fds.pop(), fds.is_empty()) {
        (Some(fd), true) => Ok((token, fd)),
        _ => Err(io::Error::other("expected exactly one descriptor")),
    }
}

/// The daemon's answer on a connection: `ok`, or why not.
pub fn answer(mut stream: &UnixStream, result: Result<(), String>) {
    let line = match result {
        Ok(()) => "ok\n".to_string(),
        Err(why) => format!("{}\n", why.replace('\n', " ")),
    };
    let _ = stream.write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_crosses_with_its_token_and_keeps_its_access() {
        let dir = tempfile::tempdir().unwrap();
        let socket = socket_of(&dir.path().join("kiln.sock"));
        assert!(socket.ends_with("kiln.sock.fds"));
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let mut results = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                match receive(&stream) {
                    Ok((token, fd)) => {
                        let mut file = std::fs::File::from(fd);
                        let wrote = file
                            .write_all(b"written by the daemon")
                            .map_err(|e| e.to_string());
                        answer(&stream, wrote.clone());
                        results.push((token, wrote));
                    }
                    Err(e) => answer(&stream, Err(e.to_string())),
                }
            }
            results
        });
        let token = "0123456789abcdef0123456789abcdef";
        let path = dir.path().join("out");
        let file = std::fs::File::create(&path).unwrap();
        hand_over(&socket, token, file.as_fd()).unwrap();
        // A read-only descriptor crosses too, and the daemon cannot write through it.
        let read_only = std::fs::File::open(&path).unwrap();
        assert!(hand_over(&socket, token, read_only.as_fd()).is_err());
        let results = server.join().unwrap();
        assert_eq!(results[0], (token.to_string(), Ok(())));
        assert!(results[1].1.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"written by the daemon");

        assert!(valid_token(token));
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF0123456789ABCDEF",
            "../0123456789abcdef0123456789ab",
        ] {
            assert!(!valid_token(bad), "{bad}");
        }
    }
}
